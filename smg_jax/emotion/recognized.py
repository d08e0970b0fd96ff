"""MGs found by the online recognizer, per recording, for the MG-based emotion features.

The online recognizer (``smg_jax.online``) finds MGs ``(label, start, end)``
in whole recordings; an instance's recognized MGs are those overlapping it,
clipped to it (``features.clip_to_instance``). Two ways in, one format: a
folder of ``SampleNNNN.csv`` files in the raw label layout (no header, rows
``label 1-17,start,end``), what ``python -m experiments.online`` writes to
``<workdir>/predictions/<method>/``.

``mg.source = "predictions_dir"``
    Reads such a folder. The online command trains on participants 1-35 and
    decodes 36-40, so only the cross-subject protocol can test on them
    without the recognizer having seen the test participants;
    ``mg.predictions_train_subjects`` says whom the recognizer was trained on
    and any fold testing one of them is refused.
``mg.source = "recognizer"``
    Trains a recognizer here, per fold, through the ``train`` callable the
    caller passes (``experiments/emotion.py`` passes
    ``smg_jax.online.recognizers.trainer(config.online, mg.recognizer)``), on
    the fold's training participants only, and decodes the fold's test
    recordings: cross-fitting, so every protocol works. Each trained
    recognizer and its decoded recordings are cached under
    ``<workdir>/recognizers/<kind>/train_<participants>/`` (checkpoints and
    the same CSV layout), so a resumed run retrains nothing.

The classifier's *training* instances need MGs too (``mg.train_on``):
``ground_truth`` (train on the annotated MGs, test on recognized ones),
``in_sample`` (the fold's recognizer decodes its own training recordings:
cheap but cleaner than what the test side sees) or ``out_of_fold`` (an inner
subject-wise split of the fold's training participants: each inner
recognizer decodes the participants it was not trained on, so training and
test features come from recognizers equally blind to them; costs
``inner_folds`` more recognizers per fold).
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from smg_jax.data.recordings import Recording, RecordingError, read_csv, write_csv
from smg_jax.emotion.data import NUM_MG_CLASSES, EmotionError, Segment

log = logging.getLogger(__name__)

SOURCES = ("ground_truth", "recognizer", "predictions_dir")
TRAIN_ON = ("ground_truth", "in_sample", "out_of_fold")
RECOGNIZERS = ("authors", "detector_threshold", "detector_hmm")


def compact_subjects(subjects: Iterable[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` -> ``"1-3,5,7-8"``."""
    ordered = sorted(set(int(s) for s in subjects))
    parts, begin = [], None
    for i, subject in enumerate(ordered):
        if begin is None:
            begin = subject
        if i + 1 == len(ordered) or ordered[i + 1] != subject + 1:
            parts.append(str(begin) if begin == subject else f"{begin}-{subject}")
            begin = None
    return ",".join(parts)


def read_predictions_dir(
    directory: str | pathlib.Path, sample_ids: Iterable[str]
) -> dict[str, list[Segment]]:
    """``{sample_id: MGs}`` from ``directory/<sample_id>.csv`` (0-based labels, absolute frames).

    Raises:
      EmotionError: the folder or a recording's file is missing (the message
        names it and how to produce it), or a file is malformed.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise EmotionError(
            f"mg.predictions_dir {directory} is not a folder. Point it at "
            "<online workdir>/predictions/<method>/ written by `python -m experiments.online`."
        )
    out = {}
    for sample_id in sorted(set(sample_ids)):
        path = directory / f"{sample_id}.csv"
        if not path.is_file():
            raise EmotionError(
                f"{path} is missing: the online run did not decode {sample_id}. Decode that "
                "recording (the online command decodes the test participants 36-40), or use "
                "mg.source='recognizer' to recognize every recording here."
            )
        try:
            out[sample_id] = read_csv(path, num_classes=NUM_MG_CLASSES)
        except RecordingError as err:
            raise EmotionError(str(err)) from err
    return out


TrainRecognizer = Callable[[Sequence[Recording], pathlib.Path], Callable[[Recording], Any]]
"""``train(recordings, folder) -> decode``: fits an MG recognizer on ``recordings``
(its files under ``folder``) and returns ``decode(recording) -> [(label 0-16, start,
end), ...]``. The caller chooses which (``smg_jax.online.recognizers.trainer``)."""


class Recognizer:
    """Trains an MG recognizer on a set of participants and decodes recordings, with a cache.

    Args:
      kind: the recognizer's name (one of ``RECOGNIZERS``; names the cache folders).
      recordings: ``{sample_id: smg_jax.data.recordings.Recording}``, every recording.
      workdir: where trained recognizers and decoded CSV files go.
      train: fits the recognizer ``kind`` (see ``TrainRecognizer``).
    """

    def __init__(
        self,
        kind: str,
        recordings: Mapping[str, Recording],
        workdir: pathlib.Path,
        train: TrainRecognizer,
    ) -> None:
        if kind not in RECOGNIZERS:
            raise EmotionError(f"mg.recognizer={kind!r}; choose from {list(RECOGNIZERS)}.")
        self.kind, self.train = kind, train
        self.recordings = dict(recordings)
        self.workdir = pathlib.Path(workdir)
        self.trained = 0  # recognizers trained (or restored) by this object

    def _dir(self, train_subjects: Sequence[int]) -> pathlib.Path:
        family = "authors" if self.kind == "authors" else "detector"
        return self.workdir / family / f"train_{compact_subjects(train_subjects)}"

    def segments(
        self, train_subjects: Sequence[int], sample_ids: Iterable[str], *, allow_seen: bool = False
    ) -> dict[str, list[Segment]]:
        """MGs of ``sample_ids`` found by a recognizer trained on ``train_subjects`` only.

        Decoded recordings are read back from the cache when present; the
        recognizer is trained (or restored from its checkpoints) only when
        some recording still needs decoding. ``allow_seen`` permits decoding
        the recognizer's own training participants (``mg.train_on='in_sample'``);
        otherwise asking for one is an error (it would leak).
        """

        wanted = sorted(set(sample_ids))
        unknown = [s for s in wanted if s not in self.recordings]
        if unknown:
            raise EmotionError(f"No smg/sequences recording for {unknown[:5]}; rebuild it.")
        tested = {self.recordings[s].subject for s in wanted} & set(train_subjects)
        if tested and not allow_seen:
            raise EmotionError(
                f"Recognizer trained on participants {sorted(tested)} asked to decode them: "
                "that would leak (a bug in the fold plan)."
            )
        folder = self._dir(train_subjects)
        cache = folder / "predictions" / self.kind
        out = {s: read_csv(cache / f"{s}.csv") for s in wanted if (cache / f"{s}.csv").is_file()}
        missing = [s for s in wanted if s not in out]
        if not missing:
            return out
        decode = self._train(train_subjects, folder)
        for sample_id in missing:
            out[sample_id] = list(decode(self.recordings[sample_id]))
            write_csv(cache / f"{sample_id}.csv", out[sample_id])
        return out

    def _train(self, train_subjects: Sequence[int], folder: pathlib.Path):
        """Trains (or restores) one recognizer; returns ``recording -> segments``."""
        training = [r for r in self.recordings.values() if r.subject in set(train_subjects)]
        if not training:
            raise EmotionError(f"No recording of participants {list(train_subjects)} to train on.")
        training.sort(key=lambda r: (r.subject, r.name))
        folder.mkdir(parents=True, exist_ok=True)
        log.info(
            "online recognizer %s: training on participants %s (%d recordings) in %s",
            self.kind,
            compact_subjects(train_subjects),
            len(training),
            folder,
        )
        self.trained += 1
        return self.train(training, folder)
