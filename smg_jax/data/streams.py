"""The four input streams of one clip: joints, bones, and their frame-to-frame motion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from smg_jax.data.joints import STREAMS, DataError


def bones(joints: np.ndarray, bone_pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """The bone stream: ``out[:, v] = x[:, v] - x[:, parent(v)]`` for each ``(v, parent)``.

    As MS-G3D ``data_gen/gen_bone_data.py`` and CTR-GCN ``feeders/feeder_ntu.py``
    (``bone=True``): the pairs include the centre joint with itself, so the
    stream keeps ``V`` entries and the centre's bone is zero. Joints missing
    from ``bone_pairs`` are zero.

    Args:
      joints: ``(T, V, C)``.
      bone_pairs: 0-based ``(joint, parent)``, e.g. ``graph.BONE_PAIRS``.

    Returns:
      ``(T, V, C)`` of the input's dtype.
    """
    out = np.zeros_like(joints)
    child = np.array([c for c, _ in bone_pairs], dtype=np.int64)
    parent = np.array([p for _, p in bone_pairs], dtype=np.int64)
    out[:, child] = joints[:, child] - joints[:, parent]
    return out


def motion(x: np.ndarray) -> np.ndarray:
    """Frame differences ``out[t] = x[t + 1] - x[t]``, last frame zero.

    The convention of 2s-AGCN ``data_gen/gen_motion_data.py`` and CTR-GCN's
    ``vel=True`` feeder; applied to joints it is ``joint_motion``, to bones
    ``bone_motion``.

    Args:
      x: ``(T, ...)``.

    Returns:
      same shape and dtype.
    """
    out = np.zeros_like(x)
    out[:-1] = x[1:] - x[:-1]
    return out


def to_stream(joints: np.ndarray, stream: str, bone_pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """``joints`` ``(T, V, C)`` -> one of ``STREAMS``, same shape."""
    if stream == "joint":
        return joints
    if stream == "bone":
        return bones(joints, bone_pairs)
    if stream == "joint_motion":
        return motion(joints)
    if stream == "bone_motion":
        return motion(bones(joints, bone_pairs))
    raise DataError(f"Unknown stream {stream!r}; choose from {STREAMS}.")
