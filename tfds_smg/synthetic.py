"""A synthetic SMG: the exact raw layout, filled with made-up Kinect v2 recordings.

SYNTHETIC DATA. Nothing written here comes from the SMG recordings; it exists so
that the builder, the pipelines and the models can be built, tested and timed
without the (access-restricted) real data. Every root it writes holds
``SMG_SYNTHETIC.json``, which the TFDS builder reads, logs and stores in the
dataset's metadata, so that numbers computed on it cannot pass for SMG results.

What it imitates (published facts, see ``../shared/smg/README.md``):

* 40 seated participants, one recording each, Kinect v2 camera space (metres,
  ``z`` away from the sensor, ``y`` up, ``x`` towards the sensor's left, i.e. the
  participant's right), the person 2.2-2.9 m from the sensor; 30 fps.
* ``full`` scale: 821,056 frames and 3,692 labeled micro-gestures (MGs) in 17
  classes, mean clip length ~51 frames. The test subjects 36-40 get exactly the
  official test set's 155, 164, 57, 121 and 113 clips and its per-class counts
  (0:13, 1:3, 2:15, 3:2, 4:49, 5:1, 6:3, 7:191, 8:243, 9:34, 10:8, 11:30, 12:4,
  13:5, 14:0, 15:0, 16:9); the training subjects follow the same long tail
  (weights ``test count + 2``) with every class present.
* 71 relaxed and 71 stressed emotional-state instances: 31 participants with
  four instances and 9 (the shortest recordings) with two, half of each state,
  each two to five minutes long at full scale (as published). Stressed
  instances hold more MGs and a different class mix (self-touching, fidgeting, leg and foot
  movements lean stressed; leaning back, stretching, crossing the legs lean
  relaxed), and stressed breathing and sway are faster and larger, so emotion
  recognition has signal.

The motion: a seated template skeleton scaled per subject; breathing
(0.2-0.28 Hz, faster when stressed), slow postural sway about the spine base,
slow hand drift, per-joint sensor noise (larger at the extremities), and
occasional runs of all-zero frames where the sensor lost the body. Each MG class
adds one distinct small motion of the body part its index is mapped to (the real
class names are not published machine-readably, so these are motions, not
names):

===== ==============================================================
class motion (body part)
===== ==============================================================
0     head nod (head, neck)
1     head shake (head, neck)
2     shoulder shrug (shoulders and arms)
3     lean forward (upper body)
4     lean back / sit up (upper body)
5     right hand to the face (right arm)
6     left hand to the face (left arm)
7     rub hands together in the lap (both hands)
8     finger fidgeting on the lap (hands, fingertips)
9     cross the arms (both arms)
10    right hand to the neck, scratching (right arm)
11    left hand scratches the right arm (left arm)
12    right-knee bounce (right leg)
13    cross the right leg over the left (right leg)
14    left-foot tapping (left foot)
15    stretch both arms forward and up (both arms)
16    right hand on the chest (right arm)
===== ==============================================================

Joint orientations are the rotation taking +y to the bone from the parent joint
(zero for the leaf joints, as the Kinect SDK reports); columns 7-8 hold a
pinhole projection into the 512x424 depth image and 9-10 into the 1920x1080
colour image (NTU RGB+D's order; what the real files hold there is unconfirmed).
The emotional-state code is ``10 * state + k`` with ``state`` 0 relaxed /
1 stressed and ``k`` a random 1 or 2 (the meaning of the authors' second digit
is not published).

Everything is a function of ``seed``: the whole-dataset plan (frame counts,
clips, instances) comes from one generator, each subject's motion from its own,
so ``--subjects 1,36`` writes byte-identical copies of those two subjects.

Command line (console script ``smg-synth``)::

    smg-synth --out /tmp/smg_raw --scale full --seed 0
    smg-synth --out /tmp/smg_tiny --scale tiny --subjects 1-3,36 --miga
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tfds_smg import raw

GENERATOR_VERSION = "1.0.0"
MARKER_NAME = "SMG_SYNTHETIC.json"
FPS = 30

# Published SMG totals.
REAL_FRAMES = 821_056
REAL_CLIPS = 3_692
REAL_CLIP_FRAMES = 51.3
TEST_SUBJECTS = (36, 37, 38, 39, 40)
TEST_SUBJECT_CLIPS = np.array([155, 164, 57, 121, 113])
TEST_CLASS_COUNTS = np.array([13, 3, 15, 2, 49, 1, 3, 191, 243, 34, 8, 30, 4, 5, 0, 0, 9])
NUM_TWO_INSTANCE_SUBJECTS = 9  # 31 * 4 + 9 * 2 = 142 = 71 relaxed + 71 stressed

# The authors' classification preprocessing (smg_gendata.py): at most the last 59
# rows of a segment, written into a zero array of 60 frames.
MIGA_MAX_FRAME = 60
LOST_RUNS_PER_1000 = 0.3  # default lost-tracking runs (all-zero frames) per 1,000 frames


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    """Size of a synthetic dataset (means over the 40 subjects)."""

    frames_per_subject: float
    clips_per_subject: float
    clip_frames: float


def _scale(frames_per_subject: float) -> ScaleSpec:
    # Keep SMG's MG density (clips per frame) at every size.
    return ScaleSpec(
        frames_per_subject=frames_per_subject,
        clips_per_subject=REAL_CLIPS / REAL_FRAMES * frames_per_subject,
        clip_frames=REAL_CLIP_FRAMES,
    )


SCALES: dict[str, ScaleSpec] = {
    "tiny": _scale(1_000),
    "small": _scale(4_000),
    "full": _scale(REAL_FRAMES / raw.NUM_SUBJECTS),
}

# --- The skeleton ------------------------------------------------------------
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

# --- The micro-gestures --------------------------------------------------------
# Probability that an MG of each class falls in a stressed (rather than relaxed)
# instance, and each class's typical duration relative to the mean.
P_STRESSED = np.array(
    [0.45, 0.55, 0.6, 0.4, 0.3, 0.7, 0.7, 0.65, 0.6, 0.7, 0.7, 0.65, 0.75, 0.35, 0.7, 0.25, 0.5]
)
LENGTH_FACTOR = np.array(
    [0.8, 0.8, 0.7, 1.1, 1.0, 1.2, 1.2, 1.1, 1.0, 1.3, 1.1, 1.0, 1.3, 1.4, 1.0, 1.2, 1.0]
)


def _reach(d: np.ndarray, hand_root: int, elbow: int, target_delta: np.ndarray, frac: float):
    """Moves a wrist and everything beyond it by ``target_delta``; the elbow by ``frac`` of it."""
    d[SUBTREE[hand_root]] += target_delta
    d[elbow] += frac * target_delta


def _mg_motion(c: int, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
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


def _envelope(length: int) -> np.ndarray:
    """``(length,)`` 0 -> 1 -> 0: smooth ramps over the first and last 30 %, a plateau between."""
    t = np.arange(length, dtype=np.float64)
    ramp = max(1.0, 0.3 * (length - 1))
    x = np.clip(np.minimum(t, length - 1 - t) / ramp, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# --- The plan: who does what when ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class SubjectPlan:
    """Everything about one synthetic recording except its motion.

    Attributes:
      subject: 1-40.
      num_frames: ``T``.
      segments: ``(K, 3)`` int64 ``[label 1-17, start, end)``, sorted by start.
      emotion: ``(E, 4)`` int64 ``[id, start, end, code]``, ``code = 10 * state + k``.
      max_depth: value written to the data file (mm).
    """

    subject: int
    num_frames: int
    segments: np.ndarray
    emotion: np.ndarray
    max_depth: int

    @property
    def sample_id(self) -> str:
        return f"Sample{self.subject:04d}"


def _apportion(total: int, weights: np.ndarray, minimum: int = 0) -> np.ndarray:
    """Integers summing to ``total`` in proportion to ``weights`` (largest remainder)."""
    weights = np.asarray(weights, dtype=np.float64)
    base = np.full(weights.size, minimum if total >= minimum * weights.size else 0, np.int64)
    rest = total - int(base.sum())
    quotas = rest * weights / weights.sum()
    counts = np.floor(quotas).astype(np.int64)
    short = rest - int(counts.sum())
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[:short]] += 1
    return base + counts


def make_plan(spec: ScaleSpec, seed: int) -> list[SubjectPlan]:
    """Plans all 40 recordings (frame counts, MG segments, emotional-state instances).

    Deterministic in ``(spec, seed)`` and independent of which subjects are
    later written.

    Raises:
      ValueError: when the recordings are too short to hold the clips.
    """
    rng = np.random.default_rng([seed, 0])
    n = raw.NUM_SUBJECTS
    subjects = np.arange(1, n + 1)
    is_test = np.isin(subjects, TEST_SUBJECTS)

    # Frames per subject: +-12 % around the mean, summing to the scale's total.
    total_frames = round(spec.frames_per_subject * n)
    frames = _apportion(total_frames, np.clip(rng.normal(1.0, 0.12, n), 0.7, 1.3))

    # Clips per subject: the test subjects in the official proportions.
    total_clips = round(spec.clips_per_subject * n)
    n_test = round(total_clips * TEST_SUBJECT_CLIPS.sum() / REAL_CLIPS)
    clips = np.zeros(n, np.int64)
    clips[is_test] = _apportion(n_test, TEST_SUBJECT_CLIPS)
    propensity = rng.uniform(0.6, 1.4, int((~is_test).sum()))  # some participants fidget more
    clips[~is_test] = _apportion(total_clips - n_test, frames[~is_test] * propensity)

    # Class multisets: the test long tail exactly, the same tail (+2) in train.
    test_labels = np.repeat(np.arange(raw.NUM_CLASSES), _apportion(n_test, TEST_CLASS_COUNTS))
    train_labels = np.repeat(
        np.arange(raw.NUM_CLASSES),
        _apportion(total_clips - n_test, TEST_CLASS_COUNTS + 2, minimum=1),
    )
    rng.shuffle(test_labels)
    rng.shuffle(train_labels)
    labels_of = {}
    for where, pool in ((is_test, test_labels), (~is_test, train_labels)):
        parts = np.split(pool, np.cumsum(clips[where])[:-1])
        labels_of |= dict(zip(subjects[where].tolist(), parts, strict=True))

    # Clip lengths: log-normal, per-class factors, rescaled to the target mean.
    all_labels = np.concatenate([labels_of[int(s)] for s in subjects])
    lengths = rng.lognormal(0.0, 0.45, all_labels.size) * LENGTH_FACTOR[all_labels]
    if lengths.size:
        lengths *= spec.clip_frames / lengths.mean()
    lo, hi = max(3, round(0.25 * spec.clip_frames)), max(4, round(4 * spec.clip_frames))
    lengths = np.clip(np.rint(lengths), lo, hi).astype(np.int64)
    lengths_of = dict(zip(subjects.tolist(), np.split(lengths, np.cumsum(clips)[:-1]), strict=True))

    # The shortest recordings contribute two instances, the others four.
    order = np.argsort(frames, kind="stable")
    two_instances = set(subjects[order[:NUM_TWO_INSTANCE_SUBJECTS]].tolist())
    plans = []
    for s in subjects.tolist():
        sub_rng = np.random.default_rng([seed, 0, s])
        emotion = _plan_instances(int(frames[s - 1]), 2 if s in two_instances else 4, sub_rng)
        segments = _place_clips(
            int(frames[s - 1]), emotion, labels_of[s], lengths_of[s], sub_rng, s
        )
        plans.append(
            SubjectPlan(
                subject=s,
                num_frames=int(frames[s - 1]),
                segments=segments,
                emotion=emotion,
                max_depth=int(sub_rng.integers(3500, 4501)),
            )
        )
    return plans


def _plan_instances(num_frames: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(count, 4)`` rows ``[id, start, end, code]``: alternating gaps and instances."""
    states = rng.permutation(np.repeat([0, 1], count // 2))
    coverage = rng.uniform(0.85, 0.95) if count == 4 else rng.uniform(0.45, 0.65)
    inside = round(coverage * num_frames)
    # Lengths within +-15 % of each other: at full scale instances last about 2-5 minutes.
    lengths = _apportion(inside, rng.uniform(0.85, 1.15, count), minimum=1)
    gaps = _apportion(num_frames - inside, rng.dirichlet(np.full(count + 1, 2.0)))
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    codes = 10 * states + rng.integers(1, 3, count)
    return np.stack([np.arange(1, count + 1), starts, starts + lengths, codes], axis=1).astype(
        np.int64
    )


def _place_clips(
    num_frames: int,
    emotion: np.ndarray,
    labels: np.ndarray,
    lengths: np.ndarray,
    rng: np.random.Generator,
    subject: int,
) -> np.ndarray:
    """Non-overlapping ``[label 1-17, start, end)`` rows, sorted by start.

    Each clip picks an interval (an instance of its preferred state, or the
    stretches between instances), weighted by the room left there.
    """
    min_gap = 2
    bounds = np.concatenate([[0], emotion[:, 1:3].ravel(), [num_frames]])
    intervals = []  # (start, end, state; -1 outside every instance)
    for i in range(len(bounds) - 1):
        start, end = int(bounds[i]), int(bounds[i + 1])
        if end > start:
            intervals.append((start, end, int(emotion[i // 2, 3] // 10) if i % 2 else -1))
    kinds = np.array([k for _, _, k in intervals])
    room = np.array([e - s - min_gap for s, e, _ in intervals], dtype=np.float64)
    outside = room[kinds < 0].sum() / max(1.0, room.sum())
    chosen = [[] for _ in intervals]
    for label, length in zip(labels.tolist(), lengths.tolist(), strict=True):
        u = rng.uniform()
        want = -1 if u < 0.5 * outside else int(rng.uniform() < P_STRESSED[label])
        fits = room >= length + min_gap
        if not fits.any() and room.max() > min_gap:
            # Short recordings (tests): shorten the clip to the largest room left.
            length = int(room.max()) - min_gap
            fits = room >= length + min_gap
        pick = fits & (kinds == want)
        if not pick.any():
            pick = fits
        if not pick.any():
            raise ValueError(
                f"subject {subject}: {num_frames} frames cannot hold {labels.size} clips of "
                f"{lengths.mean():.0f} frames on average; raise frames_per_subject or lower "
                "clips_per_subject / clip_frames"
            )
        weights = np.where(pick, room, 0.0)
        i = int(rng.choice(len(intervals), p=weights / weights.sum()))
        chosen[i].append((label, length))
        room[i] -= length + min_gap
    rows = []
    for (start, end, _), members in zip(intervals, chosen, strict=True):
        if not members:
            continue
        order = rng.permutation(len(members))
        members = [members[k] for k in order]
        size = np.array([m[1] for m in members])
        slack = end - start - int(size.sum()) - min_gap * (len(members) + 1)
        gaps = rng.multinomial(slack, rng.dirichlet(np.ones(len(members) + 1))) + min_gap
        begin = start + np.cumsum(gaps[:-1]) + np.concatenate([[0], np.cumsum(size)[:-1]])
        rows += [(m[0] + 1, b, b + m[1]) for m, b in zip(members, begin.tolist(), strict=True)]
    rows.sort(key=lambda r: r[1])
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


# --- The motion ----------------------------------------------------------------


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

    # The micro-gestures.
    style = rng.uniform(0.8, 1.2)
    for label, start, end in plan.segments.tolist():
        static, osc, freq = _mg_motion(label - 1, pose)
        length = end - start
        static = static * (1.0 + rng.normal(0.0, 0.15, static.shape))
        wave = np.sin(2 * np.pi * freq * rng.uniform(0.8, 1.2) * np.arange(length) / FPS
                      + rng.uniform(0, 2 * np.pi))  # fmt: skip
        amp = style * rng.uniform(0.7, 1.3) * _envelope(length)
        local[start:end] += amp[:, None, None] * (static + wave[:, None, None] * osc)

    # Person frame -> camera space: turn (yaw), sensor tilt (pitch), distance.
    yaw, pitch = rng.uniform(-0.25, 0.25), rng.uniform(-0.08, 0.08)
    cy_, sy_, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    rot_yaw = np.array([[cy_, 0.0, sy_], [0.0, 1.0, 0.0], [-sy_, 0.0, cy_]])
    rot_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    offset = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.45, -0.3), rng.uniform(2.2, 2.9)])
    pos = local @ (rot_pitch @ rot_yaw).T + offset
    pos += rng.normal(0.0, 1.0, pos.shape) * NOISE_STD[:, None]

    out = np.empty((T, raw.NUM_JOINTS, raw.VALUES_PER_JOINT), dtype=np.float32)
    out[..., raw.WORLD_XYZ] = pos
    out[..., raw.ORIENTATION_WXYZ] = _quaternions(pos)
    out[..., raw.PIXEL_XY] = _project(pos, DEPTH_CAMERA)
    out[..., raw.EXTRA_9_10] = _project(pos, COLOR_CAMERA)

    # Lost tracking: the sensor writes all-zero rows.
    for _ in range(rng.poisson(lost_runs_per_1000 * T / 1000.0)):
        start = int(rng.integers(0, T))
        out[start : start + min(90, 1 + int(rng.geometric(0.12)))] = 0.0
    return out


# --- Writing -----------------------------------------------------------------

# Millimetre-scale precision is below Kinect noise; fewer digits keep the files small.
_JOINT_FORMAT = ",".join(["%.4f"] * 7 + ["%.1f"] * 4)
_ROW_FORMAT = ",".join([_JOINT_FORMAT] * raw.NUM_JOINTS) + "\n"
_ROWS_PER_FORMAT = 256  # one %-format call per block of rows amortizes the Python overhead


def write_skeleton_csv(path: Path, skeleton: np.ndarray) -> None:
    """Writes ``(T, 25, 11)`` values as the header-less skeleton CSV."""
    flat = skeleton.reshape(skeleton.shape[0], -1).astype(np.float64)
    block = _ROW_FORMAT * _ROWS_PER_FORMAT
    width = _ROWS_PER_FORMAT * flat.shape[1]
    full = flat.shape[0] - flat.shape[0] % _ROWS_PER_FORMAT
    with path.open("w", encoding="ascii", newline="\n") as f:
        # Batches of 16 blocks bound the memory of the Python floats behind `tolist()`.
        for begin in range(0, full, 16 * _ROWS_PER_FORMAT):
            chunks = flat[begin : min(full, begin + 16 * _ROWS_PER_FORMAT)].reshape(-1, width)
            f.write("".join(block % tuple(chunk) for chunk in chunks.tolist()))
        f.write("".join(_ROW_FORMAT % tuple(row) for row in flat[full:].tolist()))


def _write_rows(path: Path, rows: np.ndarray) -> None:
    path.write_text("".join(",".join(map(str, r)) + "\n" for r in rows.tolist()), "ascii")


def write_subject(root: Path, plan: SubjectPlan, skeleton: np.ndarray) -> Path:
    """Writes one ``SampleNNNN`` folder (all four files); returns it."""
    folder = root / plan.sample_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = raw.sample_paths(folder)
    write_skeleton_csv(paths["skeleton"], skeleton)
    _write_rows(paths["finelabels"], plan.segments)
    paths["data"].write_text(f"{plan.num_frames},{FPS},{plan.max_depth}\n", "ascii")
    _write_rows(paths["emotion"], plan.emotion)
    return folder


def miga_arrays(plan: SubjectPlan, skeleton: np.ndarray) -> tuple[np.ndarray, list[str], list[int]]:
    """One subject's clips in the authors' classification format (``smg_gendata.py``).

    Returns:
      ``(K, 3, 60, 25, 1)`` float32 (world xyz of at most the last 59 rows of
      each segment, zero-padded), names ``SampleNNNN<row>``, 0-based labels.
    """
    data = np.zeros((len(plan.segments), 3, MIGA_MAX_FRAME, raw.NUM_JOINTS, 1), np.float32)
    for k, (_, start, end) in enumerate(plan.segments.tolist()):
        start = max(start, end - (MIGA_MAX_FRAME - 1))
        xyz = skeleton[start:end, :, raw.WORLD_XYZ]  # (L, 25, 3)
        data[k, :, : end - start, :, 0] = xyz.transpose(2, 0, 1)
    names = [f"{plan.sample_id}{k}" for k in range(len(plan.segments))]
    return data, names, (plan.segments[:, 0] - 1).tolist()


def _write_miga(root: Path, parts: dict[str, list[tuple[np.ndarray, list[str], list[int]]]]):
    for split, items in parts.items():
        if not items:
            continue
        data = np.concatenate([d for d, _, _ in items])
        names = [n for _, ns, _ in items for n in ns]
        labels = [label for _, _, ls in items for label in ls]
        np.save(root / raw.MIGA_DATA_NAME.format(split=split), data)
        with (root / raw.MIGA_LABEL_NAME.format(split=split)).open("wb") as f:
            pickle.dump((names, labels), f)


def generate(
    out_dir: Path | str,
    *,
    scale: str = "tiny",
    seed: int = 0,
    subjects: Sequence[int] | None = None,
    frames_per_subject: float | None = None,
    clips_per_subject: float | None = None,
    clip_frames: float | None = None,
    lost_runs_per_1000: float = LOST_RUNS_PER_1000,
    miga: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Writes a synthetic SMG raw tree (see the module docstring).

    Args:
      out_dir: root to write ``SampleNNNN/`` folders and the marker into.
      scale: ``"tiny"`` (~1,000 frames per subject), ``"small"`` (~4,000) or
        ``"full"`` (821,056 frames, 3,692 clips in all).
      seed: everything is a function of it.
      subjects: which of 1-40 to write (default all); the others are planned
        but not written, so a subset is byte-identical to the same subjects of
        a full run.
      frames_per_subject, clips_per_subject, clip_frames: override the scale's
        means (clips default to SMG's density for the chosen frame count).
      lost_runs_per_1000: lost-tracking runs per 1,000 frames.
      miga: also write the authors' preprocessed ``{train,test}_data.npy`` /
        ``{train,test}_label.pkl`` (for the ``miga`` config).
      overwrite: replace an existing non-empty ``out_dir`` that holds a tree
        written by this module (one with the marker file); others are refused.
      progress: show a progress bar.

    Returns:
      ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
      FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false.
      ValueError: unknown scale or subjects, or recordings too short for the clips.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}")
    frames = frames_per_subject or SCALES[scale].frames_per_subject
    spec = ScaleSpec(
        frames_per_subject=frames,
        clips_per_subject=(
            clips_per_subject if clips_per_subject is not None else _scale(frames).clips_per_subject
        ),
        clip_frames=clip_frames or SCALES[scale].clip_frames,
    )
    chosen = sorted(set(subjects)) if subjects is not None else list(range(1, raw.NUM_SUBJECTS + 1))
    if not chosen or not all(1 <= s <= raw.NUM_SUBJECTS for s in chosen):
        raise ValueError(f"subjects must be a non-empty subset of 1-40, got {chosen}")
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; pass overwrite=True (--overwrite)")
        if read_marker(root) is None:  # never delete a folder this module did not write
            raise FileExistsError(
                f"{root} is not empty and holds no {MARKER_NAME}; refusing to overwrite it"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)

    plans = make_plan(spec, seed)
    parts: dict[str, list] = {"train": [], "test": []}
    totals = {"frames": 0, "clips": 0, "zero_frames": 0, "instances": 0}
    for s in tqdm(chosen, desc="smg-synth", unit="subject", disable=not progress):
        plan = plans[s - 1]
        skeleton = synthesize_skeleton(plan, seed, lost_runs_per_1000)
        write_subject(root, plan, skeleton)
        if miga:
            parts["test" if s in TEST_SUBJECTS else "train"].append(miga_arrays(plan, skeleton))
        totals["frames"] += plan.num_frames
        totals["clips"] += len(plan.segments)
        totals["instances"] += len(plan.emotion)
        totals["zero_frames"] += int((~skeleton[..., raw.WORLD_XYZ].any(axis=(1, 2))).sum())
    if miga:
        _write_miga(root, parts)
    marker = {
        "synthetic": True,
        "note": "Synthetic data written by tfds_smg.synthetic; not the SMG recordings.",
        "generator": "tfds_smg.synthetic",
        "generator_version": GENERATOR_VERSION,
        "scale": scale,
        "seed": seed,
        "subjects": chosen,
        "frames_per_subject": spec.frames_per_subject,
        "clips_per_subject": spec.clips_per_subject,
        "clip_frames": spec.clip_frames,
        "lost_runs_per_1000": lost_runs_per_1000,
        "miga_files": miga,
        **{f"total_{k}": v for k, v in totals.items()},
    }
    (root / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", "ascii")
    return root


def read_marker(root: Path | str) -> dict | None:
    """The marker's content when ``root`` holds synthetic data, else ``None``."""
    path = Path(root) / MARKER_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _parse_subjects(text: str) -> list[int]:
    """``"1-3,36"`` -> ``[1, 2, 3, 36]``."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            out += range(int(lo), int(hi or lo) + 1)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad subject list {text!r}; e.g. 1-3,36") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``smg-synth``: writes a synthetic SMG raw tree; prints a JSON summary."""
    parser = argparse.ArgumentParser(
        prog="smg-synth",
        description="Write a SYNTHETIC SMG raw tree (SampleNNNN/ CSV files + a marker file).",
    )
    parser.add_argument("--out", required=True, type=Path, help="root folder to write")
    parser.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subjects", type=_parse_subjects, help="e.g. 1-3,36 (default: 1-40)")
    parser.add_argument("--frames-per-subject", type=float, help="mean frames per recording")
    parser.add_argument("--clips-per-subject", type=float, help="mean MG clips per recording")
    parser.add_argument("--clip-frames", type=float, help="mean clip length in frames")
    parser.add_argument(
        "--lost-runs-per-1000",
        type=float,
        default=LOST_RUNS_PER_1000,
        help="lost-tracking runs per 1,000 frames",
    )
    parser.add_argument("--miga", action="store_true", help="also write {train,test}_data.npy/.pkl")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    try:
        root = generate(
            args.out,
            scale=args.scale,
            seed=args.seed,
            subjects=args.subjects,
            frames_per_subject=args.frames_per_subject,
            clips_per_subject=args.clips_per_subject,
            clip_frames=args.clip_frames,
            lost_runs_per_1000=args.lost_runs_per_1000,
            miga=args.miga,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except (ValueError, FileExistsError) as err:
        print(f"smg-synth: error: {err}", file=sys.stderr)
        return 2
    marker = read_marker(root)
    summary = {"out": str(root), "scale": args.scale, "seed": args.seed}
    summary |= {k: v for k, v in marker.items() if k.startswith("total_")}
    summary["seconds"] = round(time.perf_counter() - began, 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
