"""Temporal transforms of one clip ``(T, V, C)``: the authors' window, resampling, crops,
and the repair of lost joints. Pure NumPy; inputs are never modified."""

from __future__ import annotations

import math

import numpy as np

from smg_jax import graph
from smg_jax.data.joints import AUTHORS_NUM_FRAMES, DataError, valid_joints


def authors_window(joints: np.ndarray, num_frames: int = AUTHORS_NUM_FRAMES) -> np.ndarray:
    """The authors' fixed window: the last ``num_frames - 1`` frames, zero-padded at the end.

    Reproduces ``smg_gendata.py``: a clip longer than ``num_frames - 1``
    frames keeps its last ``num_frames - 1`` frames, a shorter one all of
    them, written from frame 0 into zeros. An empty clip gives all zeros (the
    script writes nothing for a segment with ``end <= start`` and keeps it).

    Args:
      joints: ``(T, V, C)``, any ``T >= 0``.
      num_frames: output length; the authors use 60.

    Returns:
      ``(num_frames, V, C)`` float32; frame ``num_frames - 1`` is always zero.
    """
    if num_frames < 1:
        raise DataError(f"authors_window: num_frames must be >= 1, got {num_frames}.")
    keep = num_frames - 1
    kept = joints[max(0, len(joints) - keep) :] if keep > 0 else joints[:0]
    out = np.zeros((num_frames, *joints.shape[1:]), dtype=np.float32)
    # float64 -> float32 here matches the script's float64 buffer written
    # into a float32 memmap; for float32 input it is a copy.
    out[: len(kept)] = kept
    return out


def resample(joints: np.ndarray, num_frames: int) -> np.ndarray:
    """Linear resampling in time to ``num_frames`` frames.

    Uses the sample positions of ``torch.nn.functional.interpolate(...,
    mode='bilinear', align_corners=False)``, which CTR-GCN's
    ``valid_crop_resize`` applies along time (Uason-Chen/CTR-GCN
    ``feeders/tools.py``): output frame ``i`` samples input position
    ``max(0, (i + 0.5) * T / num_frames - 0.5)``. A one-frame clip is repeated.

    Args:
      joints: ``(T, V, C)`` with ``T >= 1``.
      num_frames: output length ``T'``.

    Returns:
      ``(T', V, C)`` float64 for float64 input, else float32.
    """
    length = len(joints)
    if length < 1:
        raise DataError("resample: the clip has no frames; nothing to resample.")
    if num_frames < 1:
        raise DataError(f"resample: num_frames must be >= 1, got {num_frames}.")
    position = (np.arange(num_frames) + 0.5) * (length / num_frames) - 0.5
    position = np.maximum(position, 0.0)
    lower = np.minimum(np.floor(position).astype(np.int64), length - 1)
    upper = np.minimum(lower + 1, length - 1)
    weight = (position - lower)[:, None, None]
    dtype = np.result_type(joints.dtype, np.float32)
    work = joints.astype(np.float64)
    out = work[lower] * (1.0 - weight) + work[upper] * weight
    return out.astype(dtype)


def random_crop(
    joints: np.ndarray, rng: np.random.Generator, min_ratio: float, min_frames: int
) -> np.ndarray:
    """CTR-GCN's random temporal crop (``valid_crop_resize`` with ``p_interval=[min_ratio, 1]``).

    Draws ``p ~ U[min_ratio, 1)`` and keeps ``clip(floor(T p), min_frames, T)``
    consecutive frames at a uniformly drawn offset. With ``min_frames`` equal
    to the resampling length (CTR-GCN: 64) clips shorter than that are never
    cut, so short micro-gestures keep all their frames.

    Args:
      joints: ``(T, V, C)``.
      rng: the example's generator.
      min_ratio: lower end of the kept proportion, in ``(0, 1]``.
      min_frames: the crop never goes below this many frames.

    Returns:
      ``(T_crop, V, C)``, a view of ``joints``.
    """
    length = len(joints)
    ratio = rng.uniform(min_ratio, 1.0)
    kept = min(max(math.floor(length * ratio), min_frames), length)
    offset = int(rng.integers(0, length - kept + 1))
    return joints[offset : offset + kept]


def fill_missing(joints: np.ndarray, skeleton: graph.Skeleton | None = None) -> np.ndarray:
    """Replaces untracked (all-zero) joints by linear interpolation in time.

    For each joint, frames where it is untracked take the straight line
    between its nearest tracked frames before and after; before its first
    (after its last) tracked frame they hold that frame's value. A joint
    never tracked in the clip copies the trajectory of a neighbouring joint
    in ``skeleton`` (its bone then has length zero instead of pointing to the
    camera origin). An all-zero clip is returned as zeros: nothing can be
    recovered, and raising would stop a training run over one lost clip.

    Why: Kinect reports a lost body as zeros. Left in, those frames give
    bones of ~0 (fine) but motion and centring jumps of several metres, and
    they drag the resampled frames towards the camera origin.

    Args:
      joints: ``(T, V, C)``.
      skeleton: the layout for the never-tracked fallback; ``None`` uses
        Kinect v2 when ``V == 25`` and otherwise leaves such joints at zero.

    Returns:
      ``(T, V, C)`` array of the input's dtype.
    """
    valid = valid_joints(joints)
    if valid.all() or not valid.any():
        return joints.copy()
    num_frames = len(joints)
    frame = np.arange(num_frames)[:, None]
    prev = np.maximum.accumulate(np.where(valid, frame, -1), axis=0)
    next_ = np.minimum.accumulate(np.where(valid, frame, num_frames)[::-1], axis=0)[::-1]
    has_prev, has_next = prev >= 0, next_ < num_frames
    prev_c = np.clip(prev, 0, num_frames - 1)
    next_c = np.clip(next_, 0, num_frames - 1)
    span = np.where(has_prev & has_next, next_c - prev_c, 1)
    weight = np.where(has_prev & has_next, (frame - prev_c) / np.maximum(span, 1), 0.0)
    weight = np.where(~has_prev & has_next, 1.0, weight)  # before the first tracked frame
    joint = np.arange(joints.shape[1])[None, :]
    work = joints.astype(np.float64)
    weight = weight[..., None]
    filled = work[prev_c, joint] * (1.0 - weight) + work[next_c, joint] * weight
    out = np.where(valid[..., None], work, filled)

    never = ~valid.any(axis=0)
    if never.any():
        if skeleton is None and joints.shape[1] == graph.NUM_JOINTS:
            skeleton = graph.KINECT_V2
        if skeleton is not None:
            neighbours: dict[int, list[int]] = {v: [] for v in range(joints.shape[1])}
            for child, parent in skeleton.inward_edges:
                neighbours[child].append(parent)
                neighbours[parent].append(child)
            missing = set(np.flatnonzero(never).tolist())
            while missing:
                done = {
                    v
                    for v in missing
                    if any(n not in missing for n in neighbours[v])  # a filled neighbour
                }
                if not done:
                    break
                for v in sorted(done):
                    source = next(n for n in neighbours[v] if n not in missing)
                    out[:, v] = out[:, source]
                missing -= done
            out[:, sorted(missing)] = 0.0
        else:
            out[:, never] = 0.0
    return out.astype(joints.dtype)
