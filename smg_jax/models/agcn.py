"""2s-AGCN, one stream (Shi, Zhang, Cheng and Lu, CVPR 2019), faithful to lshiwjx/2s-AGCN
``model/agcn.py``.

The network: an input BatchNorm over ``M * V * C`` channels, ten
adaptive graph units, global average pooling over frames, joints and bodies,
and a linear classifier. Each unit (``adaptive_network.AdaptiveUnit``) is an adaptive
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

import flax.linen as nn
import jax

from smg_jax.models import adaptive_network, layers

MODEL_NAME = "agcn"


class AGCN(layers.SubsetsNetwork):
    """2s-AGCN (one stream): ``(N, M, T, V, C) -> (N, num_classes)`` logits.

    The fields of ``layers.SubsetsNetwork``, and:

    Attributes:
      temporal_kernel_size: odd temporal kernel of every unit (9).
      adaptive: learn the offset ``B_k`` (``PA``); ``False`` keeps ``A_k`` fixed.
      attention: add the data-dependent graph ``C_k`` (``conv_a``/``conv_b``).
      coff_embedding: ``C_k``'s embedding width is ``features // coff_embedding``.
      residual: residual paths in units 2..n (the first never has one).
    """

    temporal_kernel_size: int = 9
    adaptive: bool = True
    attention: bool = True
    coff_embedding: int = 4
    residual: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` (float32)."""
        graphs = [self.adjacency()] * len(self.channels)
        return adaptive_network.apply_network(
            self, MODEL_NAME, x, train, graphs, self.unit_branches()
        )

    def unit_branches(self) -> list[tuple[str, ...]]:
        """Each unit's data-dependent graphs: ``C_k`` from 1x1 embeddings, or none."""
        return [("spatial",) if self.attention else ()] * len(self.channels)


build, from_torch = adaptive_network.entry_points(AGCN, MODEL_NAME, "model.agcn.Model")
