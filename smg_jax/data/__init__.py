"""The SMG input pipeline: recordings, per-example presets, batches, the authors' export format.

``recordings``: ``Recording`` / ``Segment`` and the segment CSV files, the
vocabulary every task shares; ``sources``: ``open_smg``, every task's one
loader (synthetic data on demand, the TFDS build, the splits);
``transforms``: pure per-clip functions and the preset registry
(``get_preset``); ``pipeline``: training / evaluation batches over a
random-access source (``load_split`` opens one TFDS split);
``export``: the authors' ``{split}_data.npy`` / ``{split}_label.pkl`` files
(console script ``smg-export``).
"""

from smg_jax.data.pipeline import (
    TrainIterator,
    eval_dataset,
    eval_iterator,
    load_split,
    make_element,
    num_eval_batches,
    train_dataset,
    train_iterator,
)
from smg_jax.data.recordings import (
    Recording,
    RecordingError,
    Segment,
    check_segments,
    read_csv,
    recording_from_example,
    write_csv,
)
from smg_jax.data.sources import OpenedSMG, open_smg
from smg_jax.data.transforms import (
    STREAMS,
    DataError,
    Preset,
    get_preset,
    preset_from_config,
    preset_names,
)

__all__ = [
    "STREAMS",
    "DataError",
    "OpenedSMG",
    "Preset",
    "Recording",
    "RecordingError",
    "Segment",
    "TrainIterator",
    "check_segments",
    "eval_dataset",
    "eval_iterator",
    "get_preset",
    "load_split",
    "make_element",
    "num_eval_batches",
    "open_smg",
    "preset_from_config",
    "preset_names",
    "read_csv",
    "recording_from_example",
    "train_dataset",
    "train_iterator",
    "write_csv",
]
