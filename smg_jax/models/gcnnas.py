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

import flax.linen as nn
import jax
import numpy as np

from smg_jax.models import adaptive_network, layers

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
        b for b in branches if b not in adaptive_network.BRANCHES
    ]
    if bad:
        raise ValueError(
            f"{MODEL_NAME}: cell {cell!r} has unknown parts {bad}; graph terms are {GRAPH_TERMS}, "
            f"branches {adaptive_network.BRANCHES}."
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


class GCNNAS(layers.SubsetsNetwork):
    """GCN-NAS (searched model): ``(N, M, T, V, C) -> (N, num_classes)`` logits.

    The fields of ``layers.SubsetsNetwork``, and:

    Attributes:
      cells: one cell per unit (see the module docstring); ``SEARCHED_CELLS``.
      temporal_kernel_size: frames of the temporal convolutions and of the
        temporal / spatiotemporal embeddings (9).
      adaptive: learn the offset ``PA`` in every cell.
      coff_embedding: embedding width is ``features // coff_embedding``.
      residual: residual paths in units 2..n (the first never has one).
    """

    cells: tuple[str, ...] = SEARCHED_CELLS
    temporal_kernel_size: int = 9
    adaptive: bool = True
    coff_embedding: int = 4
    residual: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` (float32)."""
        subsets = self.adjacency()
        cells = [parse_cell(cell) for cell in self.cells]
        graphs = [fixed_graph(subsets, terms) for terms, _ in cells]
        return adaptive_network.apply_network(
            self, MODEL_NAME, x, train, graphs, [b for _, b in cells], unit_field="cells"
        )

    def unit_branches(self) -> list[tuple[str, ...]]:
        """Each unit's data-dependent graphs, as its cell names them."""
        return [parse_cell(cell)[1] for cell in self.cells]


build, from_torch = adaptive_network.entry_points(GCNNAS, MODEL_NAME, "model.agcn3.Model")
