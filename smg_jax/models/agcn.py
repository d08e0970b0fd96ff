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
from smg_jax.models import blocks
from smg_jax.models.convert import StateDictReader, VariableTree, check_variables

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
        if len(self.channels) != len(self.strides):
            raise ValueError(f"{MODEL_NAME}: channels and strides must have the same length.")
        if self.temporal_kernel_size % 2 != 1:
            raise ValueError(f"{MODEL_NAME}: temporal_kernel_size must be odd.")
        base = self.adjacency()
        blocks.check_input(MODEL_NAME, x, base.shape[1], self.in_channels, self.num_persons)
        num_clips = x.shape[0]
        dtype = self.dtype or jnp.float32

        x = blocks.DataBatchNorm(
            bodies_in_channels=True,
            bn_axis_name=self.bn_axis_name,
            dtype=dtype,
            param_dtype=self.param_dtype,
            name="data_bn",
        )(x.astype(jnp.float32), train)
        for i, (features, stride) in enumerate(zip(self.channels, self.strides, strict=True)):
            x = blocks.AdaptiveUnit(
                features,
                stride,
                residual=self.residual and i > 0,
                branches=("spatial",) if self.attention else (),
                learned_offset=self.adaptive,
                coff_embedding=self.coff_embedding,
                temporal_kernel_size=self.temporal_kernel_size,
                bn_axis_name=self.bn_axis_name,
                dtype=dtype,
                param_dtype=self.param_dtype,
                name=f"l{i + 1}",
            )(x, base, train)

        features = blocks.pool_bodies(x, num_clips)
        self.sow("intermediates", "features", features)
        fc = blocks.published_classifier(
            self.num_classes, self.channels[-1], dtype, self.param_dtype
        )
        return fc(features.astype(dtype)).astype(jnp.float32)


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
    reader = StateDictReader(state_dict, MODEL_NAME)
    overrides = blocks.infer_num_persons(reader, AGCN, overrides)
    module = build(num_classes=num_classes, **overrides)
    num_subsets = module.adjacency().shape[0]

    tree = VariableTree()
    tree.batch_norm("data_bn/bn", reader, "data_bn")
    branches = ("spatial",) if module.attention else ()
    for i in range(len(module.channels)):
        blocks.load_adaptive_unit(reader, tree, f"l{i + 1}", f"l{i + 1}", num_subsets, branches)
    tree.param("fc", reader.linear("fc"))
    reader.finish()

    variables = tree.variables()
    check_variables(MODEL_NAME, variables, module, blocks.example_input_for(module))
    return module, jax.tree.map(jnp.asarray, variables)
