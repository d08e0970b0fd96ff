"""The SMG input pipeline: per-example presets, batches, and the authors' export format.

``transforms``: pure per-clip functions and the preset registry
(``get_preset``); ``pipeline``: training / evaluation batches over a
random-access source (``load_split`` opens the TFDS ``smg/clips`` data);
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
    "Preset",
    "TrainIterator",
    "eval_dataset",
    "eval_iterator",
    "get_preset",
    "load_split",
    "make_element",
    "num_eval_batches",
    "preset_from_config",
    "preset_names",
    "train_dataset",
    "train_iterator",
]
