"""TFDS builder, raw reader and synthetic generator for the SMG micro-gesture dataset.

Importing this package registers the ``smg`` builder with TFDS::

    import tensorflow_datasets as tfds
    import tfds_smg  # noqa: F401

    builder = tfds.builder("smg/clips", data_dir=DATA_DIR)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=RAW_SMG_DIR))
    train = tfds.data_source("smg/clips", split="train", data_dir=DATA_DIR)

TensorFlow is only the TFDS reader/writer here: it is kept off every GPU/TPU
(JAX owns the accelerators) and its C++ logging is quieted unless
``TF_CPP_MIN_LOG_LEVEL`` is already set.
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # after the log level, which TF reads at import


def _hide_accelerators_from_tensorflow() -> None:
    for kind in ("GPU", "TPU"):
        # RuntimeError: TF's devices are already initialized (TF was used before this
        # import); ValueError: no such device kind in this build. Nothing to hide then.
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.set_visible_devices([], kind)


_hide_accelerators_from_tensorflow()

from tfds_smg import miga, raw, synthetic  # noqa: E402
from tfds_smg.raw import SMGDataError  # noqa: E402
from tfds_smg.smg import (  # noqa: E402
    LABEL_NAMES,
    NO_MG_LABEL,
    STATE_NAMES,
    Smg,
    SmgConfig,
    load_class_names,
    split_of,
)

__all__ = [
    "LABEL_NAMES",
    "NO_MG_LABEL",
    "STATE_NAMES",
    "SMGDataError",
    "Smg",
    "SmgConfig",
    "load_class_names",
    "miga",
    "raw",
    "split_of",
    "synthetic",
]
