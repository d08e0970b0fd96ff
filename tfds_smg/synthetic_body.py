"""The synthetic SMG's body: the seated Kinect v2 skeleton and the 17 micro-gesture motions.

SYNTHETIC DATA (see ``tfds_smg.synthetic``). Joint indices follow the Kinect v2 /
NTU order; positions are metres in the person's frame (x = person's right, y = up,
z = away from the sensor).
"""

from __future__ import annotations

import numpy as np

from tfds_smg import raw

# Joint indices (0-based Kinect v2 / NTU order).
SB, SM, NECK, HEAD = 0, 1, 2, 3
LS, LE, LW, LH, RS, RE, RW, RH = 4, 5, 6, 7, 8, 9, 10, 11
LHIP, LK, LA, LF, RHIP, RK, RA, RF = 12, 13, 14, 15, 16, 17, 18, 19
SS, LHT, LT, RHT, RT = 20, 21, 22, 23, 24

# The Kinect SDK's joint hierarchy (parent of each joint; -1 for the root). It is
# the sensor's kinematic tree, used here for bone orientations and for moving a
# limb with everything beyond it; the models' graph lives in smg_jax.graph.
PARENT = np.array(
    [-1, SB, SS, NECK, SS, LS, LE, LW, SS, RS, RE, RW, SB, LHIP, LK, LA, SB, RHIP, RK, RA, SM,
     LH, LH, RH, RH]
)  # fmt: skip
LEAVES = (HEAD, LF, RF, LHT, LT, RHT, RT)

# A seated person facing the sensor, hands resting on the thighs, in metres,
# relative to the spine base; x = person's right, y = up, z = away from the sensor.
TEMPLATE = np.array(
    [
        [0.000, 0.000, 0.000],  # spine base
        [0.000, 0.270, 0.010],  # spine mid
        [0.000, 0.550, 0.010],  # neck
        [0.000, 0.680, -0.010],  # head
        [-0.180, 0.440, 0.030],  # left shoulder
        [-0.220, 0.180, 0.010],  # left elbow
        [-0.150, 0.050, -0.210],  # left wrist
        [-0.130, 0.030, -0.280],  # left hand
        [0.180, 0.440, 0.030],  # right shoulder
        [0.220, 0.180, 0.010],  # right elbow
        [0.150, 0.050, -0.210],  # right wrist
        [0.130, 0.030, -0.280],  # right hand
        [-0.090, -0.020, 0.000],  # left hip
        [-0.110, 0.000, -0.420],  # left knee
        [-0.110, -0.420, -0.450],  # left ankle
        [-0.110, -0.470, -0.550],  # left foot
        [0.090, -0.020, 0.000],  # right hip
        [0.110, 0.000, -0.420],  # right knee
        [0.110, -0.420, -0.450],  # right ankle
        [0.110, -0.470, -0.550],  # right foot
        [0.000, 0.470, 0.020],  # spine shoulder
        [-0.120, 0.020, -0.350],  # left hand tip
        [-0.090, 0.050, -0.290],  # left thumb
        [0.120, 0.020, -0.350],  # right hand tip
        [0.090, 0.050, -0.290],  # right thumb
    ]
)
# Sensor noise (m, standard deviation) per joint: the extremities jitter most.
NOISE_STD = np.array(
    [0.0015, 0.0015, 0.002, 0.002, 0.002, 0.003, 0.004, 0.004, 0.002, 0.003, 0.004, 0.004,
     0.003, 0.004, 0.008, 0.01, 0.003, 0.004, 0.008, 0.01, 0.0015, 0.008, 0.008, 0.008, 0.008]
)  # fmt: skip

# Pinhole approximations of the Kinect v2 depth (512x424) and colour (1920x1080) cameras.
DEPTH_CAMERA = (365.5, 256.0, 212.0)  # focal length (px), cx, cy
COLOR_CAMERA = (1060.0, 960.0, 540.0)


def _subtree(joint: int) -> np.ndarray:
    """``joint`` and every joint beyond it in the kinematic tree, as a bool mask."""
    mask = np.zeros(raw.NUM_JOINTS, dtype=bool)
    mask[joint] = True
    changed = True
    while changed:  # at most the tree's depth passes
        grow = mask | mask[np.maximum(PARENT, 0)] & (PARENT >= 0)
        changed = bool((grow != mask).any())
        mask = grow
    return mask


SUBTREE = np.stack([_subtree(j) for j in range(raw.NUM_JOINTS)])  # (25, 25) bool
UPPER_BODY = SUBTREE[SS] | (np.arange(raw.NUM_JOINTS) == SM)


def _reach(d: np.ndarray, hand_root: int, elbow: int, target_delta: np.ndarray, frac: float):
    """Moves a wrist and everything beyond it by ``target_delta``; the elbow by ``frac`` of it."""
    d[SUBTREE[hand_root]] += target_delta
    d[elbow] += frac * target_delta


def mg_motion(c: int, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Class ``c``'s motion in the person's frame.

    Args:
      c: 0-based class.
      pose: ``(25, 3)`` the subject's rest pose (metres).

    Returns:
      ``(static, oscillation, frequency)``: ``(25, 3)`` displacement held at the
      MG's peak, ``(25, 3)`` amplitude of a sinusoid on top of it, and the
      sinusoid's frequency in Hz.
    """
    d = np.zeros((raw.NUM_JOINTS, 3))
    o = np.zeros((raw.NUM_JOINTS, 3))
    freq = 0.0
    upper = SUBTREE[SS]
    hands = SUBTREE[LW] | SUBTREE[RW]
    if c == 0:  # head nod
        d[HEAD] = (0.0, -0.01, -0.015)
        o[HEAD], o[NECK], freq = (0.0, 0.025, -0.01), (0.0, 0.008, 0.0), 1.4
    elif c == 1:  # head shake
        o[HEAD], o[NECK], freq = (0.03, 0.0, 0.005), (0.008, 0.0, 0.0), 1.6
    elif c == 2:  # shoulder shrug
        d[SUBTREE[LS] | SUBTREE[RS]] = (0.0, 0.045, 0.0)
        d[[NECK, HEAD]] = (0.0, 0.012, 0.0)
    elif c in (3, 4):  # lean forward / lean back; hands on the lap follow a third of it
        lean = np.array([0.0, -0.03, -0.10]) if c == 3 else np.array([0.0, 0.02, 0.07])
        d[upper] = lean
        d[hands] = 0.3 * lean
        d[SM] = 0.5 * lean
    elif c in (5, 6):  # hand to the face
        side = 1.0 if c == 5 else -1.0
        wrist, elbow, hand = (RW, RE, RH) if c == 5 else (LW, LE, LH)
        target = pose[HEAD] + (0.06 * side, -0.07, -0.09)
        _reach(d, wrist, elbow, target - pose[hand], 0.45)
        o[SUBTREE[wrist]], freq = (0.006, 0.006, 0.0), 2.5
    elif c == 7:  # rub hands
        for wrist, hand in ((LW, LH), (RW, RH)):
            d[SUBTREE[wrist]] = (-0.7 * pose[hand, 0], 0.04, -0.03)
        o[SUBTREE[LW]], o[SUBTREE[RW]], freq = (0.0, 0.0, 0.02), (0.0, 0.0, -0.02), 3.0
    elif c == 8:  # finger fidgeting
        d[SUBTREE[RW]] = (0.0, 0.015, -0.02)
        o[[RHT, RT]], o[RH], o[[LHT, LT]], freq = (0, 0.012, 0), (0, 0.006, 0), (0, -0.01, 0), 4.0
    elif c == 9:  # cross the arms
        _reach(d, RW, RE, pose[LE] + (0.02, 0.05, -0.06) - pose[RH], 0.0)
        _reach(d, LW, LE, pose[RE] + (-0.02, 0.08, -0.04) - pose[LH], 0.0)
        d[RE] += (-0.04, 0.08, -0.08)
        d[LE] += (0.04, 0.08, -0.08)
    elif c == 10:  # right hand to the neck
        _reach(d, RW, RE, pose[NECK] + (0.06, 0.0, 0.04) - pose[RH], 0.55)
        o[SUBTREE[RW]], freq = (0.0, 0.008, 0.0), 3.0
    elif c == 11:  # left hand scratches the right arm
        _reach(d, LW, LE, pose[RE] + (-0.03, 0.04, -0.04) - pose[LH], 0.4)
        o[SUBTREE[LW]], freq = (0.01, 0.01, 0.0), 3.5
    elif c == 12:  # right-knee bounce
        o[RK], o[RA], o[RF], freq = (0, 0.015, 0), (0, 0.01, 0), (0, 0.004, 0), 4.5
    elif c == 13:  # cross the right leg over the left
        d[RK], d[RA], d[RF] = (-0.07, 0.12, 0.0), (-0.18, 0.25, 0.05), (-0.2, 0.27, 0.0)
        d[RHIP] = (0.0, 0.01, 0.0)
    elif c == 14:  # left-foot tapping
        o[LF], o[LA], freq = (0.0, 0.02, 0.0), (0.0, 0.008, 0.0), 3.0
    elif c == 15:  # stretch the arms forward and up
        for wrist, elbow in ((LW, LE), (RW, RE)):
            d[SUBTREE[wrist]] = (0.0, 0.18, -0.25)
            d[elbow] = (0.0, 0.10, -0.15)
    elif c == 16:  # right hand on the chest
        _reach(d, RW, RE, pose[SS] + (0.02, -0.06, -0.10) - pose[RH], 0.4)
    else:
        raise ValueError(f"class {c} is not in 0-{raw.NUM_CLASSES - 1}")
    return d, o, freq


def envelope(length: int) -> np.ndarray:
    """``(length,)`` 0 -> 1 -> 0: smooth ramps over the first and last 30 %, a plateau between."""
    t = np.arange(length, dtype=np.float64)
    ramp = max(1.0, 0.3 * (length - 1))
    x = np.clip(np.minimum(t, length - 1 - t) / ramp, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
