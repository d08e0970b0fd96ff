"""The synthetic SMG's plan: who does what when (frames, MG clips, emotional-state instances).

SYNTHETIC DATA (see ``tfds_smg.synthetic``). The sizes follow the published SMG
totals; everything is a function of the seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfds_smg import raw

FPS = 30

# Published SMG totals.
REAL_FRAMES = 821_056
REAL_CLIPS = 3_692
REAL_CLIP_FRAMES = 51.3
TEST_SUBJECTS = (36, 37, 38, 39, 40)
TEST_SUBJECT_CLIPS = np.array([155, 164, 57, 121, 113])
TEST_CLASS_COUNTS = np.array([13, 3, 15, 2, 49, 1, 3, 191, 243, 34, 8, 30, 4, 5, 0, 0, 9])
NUM_TWO_INSTANCE_SUBJECTS = 9  # 31 * 4 + 9 * 2 = 142 = 71 relaxed + 71 stressed


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    """Size of a synthetic dataset (means over the 40 subjects)."""

    frames_per_subject: float
    clips_per_subject: float
    clip_frames: float


def spec_for_frames(frames_per_subject: float) -> ScaleSpec:
    # Keep SMG's MG density (clips per frame) at every size.
    return ScaleSpec(
        frames_per_subject=frames_per_subject,
        clips_per_subject=REAL_CLIPS / REAL_FRAMES * frames_per_subject,
        clip_frames=REAL_CLIP_FRAMES,
    )


SCALES: dict[str, ScaleSpec] = {
    "tiny": spec_for_frames(1_000),
    "small": spec_for_frames(4_000),
    "full": spec_for_frames(REAL_FRAMES / raw.NUM_SUBJECTS),
}

# Probability that an MG of each class falls in a stressed (rather than relaxed)
# instance, and each class's typical duration relative to the mean.
P_STRESSED = np.array(
    [0.45, 0.55, 0.6, 0.4, 0.3, 0.7, 0.7, 0.65, 0.6, 0.7, 0.7, 0.65, 0.75, 0.35, 0.7, 0.25, 0.5]
)
LENGTH_FACTOR = np.array(
    [0.8, 0.8, 0.7, 1.1, 1.0, 1.2, 1.2, 1.1, 1.0, 1.3, 1.1, 1.0, 1.3, 1.4, 1.0, 1.2, 1.0]
)


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
