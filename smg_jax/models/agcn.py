"""2s-AGCN, one stream (Shi, Zhang, Cheng and Lu, CVPR 2019), faithful to lshiwjx/2s-AGCN
``model/agcn.py``.

The network: an input BatchNorm over ``M * V * C`` channels, ten
adaptive graph units, global average pooling over frames, joints and bodies,
and a linear classifier. Each unit (``blocks.AdaptiveUnit``) is an adaptive
graph convolution over the identity / inward / outward subsets ``A_k``,
each completed by a learned offset ``B_k`` and a data-dependent graph
``C_k = softmax(theta(x)^T phi(x))``, then a 9-frame temporal convolution
with BatchNorm, a residual path and ReLU. The two streams of the paper
(joints, bones) are two instances of this model fed different inputs.

Initialisation as published: ``kaiming_normal(fan_out)`` convolutions with
zero bias, ``conv_d`` with ``normal(0, sqrt(2 / (out * in * K)))``,
BatchNorm scale 1 except ``1e-6`` after the graph convolution, ``B_k =
1e-6``, classifier ``normal(0, sqrt(2 / num_classes))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.graph import Skeleton, spatial_subsets
from smg_jax.models import adaptive_network, blocks

MODEL_NAME = "agcn"


class AGCN(nn.Module):
    """2s-AGCN (one stream): ``(N, M, T, V, C) -> (N, num_classes)`` logits.

    Attributes:
      num_classes: classifier size.
      in_channels: ``C`` of the input (3 for xyz joints or bones).
      skeleton: joint layout (name or ``Skeleton``); ``V`` follows from it.
      num_persons: bodies per clip ``M``; the input BatchNorm has ``M * V * C``
        channels, so inputs must have exactly this many bodies.
      channels: output channels of the units.
      strides: temporal strides of the units.
      temporal_kernel_size: odd temporal kernel of every unit (9).
      adaptive: learn the offset ``B_k`` (``PA``); ``False`` keeps ``A_k`` fixed.
      attention: add the data-dependent graph ``C_k`` (``conv_a``/``conv_b``).
      coff_embedding: ``C_k``'s embedding width is ``features // coff_embedding``.
      residual: residual paths in units 2..n (the first never has one).
      bn_axis_name: axis for cross-replica BatchNorm statistics.
      dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay ``param_dtype``.
    """

    num_classes: int
    in_channels: int = 3
    skeleton: str | Skeleton = "kinect_v2"
    num_persons: int = 1
    channels: tuple[int, ...] = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
    strides: tuple[int, ...] = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    temporal_kernel_size: int = 9
    adaptive: bool = True
    attention: bool = True
    coff_embedding: int = 4
    residual: bool = True
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def adjacency(self) -> np.ndarray:
        """``(3, V, V)``: identity, inward, outward (2s-AGCN's ``Graph('spatial').A``)."""
        return spatial_subsets(blocks.resolve_skeleton(self.skeleton))

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` (float32)."""
        graph = self.adjacency()
        units = len(self.channels)
        return adaptive_network.apply_network(
            self, MODEL_NAME, x, train, [graph] * units, [self.branches()] * units
        )

    def branches(self) -> tuple[str, ...]:
        """Every unit's data-dependent graphs: ``C_k`` from 1x1 embeddings, or none."""
        return ("spatial",) if self.attention else ()


def build(*, num_classes: int, **overrides: Any) -> AGCN:
    """2s-AGCN with the published defaults; ``overrides`` are ``AGCN`` fields."""
    return blocks.build_module(AGCN, MODEL_NAME, num_classes, overrides)


def from_torch(
    state_dict: Mapping[str, Any], *, num_classes: int, **overrides: Any
) -> tuple[AGCN, dict[str, Any]]:
    """Maps a ``model.agcn.Model`` ``state_dict`` onto ``AGCN``.

    ``num_persons`` is read from the input BatchNorm's size when not given.
    Missing, unused or mis-shaped entries raise ``StateDictError``.
    """
    return adaptive_network.from_torch(
        AGCN, MODEL_NAME, state_dict, num_classes, overrides,
        lambda module: [module.branches()] * len(module.channels),
    )  # fmt: skip
