"""Reader for the MiGA / authors' preprocessed classification files.

``{split}_data.npy`` holds ``(N, 3, T, 25, M)`` clips and ``{split}_label.pkl``
a pickled ``(names, labels)`` pair, as the authors' ``smg_gendata.py`` writes
them. Problems raise ``raw.SMGDataError`` naming the file and the fix.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np

from tfds_smg.raw import NUM_CLASSES, NUM_JOINTS, SMGDataError

# The MiGA / authors' preprocessed classification files (their ST-GCN config reads
# data/SMGskeleton/{train,test}_data.npy and {train,test}_label.pkl).
MIGA_DATA_NAME = "{split}_data.npy"
MIGA_LABEL_NAME = "{split}_label.pkl"


class _LabelUnpickler(pickle.Unpickler):
    """Unpickles ``(names, labels)`` lists only: no arbitrary classes from a data file."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a label file")


def read_miga_split(manual_dir: Path | str, split: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Reads ``{split}_data.npy`` and ``{split}_label.pkl`` (the authors' format).

    Args:
      manual_dir: folder holding the files.
      split: ``"train"`` or ``"test"``.

    Returns:
      ``data`` ``(N, 3, T, 25, M)`` float32 (channels world xyz in metres, ``T``
      frames zero-padded, ``M`` bodies), ``names`` (N strings such as
      ``"Sample00361"`` = sample + row index in its label file), ``labels``
      ``(N,)`` int64 0-16.

    Raises:
      SMGDataError: missing files, wrong shapes, or labels outside 0-16.
    """
    manual_dir = Path(manual_dir)
    data_path = manual_dir / MIGA_DATA_NAME.format(split=split)
    label_path = manual_dir / MIGA_LABEL_NAME.format(split=split)
    for path in (data_path, label_path):
        if not path.is_file():
            raise SMGDataError(
                path,
                "the file is missing",
                f"put the preprocessed {split} files {data_path.name} and {label_path.name} "
                "into manual_dir",
            )
    with data_path.open("rb") as f:
        data = np.load(f)
    if data.ndim != 5 or data.shape[1] != 3 or data.shape[3] != NUM_JOINTS:
        raise SMGDataError(
            data_path,
            f"array shape {data.shape} is not (N, 3, T, 25, M)",
            "use the authors' preprocessed file (N clips, xyz, T frames, 25 joints, M bodies)",
        )
    with label_path.open("rb") as f:
        try:
            content = _LabelUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, AttributeError) as err:
            raise SMGDataError(
                label_path, f"not a (names, labels) pickle: {err}", "use the authors' file"
            ) from None
    if not (isinstance(content, tuple | list) and len(content) == 2):
        raise SMGDataError(
            label_path, "expected a pickled (names, labels) pair", "use the authors' file"
        )
    names = [str(n) for n in content[0]]
    labels = np.asarray(content[1], dtype=np.int64)
    if len(names) != data.shape[0] or labels.shape != (data.shape[0],):
        raise SMGDataError(
            label_path,
            f"{len(names)} names and {labels.size} labels for {data.shape[0]} clips",
            f"use the label file that belongs to {data_path.name}",
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise SMGDataError(
            label_path,
            f"labels span {labels.min()}..{labels.max()}, not 0-{NUM_CLASSES - 1}",
            "the preprocessed labels are 0-based (raw label - 1)",
        )
    return data.astype(np.float32, copy=False), names, labels
