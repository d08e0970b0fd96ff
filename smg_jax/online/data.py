"""Whole recordings for online recognition, from the TFDS ``smg/sequences`` config."""

from __future__ import annotations

import dataclasses

import ml_collections

from smg_jax.data import sources
from smg_jax.data.recordings import NUM_CLASSES, Recording, recording_from_example
from smg_jax.online.errors import OnlineError

SMG_CONFIG = "sequences"


@dataclasses.dataclass
class OnlineData:
    """Train and test recordings (sorted by participant) and what is known about them."""

    train: list[Recording]
    test: list[Recording]
    class_names: list[str]
    synthetic: bool
    description: str


def _recordings(source) -> list[Recording]:
    recordings = [recording_from_example(source[i]) for i in range(len(source))]
    return sorted(recordings, key=lambda r: (r.subject, r.name))


def load(data: ml_collections.ConfigDict) -> OnlineData:
    """Opens (building if needed) ``smg/sequences`` and reads both splits into memory.

    The whole of SMG is about 250 MB of float32 joints.
    """
    opened = sources.open_smg(
        data, SMG_CONFIG, (data.train_split, data.test_split), error=OnlineError
    )
    train, test = opened.sources
    class_names = list(opened.info.features["segments"]["label"].names)
    if len(class_names) != NUM_CLASSES:
        raise OnlineError(f"smg/{SMG_CONFIG} has {len(class_names)} classes, expected 17.")
    return OnlineData(
        train=_recordings(train),
        test=_recordings(test),
        class_names=class_names,
        synthetic=opened.synthetic,
        description=opened.description,
    )
