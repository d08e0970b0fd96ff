"""The online recognizers as one callable each, for tasks that need MGs found in recordings.

``trainer(online, kind)`` returns ``train(recordings, folder) -> decode``:
``train`` fits the recognizer ``kind`` on ``recordings`` (checkpoints under
``folder``; restored when already there) and ``decode(recording)`` returns the
MGs it finds, ``(label 0-16, start, end)`` rows ``[start, end)``. The emotion
task takes such a ``train`` callable and never imports this room.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence

import ml_collections

from smg_jax.data.recordings import NUM_CLASSES, Recording, Segment
from smg_jax.online import detector, framework
from smg_jax.online.errors import OnlineError

Decode = Callable[[Recording], Sequence[Segment]]
Train = Callable[[Sequence[Recording], pathlib.Path], Decode]

KINDS = ("authors", "detector_threshold", "detector_hmm")


def _train_authors(online, recordings, folder, num_classes) -> Decode:
    model = framework.train_authors(online, recordings, folder, num_classes=num_classes)
    return lambda recording: framework.decode_recording(model, recording).segments


def _train_detector(online, recordings, folder, num_classes, decoder: str) -> Decode:
    model = detector.train_detector(online, recordings, folder, num_classes=num_classes)
    return lambda recording: model.detect(recording)[0][decoder]


def trainer(
    online: ml_collections.ConfigDict, kind: str, *, num_classes: int = NUM_CLASSES
) -> Train:
    """The ``train(recordings, folder) -> decode`` callable of recognizer ``kind``.

    Args:
      online: an online config (``authors`` and ``detector`` sections of
        ``experiments/configs/online_base.py``).
      kind: ``"authors"`` (their HMM recognizer) or ``"detector_threshold"`` /
        ``"detector_hmm"`` (the window detector with that decoder).
      num_classes: MG classes (SMG: 17).
    """
    if kind not in KINDS:
        raise OnlineError(f"Unknown online recognizer {kind!r}; choose from {list(KINDS)}.")

    def train(recordings: Sequence[Recording], folder: pathlib.Path) -> Decode:
        if kind == "authors":
            return _train_authors(online, recordings, folder, num_classes)
        return _train_detector(
            online, recordings, folder, num_classes, kind.removeprefix("detector_")
        )

    return train
