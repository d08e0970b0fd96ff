"""Spatial transforms of one clip ``(T, V, 3)`` (metres): centring, view normalisation,
random rotation / scale / shift. Untracked (all-zero) joints stay zero. Pure NumPy."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from smg_jax.data.joints import (
    CENTER_MODES,
    SPINE_MID,
    VIEW_PAIRS,
    DataError,
    valid_frames,
    valid_joints,
)


def center(joints: np.ndarray, joint: int = SPINE_MID, mode: str = "first") -> np.ndarray:
    """Translates the clip so that one joint sits at the origin.

    Args:
      joints: ``(T, V, C)`` metres.
      joint: 0-based joint index; ``SPINE_MID`` (1) as in MS-G3D / CTR-GCN, or
        ``SPINE_BASE`` (0).
      mode: ``"first"`` subtracts that joint's position in the first frame
        where it is tracked from every frame (CTR-GCN's ``seq_translation``;
        whole-body sway stays visible, which matters for gestures such as
        moving the torso); ``"frame"`` subtracts it per frame (2s-AGCN /
        MS-G3D ``pre_normalization``; the joint is at the origin in every
        frame and body translation is removed).

    Untracked (all-zero) frames stay zero in both modes, so padding added by
    the authors' window is not turned into a copy of ``-origin``.

    Returns:
      ``(T, V, C)`` of the input's dtype.
    """
    if mode not in CENTER_MODES:
        raise DataError(f"center: unknown mode {mode!r}; choose from {CENTER_MODES}.")
    if not 0 <= joint < joints.shape[1]:
        raise DataError(f"center: joint {joint} not in [0, {joints.shape[1]}).")
    frames = valid_frames(joints)
    if mode == "first":
        tracked = np.flatnonzero(valid_joints(joints)[:, joint])
        if len(tracked) == 0:
            return joints.copy()
        origin = joints[tracked[0], joint][None, None, :]
    else:
        origin = joints[:, joint : joint + 1, :]
    out = joints - origin
    if not frames.all():
        out[~frames] = 0
    return out.astype(joints.dtype, copy=False)


def rotation_y(angle: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``angle`` radians about the vertical y axis.

    Acting on column vectors, it maps ``(cos a, 0, sin a)`` to ``(1, 0, 0)``.
    """
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_xyz(angles: Sequence[float]) -> np.ndarray:
    """``(3, 3)`` matrix ``Rz @ Ry @ Rx`` for angles ``(ax, ay, az)`` in radians.

    The same matrices and order as CTR-GCN's ``_rot`` (``feeders/tools.py``).
    """
    ax, ay, az = angles
    cx, sx = math.cos(ax), math.sin(ax)
    cy, sy = math.cos(ay), math.sin(ay)
    cz, sz = math.cos(az), math.sin(az)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, sx], [0.0, -sx, cx]])
    ry = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    rz = np.array([[cz, sz, 0.0], [-sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


def _transform_tracked(
    joints: np.ndarray, matrix: np.ndarray, pivot: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """``x -> matrix (x - pivot) + pivot + shift`` on tracked frames; zero frames stay zero."""
    frames = valid_frames(joints)
    work = joints.astype(np.float64)
    moved = (work - pivot) @ matrix.T + pivot + shift
    if not frames.all():  # the common case after fill_missing skips this pass
        moved[~frames] = 0.0
    return moved.astype(joints.dtype)


def normalize_view(joints: np.ndarray, reference: str = "hip") -> np.ndarray:
    """Rotates about the vertical axis so that the hip (or shoulder) line is parallel to x.

    The reference vector is right joint minus left joint (right hip - left
    hip, or right shoulder - left shoulder), averaged over tracked frames and
    projected on the horizontal x-z plane. The clip is rotated about the
    vertical line through the midpoint of the pair (also averaged), so the
    body turns in place rather than swinging around the sensor. For a person
    facing the Kinect the vector already points along +x and the rotation is
    close to the identity. Only the yaw is corrected: the y axis stays the
    sensor's up direction, unlike MS-G3D's ``pre_normalization`` which also
    tilts the spine onto an axis.

    Args:
      joints: ``(T, V, 3)`` Kinect v2 layout (the references are joints 4/8 or 12/16).
      reference: ``"hip"`` or ``"shoulder"``.

    Returns:
      ``(T, V, 3)`` of the input's dtype; unchanged when the reference
      vector has no horizontal length (untracked or degenerate pair).
    """
    if reference not in VIEW_PAIRS:
        raise DataError(
            f"normalize_view: unknown reference {reference!r}; choose from {sorted(VIEW_PAIRS)}."
        )
    right, left = VIEW_PAIRS[reference]
    tracked = valid_joints(joints)
    both = tracked[:, right] & tracked[:, left]
    if not both.any():
        return joints.copy()
    work = joints.astype(np.float64)
    vector = (work[both, right] - work[both, left]).mean(axis=0)
    if math.hypot(vector[0], vector[2]) < 1e-9:
        return joints.copy()
    pivot = 0.5 * (work[both, right] + work[both, left]).mean(axis=0)
    pivot[1] = 0.0  # a vertical axis: only x and z of the pivot matter
    matrix = rotation_y(math.atan2(vector[2], vector[0]))
    return _transform_tracked(joints, matrix, pivot, np.zeros(3))


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """One draw of the random spatial augmentation (see ``draw_augment``).

    Attributes:
      angles: ``(ax, ay, az)`` radians, applied as ``Rz @ Ry @ Rx``.
      scale: isotropic scale factor.
      shift: ``(3,)`` translation in metres.
    """

    angles: tuple[float, float, float]
    scale: float
    shift: tuple[float, float, float]


def draw_augment(
    rng: np.random.Generator,
    max_rotation: float,
    scale_range: tuple[float, float],
    max_shift: float,
) -> AugmentParams:
    """Draws one set of augmentation parameters.

    Rotation angles ``U[-max_rotation, max_rotation]`` radians per axis
    (CTR-GCN ``random_rot``, bound 0.3), a scale ``U[scale_range]`` and a shift
    ``U[-max_shift, max_shift]`` metres per axis (ST-GCN ``random_move`` draws
    scales 0.9-1.1 and shifts up to 0.2).
    """
    angles = rng.uniform(-max_rotation, max_rotation, size=3) if max_rotation > 0 else np.zeros(3)
    low, high = scale_range
    scale = rng.uniform(low, high) if high > low else low
    shift = rng.uniform(-max_shift, max_shift, size=3) if max_shift > 0 else np.zeros(3)
    return AugmentParams(
        angles=tuple(float(a) for a in angles),
        scale=float(scale),
        shift=tuple(float(s) for s in shift),
    )


def augment(
    joints: np.ndarray, params: AugmentParams, pivot: np.ndarray | None = None
) -> np.ndarray:
    """Applies ``x -> scale * R (x - pivot) + pivot + shift`` to tracked frames.

    Args:
      joints: ``(T, V, 3)`` metres.
      params: from ``draw_augment``.
      pivot: ``(3,)`` centre of rotation and scaling in metres; ``None`` is
        the origin (right after centring, the centre joint).

    Returns:
      ``(T, V, 3)`` of the input's dtype; untracked frames stay zero. A pure
      rotation (``scale = 1``, zero shift) preserves every bone length.
    """
    pivot = np.zeros(3) if pivot is None else np.asarray(pivot, dtype=np.float64)
    matrix = params.scale * rotation_xyz(params.angles)
    return _transform_tracked(joints, matrix, pivot, np.asarray(params.shift))
