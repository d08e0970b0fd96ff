"""The MG-based method for one fold: MGs per instance -> features -> logistic regression.

Which MGs an instance holds comes from ``mg.source`` (ground truth, a
recognizer trained here, or a folder of the online command's predictions) for the
test instances and from ``mg.train_on`` for the training instances; see
``smg_jax.emotion.recognized`` for what each choice means and costs.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections
import numpy as np

from smg_jax.emotion import features, logreg, protocols, recognized
from smg_jax.emotion.data import EmotionData, EmotionError, Instance, Segment
from smg_jax.emotion.protocols import Fold
from smg_jax.online.metric import score_segments


def check_config(mg: ml_collections.ConfigDict) -> None:
    """Refuses combinations that cannot run, naming the field and the fix."""
    if mg.source not in recognized.SOURCES:
        raise EmotionError(f"mg.source={mg.source!r}; choose from {list(recognized.SOURCES)}.")
    if mg.train_on not in recognized.TRAIN_ON:
        raise EmotionError(f"mg.train_on={mg.train_on!r}; choose from {list(recognized.TRAIN_ON)}.")
    features.check_kinds(mg.features)
    if mg.source == "predictions_dir":
        if not mg.predictions_dir:
            raise EmotionError("mg.source='predictions_dir' needs mg.predictions_dir.")
        if mg.train_on == "out_of_fold":
            raise EmotionError(
                "mg.train_on='out_of_fold' needs recognizers trained here (mg.source="
                "'recognizer'); with a predictions folder use 'ground_truth' or 'in_sample'."
            )
    if mg.source == "recognizer" and mg.recognizer not in recognized.RECOGNIZERS:
        raise EmotionError(
            f"mg.recognizer={mg.recognizer!r}; choose from {list(recognized.RECOGNIZERS)}."
        )


_TRAIN_ON_TEXT = {
    "ground_truth": "trained on annotated MGs",
    "in_sample": "trained on in-sample recognized MGs",
    "out_of_fold": "trained on out-of-fold recognized MGs",
}
_RECOGNIZER_TEXT = {
    "authors": "the authors' HMM recognizer",
    "detector_threshold": "the window detector (threshold)",
    "detector_hmm": "the window detector (HMM)",
}


def describe(mg: ml_collections.ConfigDict) -> str:
    """The method's row label in the tables."""
    kinds = "/".join(mg.features)
    if mg.source == "ground_truth":
        where = "ground-truth MGs"
    elif mg.source == "recognizer":
        where = (
            f"MGs found by {_RECOGNIZER_TEXT[mg.recognizer]} "
            f"(classifier {_TRAIN_ON_TEXT[mg.train_on]})"
        )
    else:
        where = f"MGs read from {mg.predictions_dir} (classifier {_TRAIN_ON_TEXT[mg.train_on]})"
    return f"MG {kinds} features, {where} + logistic regression"


@dataclasses.dataclass
class SegmentSource:
    """Gives the MGs of instances for a fold's training and test sides."""

    mg: ml_collections.ConfigDict
    recognizer: recognized.Recognizer | None = None  # mg.source == "recognizer"
    recordings_segments: dict[str, list[Segment]] | None = None  # mg.source == "predictions_dir"

    def _from_recordings(
        self, instances: Sequence[Instance], by_sample: dict[str, list[Segment]]
    ) -> list[list[Segment]]:
        return [
            features.clip_to_instance(by_sample[inst.sample_id], inst.start, inst.end)
            for inst in instances
        ]

    def _recognize(
        self, train_subjects: Sequence[int], instances: Sequence[Instance], allow_seen: bool
    ) -> list[list[Segment]]:
        assert self.recognizer is not None
        ids = {inst.sample_id for inst in instances}
        # allow_seen (in_sample): the recognizer decodes its own training recordings, on purpose.
        by_sample = self.recognizer.segments(train_subjects, ids, allow_seen=allow_seen)
        return self._from_recordings(instances, by_sample)

    def test_segments(self, fold: Fold, instances: Sequence[Instance]) -> list[list[Segment]]:
        mg = self.mg
        if mg.source == "ground_truth":
            return [inst.segments for inst in instances]
        if mg.source == "recognizer":
            return self._recognize(fold.train_subjects, instances, allow_seen=False)
        seen = set(protocols.parse_subjects(mg.predictions_train_subjects))
        leaked = sorted(seen & set(fold.test_subjects))
        if leaked:
            raise EmotionError(
                f"{fold.name()} tests participants {leaked}, on whom the recognizer behind "
                f"{mg.predictions_dir} was trained (mg.predictions_train_subjects="
                f"{mg.predictions_train_subjects!r}). Use protocol.name='cross_subject', or "
                "mg.source='recognizer' to cross-fit the recognizer per fold."
            )
        assert self.recordings_segments is not None
        return self._from_recordings(instances, self.recordings_segments)

    def train_segments(self, fold: Fold, instances: Sequence[Instance]) -> list[list[Segment]]:
        mg = self.mg
        if mg.source == "ground_truth" or mg.train_on == "ground_truth":
            return [inst.segments for inst in instances]
        if mg.source == "predictions_dir":  # in_sample: the folder's files for these recordings
            assert self.recordings_segments is not None
            return self._from_recordings(instances, self.recordings_segments)
        if mg.train_on == "in_sample":
            return self._recognize(fold.train_subjects, instances, allow_seen=True)
        # out_of_fold: inner subject-wise folds over this fold's training participants.
        counts: dict[int, int] = {}
        for inst in instances:
            counts[inst.subject] = counts.get(inst.subject, 0) + 1
        inner = protocols.subject_folds(counts, int(mg.inner_folds), int(mg.inner_seed))
        out: list[list[Segment] | None] = [None] * len(instances)
        for inner_fold in inner:
            positions = [
                i for i, inst in enumerate(instances) if inst.subject in inner_fold.test_subjects
            ]
            found = self._recognize(
                inner_fold.train_subjects, [instances[i] for i in positions], allow_seen=False
            )
            for i, segments in zip(positions, found, strict=True):
                out[i] = segments
        return [segments if segments is not None else [] for segments in out]


def make_source(
    config: ml_collections.ConfigDict,
    data: EmotionData,
    workdir: pathlib.Path,
    load_recordings: Callable[[], dict[str, Any]],
    train_recognizer: recognized.TrainRecognizer | None = None,
) -> SegmentSource:
    """The ``SegmentSource`` of the config (loads recordings only when a recognizer needs them).

    ``train_recognizer`` fits the recognizer ``mg.recognizer`` (needed when
    ``mg.source == "recognizer"``; see ``recognized.TrainRecognizer``).
    """
    mg = config.mg
    check_config(mg)
    if mg.source == "ground_truth":
        return SegmentSource(mg)
    if mg.source == "recognizer":
        if train_recognizer is None:
            raise EmotionError(
                "mg.source='recognizer' needs a recognizer to train: pass train_recognizer="
                "smg_jax.online.recognizers.trainer(config.online, config.mg.recognizer) to "
                "emotion.run.run (experiments/emotion.py does)."
            )
        recognizer = recognized.Recognizer(
            mg.recognizer, load_recordings(), workdir / "recognizers", train_recognizer
        )
        return SegmentSource(mg, recognizer=recognizer)
    ids = {inst.sample_id for inst in data.instances}
    if mg.train_on == "ground_truth":
        # Only the test side reads the folder; which recordings those are depends on the fold,
        # so read lazily what exists and let test_segments fail on a missing one.
        ids = {
            inst.sample_id
            for inst in data.instances
            if inst.subject not in set(protocols.parse_subjects(mg.predictions_train_subjects))
        }
    return SegmentSource(
        mg, recordings_segments=recognized.read_predictions_dir(mg.predictions_dir, ids)
    )


def run_fold(
    config: ml_collections.ConfigDict,
    data: EmotionData,
    fold: Fold,
    train_positions: np.ndarray,
    test_positions: np.ndarray,
    source: SegmentSource,
) -> dict[str, Any]:
    """Features, fit and test scores of one fold.

    Returns:
      ``{"logits": (N_test, 2), "coef": (D,), "intercept", "iterations",
      "train_features": (N_train, D), "test_features": (N_test, D),
      "mean_mgs_train"/"mean_mgs_test": MGs per instance, "recognition": the
      recognized test MGs scored against the annotated ones (``None`` for the
      ground truth)}``.
    """
    mg = config.mg
    kinds = tuple(mg.features)
    fps = float(config.data.fps)
    train = [data.instances[i] for i in train_positions]
    test = [data.instances[i] for i in test_positions]
    train_segments = source.train_segments(fold, train)
    test_segments = source.test_segments(fold, test)

    def matrix(instances: Sequence[Instance], segments: Sequence[list[Segment]]) -> np.ndarray:
        return np.stack(
            [
                features.mg_features(segs, inst.num_frames, fps=fps, kinds=kinds, where=inst.key)
                for inst, segs in zip(instances, segments, strict=True)
            ]
        )

    recognition = None
    if mg.source != "ground_truth":
        # How well the recognizer found the annotated MGs of the test instances (the
        # online protocol's IoU > 0.3 one-to-one match): ties emotion accuracy to it.
        recognition = score_segments(
            {inst.key: inst.segments for inst in test},
            {inst.key: segs for inst, segs in zip(test, test_segments, strict=True)},
            iou_threshold=0.3,
        )
    x_train, x_test = matrix(train, train_segments), matrix(test, test_segments)
    y_train = np.asarray([inst.state for inst in train], np.int64)
    model = logreg.fit_logistic(x_train, y_train, c=float(mg.c), max_iter=int(mg.max_iter))
    return {
        "logits": model.logits(x_test),
        "coef": model.coef,
        "intercept": model.intercept,
        "iterations": model.iterations,
        "grad_norm": model.grad_norm,
        "train_features": x_train,
        "test_features": x_test,
        "mean_mgs_train": float(np.mean([len(s) for s in train_segments])),
        "mean_mgs_test": float(np.mean([len(s) for s in test_segments])),
        "recognition": recognition,
    }


def _leans(weight: float) -> str:
    if abs(weight) < 5e-3:  # shown as +0.00: no lean (e.g. a class never seen in training)
        return "-"
    return "stressed" if weight > 0 else "relaxed"


def class_weights(
    coefs: np.ndarray, kinds: Sequence[str], class_names: Sequence[str]
) -> list[dict[str, Any]]:
    """Per MG class, the classifier's weight over folds, most influential first.

    A class's weight is the sum of its standardised ``count`` and ``rate``
    coefficients (log-odds of *stressed* per standard deviation more of that
    class); positive leans stressed. The pseudo-classes ``all`` (total MGs)
    and ``mean duration`` close the list.

    Args:
      coefs: ``(K_folds, D)`` coefficients, columns named by ``feature_names(kinds)``.
    """
    coefs = np.atleast_2d(np.asarray(coefs, np.float64))
    names = features.feature_names(kinds, class_names)
    column = {name: i for i, name in enumerate(names)}
    rows = []
    for cls in [*class_names, "all"]:
        cols = [column[f"{k} {cls}"] for k in ("count", "rate") if f"{k} {cls}" in column]
        if cols:
            rows.append((cls, coefs[:, cols].sum(axis=1), cols))
    if "mean duration (s)" in column:
        rows.append(("mean duration", coefs[:, column["mean duration (s)"]], [0]))
    out = []
    for name, per_fold, _ in rows:
        out.append(
            {
                "class": name,
                "mean": float(per_fold.mean()),
                "std": float(per_fold.std(ddof=1)) if per_fold.size > 1 else float("nan"),
                "per_fold": per_fold.tolist(),
                "leans": _leans(float(per_fold.mean())),
            }
        )
    out.sort(key=lambda row: -abs(row["mean"]))
    return out
