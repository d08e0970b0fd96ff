"""Per-instance features from the micro-gestures (MGs) inside an instance.

The paper's thesis is that MGs carry the hidden emotional state. These
features keep only *which* MGs happen, *how often* and *how long* they last,
never the motion itself, so a classifier that reads them tests the thesis:

* ``count``: number of MGs of each class (17 values) and in all (1);
* ``rate``: the same per minute of the instance (``count / (T / fps / 60)``),
  which removes the instance's length (SMG's last two to five minutes);
* ``mean_duration``: mean MG duration in seconds over all MGs of the instance
  (0 when it has none).

An MG that straddles an instance boundary counts once, with the part inside
the instance as its duration (what the TFDS ``emotion`` config stores for the
ground truth, and what ``clip_to_instance`` does for recognized MGs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from smg_jax.emotion.data import NUM_MG_CLASSES, EmotionError, Segment

FEATURE_KINDS = ("count", "rate", "mean_duration")


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """The feature kinds as a tuple; unknown or repeated names raise ``EmotionError``."""
    kinds = tuple(kinds)
    unknown = sorted(set(kinds) - set(FEATURE_KINDS))
    if unknown or not kinds or len(set(kinds)) != len(kinds):
        raise EmotionError(
            f"mg.features={list(kinds)}: choose one or more distinct kinds of "
            f"{list(FEATURE_KINDS)}."
        )
    return kinds


def feature_names(
    kinds: Sequence[str],
    class_names: Sequence[str] | None = None,
    num_classes: int = NUM_MG_CLASSES,
) -> list[str]:
    """Names of the columns ``mg_features`` returns, e.g. ``"rate mg05"``, ``"count all"``."""
    names = (
        list(class_names)
        if class_names is not None
        else [f"mg{c + 1:02d}" for c in range(num_classes)]
    )
    if len(names) != num_classes:
        raise EmotionError(f"{len(names)} class names for {num_classes} MG classes.")
    out = []
    for kind in check_kinds(kinds):
        if kind == "mean_duration":
            out.append("mean duration (s)")
        else:
            out += [f"{kind} {name}" for name in names] + [f"{kind} all"]
    return out


def mg_features(
    segments: Iterable[Sequence[int]],
    num_frames: int,
    *,
    fps: float = 30.0,
    kinds: Sequence[str] = FEATURE_KINDS,
    num_classes: int = NUM_MG_CLASSES,
    where: str = "instance",
) -> np.ndarray:
    """The feature vector of one instance.

    Args:
      segments: the instance's MGs ``(label 0-16, start, end)``, frames
        ``[start, end)`` relative to the instance.
      num_frames: the instance's length ``T`` in frames (> 0).
      fps: frames per second (Kinect v2: 30).
      kinds: which features, in this order (see the module docstring).
      num_classes: MG classes.
      where: the instance's name, for error messages.

    Returns:
      ``(D,)`` float64, columns named by ``feature_names(kinds)``:
      ``count`` and ``rate`` give ``num_classes + 1`` values each, ``mean_duration`` one.
    """
    if num_frames <= 0:
        raise EmotionError(f"{where}: an instance of {num_frames} frames has no MG rate.")
    if fps <= 0:
        raise EmotionError(f"data.fps={fps} must be positive (Kinect v2 records 30 fps).")
    counts = np.zeros(num_classes, np.float64)
    durations = []
    for row, segment in enumerate(segments):
        label, start, end = (int(v) for v in tuple(segment)[:3])
        if not 0 <= label < num_classes or not 0 <= start <= end <= num_frames:
            raise EmotionError(
                f"{where}: MG row {row} ({label}, {start}, {end}) is not a class in "
                f"[0, {num_classes}) within the instance's {num_frames} frames."
            )
        counts[label] += 1
        durations.append((end - start) / fps)
    minutes = num_frames / fps / 60.0
    parts = []
    for kind in check_kinds(kinds):
        if kind == "count":
            parts += [counts, [counts.sum()]]
        elif kind == "rate":
            parts += [counts / minutes, [counts.sum() / minutes]]
        else:
            parts.append([float(np.mean(durations)) if durations else 0.0])
    return np.concatenate([np.asarray(p, np.float64) for p in parts])


def clip_to_instance(segments: Iterable[Sequence[int]], start: int, end: int) -> list[Segment]:
    """Recording-level MGs -> the instance ``[start, end)``'s MGs, clipped, instance-relative.

    The builder's rule for the ground truth (``tfds_smg.smg``): an MG belongs
    to the instance when it overlaps it (``mg_start < end`` and
    ``mg_end > start``); its frames are cut to the instance.
    """
    out = []
    for segment in segments:
        label, s, e = (int(v) for v in tuple(segment)[:3])
        if s < end and e > start:
            out.append((label, max(s, start) - start, min(e, end) - start))
    return out
