"""The synthetic SMG's motion: one recording rendered from its plan, in the raw column layout.

SYNTHETIC DATA (see ``tfds_smg.synthetic``): breathing, postural sway, hand
drift, the planned micro-gestures, the camera, sensor noise and lost tracking.
"""

from __future__ import annotations

import numpy as np

from tfds_smg import raw
from tfds_smg.synthetic_body import (
    COLOR_CAMERA,
    DEPTH_CAMERA,
    HEAD,
    LEAVES,
    LW,
    NOISE_STD,
    PARENT,
    RW,
    SB,
    SM,
    SUBTREE,
    TEMPLATE,
    UPPER_BODY,
    envelope,
    mg_motion,
)
from tfds_smg.synthetic_plan import FPS, SubjectPlan

LOST_RUNS_PER_1000 = 0.3  # default lost-tracking runs (all-zero frames) per 1,000 frames


def _slow_noise(rng: np.random.Generator, t: np.ndarray, dims: int, lo: float, hi: float):
    """``(T, dims)`` smooth zero-mean signal: three random sinusoids per dimension, unit scale."""
    freqs = rng.uniform(lo, hi, (3, dims))
    phases = rng.uniform(0, 2 * np.pi, (3, dims))
    weights = rng.uniform(0.5, 1.0, (3, dims))
    signal = (weights[:, None, :] * np.sin(2 * np.pi * freqs[:, None, :] * t[None, :, None]
                                           + phases[:, None, :])).sum(axis=0)  # fmt: skip
    return signal / np.sqrt((weights**2).sum(axis=0) / 2.0)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average with edge padding, so that state changes ramp over ``width`` frames."""
    if width <= 1 or x.size == 0:
        return x
    padded = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def _quaternions(pos: np.ndarray) -> np.ndarray:
    """``(T, 25, 4)`` w, x, y, z rotating +y onto each joint's bone (leaves: zero)."""
    parent = np.where(PARENT >= 0, PARENT, SM)
    bone = pos - pos[:, parent]
    bone[:, SB] = pos[:, SM] - pos[:, SB]  # the root points up the spine
    bone /= np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-9)
    # Shortest rotation from a = (0, 1, 0) to b: (1 + a.b, a x b) = (1 + by, bz, 0, -bx).
    q = np.stack([1.0 + bone[..., 1], bone[..., 2], np.zeros_like(bone[..., 0]), -bone[..., 0]], -1)
    q /= np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-9)
    q[:, list(LEAVES)] = 0.0
    return q


def _project(pos: np.ndarray, camera: tuple[float, float, float]) -> np.ndarray:
    """``(T, 25, 2)`` pixel coordinates (u right, v down) of camera-space points."""
    focal, cx, cy = camera
    z = np.maximum(pos[..., 2], 1e-3)
    return np.stack([cx + focal * pos[..., 0] / z, cy - focal * pos[..., 1] / z], axis=-1)


def synthesize_skeleton(
    plan: SubjectPlan, seed: int, lost_runs_per_1000: float = LOST_RUNS_PER_1000
) -> np.ndarray:
    """Renders one recording.

    Args:
      plan: the subject's plan (frames, segments, instances).
      seed: the dataset seed.
      lost_runs_per_1000: mean number of lost-tracking runs (all-zero frames,
        1-90 frames each) per 1,000 frames.

    Returns:
      ``(T, 25, 11)`` float32 in the raw column layout of :mod:`tfds_smg.raw`.
    """
    rng = np.random.default_rng([seed, 1, plan.subject])
    T = plan.num_frames
    t = np.arange(T) / FPS

    state = np.full(T, -1)
    for _, start, end, code in plan.emotion:
        state[start:end] = code // 10
    stress = _smooth((state == 1).astype(np.float64), 2 * FPS)

    # The subject: body size, a personal rest posture, where the chair stands.
    pose = TEMPLATE * rng.uniform(0.92, 1.08)
    pose[UPPER_BODY, 2] += rng.normal(0.0, 0.02)  # habitual lean
    for wrist in (LW, RW):
        pose[SUBTREE[wrist]] += rng.normal(0.0, 0.02, 3)
    local = np.broadcast_to(pose, (T, raw.NUM_JOINTS, 3)).copy()
    _add_idle_motion(rng, local, t, stress)
    _add_micro_gestures(rng, local, plan, pose)
    out = _raw_columns(_to_camera(rng, local))

    # Lost tracking: the sensor writes all-zero rows.
    for _ in range(rng.poisson(lost_runs_per_1000 * T / 1000.0)):
        start = int(rng.integers(0, T))
        out[start : start + min(90, 1 + int(rng.geometric(0.12)))] = 0.0
    return out


def _add_idle_motion(
    rng: np.random.Generator, local: np.ndarray, t: np.ndarray, stress: np.ndarray
) -> None:
    """Adds breathing, postural sway and hand drift to ``local`` ``(T, 25, 3)`` in place.

    ``t`` is ``(T,)`` seconds and ``stress`` ``(T,)`` in ``[0, 1]`` (1: stressed).
    """
    T = t.shape[0]
    # Breathing: chest and everything above rise and fall, faster when stressed.
    rate = rng.uniform(0.2, 0.28) * (1.0 + 0.25 * stress)
    breath = np.sin(2 * np.pi * np.cumsum(rate) / FPS + rng.uniform(0, 2 * np.pi))
    weight = np.where(UPPER_BODY, 1.0, 0.0)
    weight[SM] = 0.5
    local[..., 1] += 0.004 * breath[:, None] * weight
    local[..., 2] -= 0.003 * breath[:, None] * weight

    # Postural sway: small rotations of the upper body about the spine base.
    angles = np.deg2rad(0.8) * (1.0 + 0.6 * stress)[:, None] * _slow_noise(rng, t, 2, 0.02, 0.15)
    arm = local[:, UPPER_BODY] - local[:, [SB]]
    omega = np.stack([angles[:, 0], np.zeros(T), angles[:, 1]], -1)[:, None, :]
    local[:, UPPER_BODY] += np.cross(omega, arm)
    local[:, [HEAD]] += 0.01 * _slow_noise(rng, t, 3, 0.05, 0.3)[:, None, :]

    # Idle hand drift, livelier when stressed.
    for wrist in (LW, RW):
        drift = 0.012 * (1.0 + 0.5 * stress)[:, None] * _slow_noise(rng, t, 3, 0.01, 0.1)
        local[:, SUBTREE[wrist]] += drift[:, None, :]


def _add_micro_gestures(
    rng: np.random.Generator, local: np.ndarray, plan: SubjectPlan, pose: np.ndarray
) -> None:
    """Adds each planned MG's motion to ``local`` ``(T, 25, 3)`` in place."""
    style = rng.uniform(0.8, 1.2)
    for label, start, end in plan.segments.tolist():
        static, osc, freq = mg_motion(label - 1, pose)
        length = end - start
        static = static * (1.0 + rng.normal(0.0, 0.15, static.shape))
        wave = np.sin(2 * np.pi * freq * rng.uniform(0.8, 1.2) * np.arange(length) / FPS
                      + rng.uniform(0, 2 * np.pi))  # fmt: skip
        amp = style * rng.uniform(0.7, 1.3) * envelope(length)
        local[start:end] += amp[:, None, None] * (static + wave[:, None, None] * osc)


def _to_camera(rng: np.random.Generator, local: np.ndarray) -> np.ndarray:
    """Person frame -> camera space (yaw, sensor pitch, distance) plus sensor noise, metres."""
    yaw, pitch = rng.uniform(-0.25, 0.25), rng.uniform(-0.08, 0.08)
    cy_, sy_, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    rot_yaw = np.array([[cy_, 0.0, sy_], [0.0, 1.0, 0.0], [-sy_, 0.0, cy_]])
    rot_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    offset = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.45, -0.3), rng.uniform(2.2, 2.9)])
    pos = local @ (rot_pitch @ rot_yaw).T + offset
    pos += rng.normal(0.0, 1.0, pos.shape) * NOISE_STD[:, None]
    return pos


def _raw_columns(pos: np.ndarray) -> np.ndarray:
    """``(T, 25, 11)`` float32 raw columns from camera-space positions ``(T, 25, 3)``."""
    out = np.empty((pos.shape[0], raw.NUM_JOINTS, raw.VALUES_PER_JOINT), dtype=np.float32)
    out[..., raw.WORLD_XYZ] = pos
    out[..., raw.ORIENTATION_WXYZ] = _quaternions(pos)
    out[..., raw.PIXEL_XY] = _project(pos, DEPTH_CAMERA)
    out[..., raw.EXTRA_9_10] = _project(pos, COLOR_CAMERA)
    return out
