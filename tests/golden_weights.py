"""Deterministic stand-ins for the authors' weights, rebuilt from a seed and a list of names.

A golden file in ``tests/golden/`` keeps the input, the authors' logits, a seed
and the authors' ``state_dict`` layout (every entry's name, shape and dtype),
never the weights. ``rebuild_state_dict`` draws the same weights from those on
any machine, with NumPy alone (``tools/make_goldens.py`` imports it beside
PyTorch, the tests beside JAX), so the regeneration script and the tests load
bit-identical float32 arrays.

Every value is perturbed away from its initial value (BatchNorm weights off 1,
biases and running means off 0, running variances spread over [0.5, 2],
``PA`` / ``A_res`` / ``alpha`` / ``Feature_Mask`` off their constant inits,
Shift-GCN's joint shifts off 1e-8), so a weight mapped to the wrong place
changes the logits. Weights are fan-in-scaled normals. BatchNorm scales in
[0.3, 0.8] and a small CTR-GCN ``alpha`` stand in for the normalisation that
trained running statistics give: with scales around 1, each of the ten
residual units of 2s-AGCN, GCN-NAS or CTR-GCN multiplies the activations by
two or more and the logits reach 1e3 to 1e8; with these, every model's
logits stay between about 0.5 and 5.

What no golden can see: the bias of the first factor of each attention
product (``conv_a``, ``conv_T1``, ``conv_ST11`` of 2s-AGCN and GCN-NAS) is
constant along the joints the softmax normalises over and cancels, and
GCN-NAS registers ``conv_ST11`` / ``conv_ST12`` 3 to 5 that its forward
never uses. Every other entry, redrawn alone, moves the logits past the parity
tolerance (``tools/make_goldens.py --sensitivity`` lists the exceptions).

Constants the models build themselves keep their real values and are read
from the golden file instead (``CONSTANTS``): ST-GCN's adjacency buffer ``A``
and Shift-GCN's spatial-shift index arrays ``gcn1.shift_in`` /
``gcn1.shift_out``. BatchNorm's ``num_batches_tracked`` counters are left out
of the layout altogether (no model reads them in evaluation).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

# Entries whose real value the golden file stores: a fixed buffer or index array
# the model computes from its graph, which no perturbation may change.
CONSTANTS = re.compile(r"^(A|l\d+\.gcn1\.shift_(in|out))$")

# The 1x1 / 9x1 convolutions whose outputs meet in an attention map's product.
EMBEDDING = r"\.gcn1\.conv_(a|b|T1|T2|ST11|ST12)\.\d+\."

Entry = tuple[str, tuple[int, ...], str]  # (name, shape, dtype) of one state_dict entry
Sampler = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def _fan_in_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # PyTorch keeps (out, in, *kernel): everything past the first axis feeds one output.
    return rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[1:])), shape)


def _uniform(low: float, high: float) -> Sampler:
    return lambda rng, shape: rng.uniform(low, high, shape)


def _normal(scale: float) -> Sampler:
    return lambda rng, shape: rng.normal(0.0, scale, shape)


# (pattern on the full name, sampler); the first match wins. Patterns name the
# authors' own entries, so an unfamiliar entry is an error, not a silent guess.
RULES: tuple[tuple[re.Pattern[str], Sampler], ...] = tuple(
    (re.compile(pattern), sampler)
    for pattern, sampler in (
        (r"running_var$", _uniform(0.5, 2.0)),
        (r"running_mean$", _normal(0.2)),
        (r"(^|\.)edge_importance\.\d+$", _uniform(0.5, 1.5)),  # ST-GCN, multiplies A
        (r"\.PA$", _normal(0.1)),  # 2s-AGCN, GCN-NAS: added to A; CTR-GCN: replaces it
        (r"\.A_res$", _normal(0.1)),  # MS-G3D, added to the normalised powers of A
        (r"\.alpha$", _uniform(-0.1, 0.1)),  # CTR-GCN, scales the refined topology
        (r"\.Feature_Mask$", _normal(0.5)),  # Shift-GCN, enters as tanh(mask) + 1
        (r"\.(xpos|ypos)$", _uniform(-1.0, 1.0)),  # Shift-GCN's joint and frame shifts
        # 2s-AGCN's and GCN-NAS's attention embeddings: softmax(a^T b / (C' T)) over
        # joints. At fan-in scale its logits are ~0.03 and the attention is uniform
        # to 1e-4 whatever the weights; eight times larger they are of order one.
        (EMBEDDING + r"weight$", lambda rng, shape: 8 * _fan_in_normal(rng, shape)),
        (EMBEDDING + r"bias$", _normal(1.0)),
        # Shift-GCN's Linear_weight is (in, out): the fan-in is its first axis.
        (r"\.Linear_weight$", lambda rng, shape: rng.normal(0.0, 1 / np.sqrt(shape[0]), shape)),
        (r"(^|\.|_)bias$", _normal(0.1)),
        (r"(^|\.)weight$", None),  # resolved by rank in ``_sample``
    )
)


def entry_seed(seed: int, name: str) -> int:
    """A 64-bit seed for one entry, stable across processes and platforms (no ``hash()``)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _sample(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(entry_seed(seed, name))
    for pattern, sampler in RULES:
        if pattern.search(name):
            if sampler is None:  # a weight: BatchNorm's scale when 1-D, else a kernel
                sampler = _uniform(0.3, 0.8) if len(shape) == 1 else _fan_in_normal
            return sampler(rng, shape).astype(np.float32)
    raise ValueError(
        f"golden weights: no rule draws state_dict entry {name!r} {shape}; add one to "
        "tests/golden_weights.py RULES (or CONSTANTS if the model computes it itself)."
    )


def encode_constant(value: np.ndarray) -> np.ndarray:
    """A constant as the golden file stores it: integer arrays as the differences of
    consecutive entries in the smallest signed dtype that holds them (an index array
    is an arithmetic progression modulo its length, which then compresses to a few
    hundred bytes); anything else unchanged."""
    if value.dtype.kind not in "iu":
        return value
    steps = np.diff(value.astype(np.int64).ravel(), prepend=0)
    small = np.result_type(np.min_scalar_type(-abs(steps).max() - 1), np.int8)
    return steps.astype(small)


def decode_constant(stored: np.ndarray, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Inverse of ``encode_constant`` for an entry of ``shape`` and ``dtype``."""
    if np.dtype(dtype).kind not in "iu":
        return np.asarray(stored).astype(dtype).reshape(shape)
    return np.cumsum(stored, dtype=np.int64).astype(dtype).reshape(shape)


def rebuild_state_dict(
    seed: int, entries: Sequence[Entry], constants: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The full ``state_dict`` of one golden model, in the authors' names and layouts.

    Args:
      seed: the golden file's seed.
      entries: ``(name, shape, dtype)`` of every entry, in the authors' order.
      constants: every entry ``CONSTANTS`` matches, as ``encode_constant`` stored it.

    Returns:
      ``{name: array}``: constants as stored (cast to their recorded dtype),
      everything else float32 drawn from ``(seed, name)``.
    """
    state_dict = {}
    for name, shape, dtype in entries:
        shape = tuple(shape)
        if CONSTANTS.match(name):
            if name not in constants:
                raise ValueError(f"golden weights: the constant {name!r} is not in the file.")
            if np.size(constants[name]) != np.prod(shape, dtype=int):
                raise ValueError(f"golden weights: constant {name!r} does not hold {shape}")
            state_dict[name] = decode_constant(constants[name], shape, dtype)
        else:
            state_dict[name] = _sample(name, shape, seed)
    return state_dict
