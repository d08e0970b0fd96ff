"""Whole recordings for online recognition, from the TFDS ``smg/sequences`` config."""

from __future__ import annotations

import dataclasses
import logging

import ml_collections

from smg_jax.data import pipeline, synthetic_source
from smg_jax.data.recordings import NUM_CLASSES, Recording, recording_from_example
from smg_jax.online.errors import OnlineError

log = logging.getLogger(__name__)

SMG_CONFIG = "sequences"


@dataclasses.dataclass
class OnlineData:
    """Train and test recordings (sorted by participant) and what is known about them."""

    train: list[Recording]
    test: list[Recording]
    class_names: list[str]
    synthetic: bool
    description: str


def ensure_raw_data(data: ml_collections.ConfigDict) -> str | None:
    """``synthetic_source.ensure_raw_data``, failing with ``OnlineError``."""
    return synthetic_source.ensure_raw_data(data, OnlineError)


def _recordings(source) -> list[Recording]:
    recordings = [recording_from_example(source[i]) for i in range(len(source))]
    return sorted(recordings, key=lambda r: (r.subject, r.name))


def load(data: ml_collections.ConfigDict) -> OnlineData:
    """Opens (building if needed) ``smg/sequences`` and reads both splits into memory.

    The whole of SMG is about 250 MB of float32 joints.
    """
    import tensorflow_datasets as tfds

    import tfds_smg  # noqa: F401  (registers 'smg')

    manual_dir = ensure_raw_data(data)
    train = pipeline.load_split(data.data_dir, SMG_CONFIG, data.train_split, manual_dir=manual_dir)
    test = pipeline.load_split(data.data_dir, SMG_CONFIG, data.test_split, manual_dir=manual_dir)
    builder = tfds.builder(f"smg/{SMG_CONFIG}", data_dir=data.data_dir)
    metadata = dict(builder.info.metadata or {})
    class_names = list(builder.info.features["segments"]["label"].names)
    if len(class_names) != NUM_CLASSES:
        raise OnlineError(f"smg/{SMG_CONFIG} has {len(class_names)} classes, expected 17.")
    synthetic = bool(metadata.get("synthetic", False))
    scale = (metadata.get("synthetic_marker") or {}).get("scale", "?")
    description = f"SYNTHETIC SMG ({scale} scale)" if synthetic else "SMG"
    return OnlineData(
        train=_recordings(train),
        test=_recordings(test),
        class_names=class_names,
        synthetic=synthetic,
        description=description,
    )
