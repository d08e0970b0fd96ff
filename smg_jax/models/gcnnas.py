"""GCN-NAS, the searched model (Peng, Hong, Chen and Zhao, AAAI 2020), faithful to
xiaoiker/GCN-NAS ``model/agcn3.py``.

The searched network has 2s-AGCN's skeleton (input BatchNorm over
``M * V * C`` channels, ten units of adaptive graph convolution + 9-frame
temporal convolution + residual, pooling, linear classifier), but every unit
(a "cell") has its own graph, found by architecture search:

* a fixed part built from the identity / inward / outward subsets ``A``:
  ``ch3 = 4 A^2 - A - 2 I`` (element-wise powers; the Chebyshev-like
  polynomial of the paper), ``ch4s = softmax_rows((8 A^4 - 4 A^2 - 4 A + I)
  / V)``, or nothing;
* a learned offset ``PA`` (initialised to ``1e-6``);
* data-dependent graphs from 1x1 embeddings (``spatial``), 9-frame
  embeddings (``temporal``) and GCN-NAS's mixed ``spatiotemporal`` ones.

A cell is written ``"<fixed terms joined by +>:<branches joined by ,>"``,
e.g. ``"ch3+ch4s:spatial,temporal,spatiotemporal"`` (layer 7) or
``":temporal"`` (layer 10: offset and temporal graph only). ``SEARCHED_CELLS``
is the published architecture; any other tuple of cells is an ablation.

Initialisation as 2s-AGCN (see ``smg_jax.models.agcn``).
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

MODEL_NAME = "gcnnas"

# agcn3.py: l1-l2 unit_gtcn_12, l3-l4 unit_gtcn_34, l5 unit_gtcn_5, l6/l8/l9
# unit_gtcn_689, l7 unit_gtcn_7, l10 unit_gtcn_10.
SEARCHED_CELLS: tuple[str, ...] = (
    "ch3:spatial,temporal,spatiotemporal",
    "ch3:spatial,temporal,spatiotemporal",
    ":spatial,temporal,spatiotemporal",
    ":spatial,temporal,spatiotemporal",
    "ch3:spatial,temporal",
    "ch3:temporal",
    "ch3+ch4s:spatial,temporal,spatiotemporal",
    "ch3:temporal",
    "ch3:temporal",
    ":temporal",
)
GRAPH_TERMS = ("A", "ch3", "ch4s")


def parse_cell(cell: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``"ch3+ch4s:spatial,temporal"`` -> ``(("ch3", "ch4s"), ("spatial", "temporal"))``."""
    if cell.count(":") != 1:
        raise ValueError(
            f"{MODEL_NAME}: cell {cell!r} must read '<terms joined by +>:<branches joined by ,>', "
            f"e.g. {SEARCHED_CELLS[6]!r}."
        )
    terms_text, branches_text = cell.split(":")
    terms = tuple(t for t in terms_text.split("+") if t)
    branches = tuple(b for b in branches_text.split(",") if b)
    bad = [t for t in terms if t not in GRAPH_TERMS] + [
        b for b in branches if b not in blocks.BRANCHES
    ]
    if bad:
        raise ValueError(
            f"{MODEL_NAME}: cell {cell!r} has unknown parts {bad}; graph terms are {GRAPH_TERMS}, "
            f"branches {blocks.BRANCHES}."
        )
    return terms, branches


def fixed_graph(subsets: np.ndarray, terms: tuple[str, ...]) -> np.ndarray:
    """The fixed part of a cell's graph, ``(K, V, V)`` float32, from ``subsets`` ``A``.

    Computed in float32 in upstream's order so the constants match bit for bit
    (up to the softmax's rounding).
    """
    a = subsets.astype(np.float32)
    eye = np.eye(a.shape[-1], dtype=np.float32)
    out = np.zeros_like(a)
    for term in terms:
        if term == "A":
            out = out + a
        elif term == "ch3":
            out = out + (4 * a**2 - a - 2 * eye)
        else:  # ch4s: softmax over axis 1 (nn.Softmax(-2) of a (K, V, V) tensor)
            logits = (8 * a**4 - 4 * a**2 - 4 * a + eye) / np.float32(a.shape[-1])
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out = out + (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out.astype(np.float32)


class GCNNAS(nn.Module):
    """GCN-NAS (searched model): ``(N, M, T, V, C) -> (N, num_classes)`` logits.

    Attributes:
      num_classes: classifier size.
      in_channels: ``C`` of the input.
      skeleton: joint layout (name or ``Skeleton``); ``V`` follows from it.
      num_persons: bodies per clip ``M``; the input BatchNorm has ``M * V * C``
        channels, so inputs must have exactly this many bodies.
      channels: output channels of the units.
      strides: temporal strides of the units.
      cells: one cell per unit (see the module docstring); ``SEARCHED_CELLS``.
      temporal_kernel_size: frames of the temporal convolutions and of the
        temporal / spatiotemporal embeddings (9).
      adaptive: learn the offset ``PA`` in every cell.
      coff_embedding: embedding width is ``features // coff_embedding``.
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
    cells: tuple[str, ...] = SEARCHED_CELLS
    temporal_kernel_size: int = 9
    adaptive: bool = True
    coff_embedding: int = 4
    residual: bool = True
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def adjacency(self) -> np.ndarray:
        """``(3, V, V)``: identity, inward, outward (GCN-NAS's ``Graph('spatial').A``)."""
        return spatial_subsets(blocks.resolve_skeleton(self.skeleton))

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` (float32)."""
        subsets = self.adjacency()
        cells = [parse_cell(cell) for cell in self.cells]
        graphs = [fixed_graph(subsets, terms) for terms, _ in cells]
        return adaptive_network.apply_network(
            self, MODEL_NAME, x, train, graphs, [b for _, b in cells], unit_field="cells"
        )


def build(*, num_classes: int, **overrides: Any) -> GCNNAS:
    """GCN-NAS with the published (searched) architecture; ``overrides`` are ``GCNNAS`` fields."""
    return blocks.build_module(GCNNAS, MODEL_NAME, num_classes, overrides)


def from_torch(
    state_dict: Mapping[str, Any], *, num_classes: int, **overrides: Any
) -> tuple[GCNNAS, dict[str, Any]]:
    """Maps a ``model.agcn3.Model`` ``state_dict`` onto ``GCNNAS``.

    ``num_persons`` is read from the input BatchNorm's size when not given.
    Missing, unused or mis-shaped entries raise ``StateDictError``.
    """
    return adaptive_network.from_torch(
        GCNNAS, MODEL_NAME, state_dict, num_classes, overrides,
        lambda module: [parse_cell(cell)[1] for cell in module.cells],
    )  # fmt: skip
