"""The authors' per-frame skeleton features (2,775 values) and their standardization.

For frames ``t`` and ``t + 1`` of a 25-joint skeleton ``p`` (world xyz, metres):

* ``Fcc``: for every joint pair ``i < j`` (300 pairs, ``i`` outer, ``j`` inner,
  as ``np.triu_indices(25, 1)`` orders them) the difference ``p_t[i] - p_t[j]``,
  3 values each: 900 values;
* ``Fcp``: for every ordered pair ``(i, j)`` (625 pairs, ``i`` outer) the
  difference ``p_{t+1}[i] - p_t[j]``: 1,875 values;
* feature row ``t`` is ``Fcc(t)`` followed by ``Fcp(t, t + 1)``: 2,775 values.

A span of ``n`` frames gives ``n - 1`` rows, and row ``t`` of a recording
depends on frames ``t`` and ``t + 1`` only, so the rows of any gesture are a
slice of the recording's rows: we compute each needed row once, in
fixed-size jitted chunks (one compilation for every recording length).

Standardization is scikit-learn's ``StandardScaler`` (population standard
deviation, constant features left unscaled), fitted on the training rows.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.online.errors import OnlineError

NUM_JOINTS = 25
PAIR_I, PAIR_J = np.triu_indices(NUM_JOINTS, k=1)  # (0,1), (0,2), ..., (0,24), (1,2), ...
NUM_PAIRS = len(PAIR_I)  # 300
FEATURE_DIM = 3 * NUM_PAIRS + 3 * NUM_JOINTS**2  # 900 + 1875 = 2775
CHUNK_ROWS = 2048  # rows per jitted call; the last chunk is padded


def feature_dim(num_joints: int = NUM_JOINTS) -> int:
    """Feature length for ``num_joints`` joints: ``3 (V (V - 1) / 2 + V^2)``."""
    return 3 * (num_joints * (num_joints - 1) // 2 + num_joints**2)


def pair_features(current: jax.Array, following: jax.Array) -> jax.Array:
    """Feature rows from frame pairs.

    Args:
      current: ``(..., V, 3)`` joints at frame ``t``.
      following: ``(..., V, 3)`` joints at frame ``t + 1``.

    Returns:
      ``(..., 3 V (V - 1) / 2 + 3 V^2)``: ``Fcc(t)`` then ``Fcp(t, t + 1)``.
    """
    num_joints = current.shape[-2]
    first, second = np.triu_indices(num_joints, k=1)
    fcc = current[..., first, :] - current[..., second, :]  # (..., P, 3)
    fcp = following[..., :, None, :] - current[..., None, :, :]  # (..., V_next, V_cur, 3)
    batch = current.shape[:-2]
    return jnp.concatenate([fcc.reshape(*batch, -1), fcp.reshape(*batch, -1)], axis=-1)


_pair_features_jit = jax.jit(pair_features)


def _check_joints(joints: np.ndarray, where: str) -> np.ndarray:
    joints = np.asarray(joints, np.float32)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise OnlineError(f"{where}: joints must be (T, V, 3), got {joints.shape}.")
    if not np.all(np.isfinite(joints)):
        raise OnlineError(f"{where}: joints hold NaN or inf values.")
    return joints


def row_features(
    joints: np.ndarray, rows: np.ndarray | None = None, *, where: str = "recording"
) -> np.ndarray:
    """Feature rows of a recording.

    Args:
      joints: ``(T, V, 3)`` world xyz in metres.
      rows: feature-row indices in ``[0, T - 1)`` (row ``r`` uses frames ``r`` and
        ``r + 1``); ``None`` for all ``T - 1`` rows.
      where: the recording's name, for error messages.

    Returns:
      ``(len(rows), feature_dim(V))`` float32.
    """
    joints = _check_joints(joints, where)
    num_rows = joints.shape[0] - 1
    rows = np.arange(max(num_rows, 0)) if rows is None else np.asarray(rows, np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= num_rows):
        raise OnlineError(
            f"{where}: feature rows must lie in [0, {num_rows}) for {joints.shape[0]} frames; "
            f"got {rows.min()}..{rows.max()}."
        )
    out = np.empty((rows.size, feature_dim(joints.shape[1])), np.float32)
    for begin in range(0, rows.size, CHUNK_ROWS):
        chunk = rows[begin : begin + CHUNK_ROWS]
        padded = np.pad(chunk, (0, CHUNK_ROWS - chunk.size))  # pad with row 0: computed, dropped
        values = _pair_features_jit(joints[padded], joints[padded + 1])
        out[begin : begin + chunk.size] = np.asarray(values)[: chunk.size]
    return out


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-feature ``(x - mean) / scale``: scikit-learn's ``StandardScaler`` on the training rows.

    Attributes:
      mean: ``(D,)`` float64.
      scale: ``(D,)`` float64 population standard deviation; 1 for constant features.
      count: rows it was fitted on.
    """

    mean: np.ndarray
    scale: np.ndarray
    count: int

    def apply(self, features: np.ndarray) -> np.ndarray:
        """``(N, D)`` -> standardized ``(N, D)`` float32."""
        features = np.asarray(features)
        if features.shape[-1] != self.mean.shape[0]:
            raise OnlineError(
                f"features have {features.shape[-1]} values per row; the standardizer was "
                f"fitted on {self.mean.shape[0]}."
            )
        return ((features - self.mean) / self.scale).astype(np.float32)

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez(handle, mean=self.mean, scale=self.scale, count=self.count)
        return path

    @classmethod
    def load(cls, path: str | pathlib.Path) -> Standardizer:
        with np.load(path) as data:
            return cls(mean=data["mean"], scale=data["scale"], count=int(data["count"]))


def fit_standardizer(features: np.ndarray, rows: np.ndarray | None = None) -> Standardizer:
    """Fits the mean and population standard deviation of ``features[rows]`` (float64, chunked).

    Args:
      features: ``(R, D)`` rows.
      rows: indices into ``features`` (repeats count as often as they appear,
        as the authors' resampled rest rows do); ``None`` for all rows.
    """
    rows = np.arange(len(features)) if rows is None else np.asarray(rows, np.int64)
    if rows.size == 0:
        raise OnlineError("Cannot fit a standardizer on zero rows (no training MGs?).")
    dim = features.shape[1]
    total = np.zeros(dim)
    for begin in range(0, rows.size, 8192):
        total += features[rows[begin : begin + 8192]].sum(axis=0, dtype=np.float64)
    mean = total / rows.size
    # Second pass about the mean: no catastrophic cancellation for features with large offsets.
    squares = np.zeros(dim)
    for begin in range(0, rows.size, 8192):
        centered = features[rows[begin : begin + 8192]].astype(np.float64) - mean
        squares += np.einsum("nd,nd->d", centered, centered)
    variance = squares / rows.size
    # scikit-learn treats a feature as constant when its variance is within rounding of zero.
    eps = np.finfo(np.float64).eps
    constant = variance <= rows.size * eps * variance + (rows.size * mean * eps) ** 2
    scale = np.where(constant, 1.0, np.sqrt(variance))
    return Standardizer(mean=mean, scale=scale, count=int(rows.size))


@functools.cache
def _window_offsets(width: int) -> np.ndarray:
    return np.arange(width) - width // 2


def window_rows(rows: np.ndarray, width: int, num_rows: int) -> np.ndarray:
    """``(N, width)`` row indices centred on ``rows``, clipped to ``[0, num_rows)``.

    Clipping repeats the first / last row at the ends of a recording.
    """
    rows = np.asarray(rows, np.int64)
    return np.clip(rows[:, None] + _window_offsets(width)[None], 0, num_rows - 1)
