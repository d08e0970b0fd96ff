"""Writes the authors' classification files: ``{split}_data.npy`` and ``{split}_label.pkl``.

The format of ``tools/smg_gendata.py`` in mikecheninoulu/SMG, which the
authors' ST-GCN feeder (and the MiGA challenge release) reads:

* ``{split}_data.npy``: float32 ``(N, 3, T, 25, 1)`` = (clips, xyz metres,
  frames, joints, bodies), written through ``numpy.lib.format.open_memmap``
  as the script does; ``T = 60`` with the ``authors`` preset.
* ``{split}_label.pkl``: ``pickle.dump((names, labels))`` with ``names`` a
  list of ``str`` = the participant folder name followed directly by the
  segment's 0-based row in its label file (``"Sample0036" + "12"`` ->
  ``"Sample003612"``; no separator, as ``sample_name + str(inx)`` in the
  script) and ``labels`` a list of ``int``, the 0-based class.
* Order: participants ascending, then label-file rows in file order.

With the ``authors`` preset the arrays equal the script's output bit for
bit; other presets write their own ``T`` and stream in the same layout.

Command line (console script ``smg-export``)::

    smg-export --manual_dir RAW --split test --preset authors --out DIR [--data_dir TFDS_DIR]
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from smg_jax.data.joints import DataError, describe_example
from smg_jax.data.pipeline import load_split
from smg_jax.data.transforms import Preset, get_preset, preset_names

DATA_NAME = "{split}_data.npy"
LABEL_NAME = "{split}_label.pkl"


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def authors_name(sample_id: str, segment_index: int) -> str:
    """The script's clip name: ``sample_id + str(row)``, e.g. ``"Sample00361"``."""
    return f"{sample_id}{int(segment_index)}"


def authors_order(source: Sequence[Mapping[str, Any]]) -> list[int]:
    """Source positions sorted as the script writes them: participant, then label-file row.

    Raises:
      DataError: an example lacks ``subject``/``segment_index``, or two
        examples claim the same (participant, row).
    """
    keys = []
    for position in range(len(source)):
        example = source[position]
        try:
            key = (int(example["subject"]), int(example["segment_index"]))
        except KeyError as err:
            raise DataError(
                f"{describe_example(example)}: missing {err.args[0]!r}; export needs the TFDS "
                "smg/clips features subject and segment_index to restore the authors' order."
            ) from None
        keys.append((key, position))
    keys.sort()
    for (a, pa), (b, pb) in itertools.pairwise(keys):
        if a == b:
            raise DataError(
                f"Source positions {pa} and {pb} are both participant {a[0]} label row {a[1]}; "
                "the dataset holds a segment twice. Rebuild the TFDS dataset."
            )
    return [position for _, position in keys]


def write_split(
    source: Sequence[Mapping[str, Any]],
    split: str,
    out_dir: str | Path,
    preset: Preset | str = "authors",
) -> tuple[Path, Path]:
    """Writes ``{split}_data.npy`` and ``{split}_label.pkl`` from any random-access source.

    Args:
      source: TFDS ``smg/clips`` examples (``joints``, ``label``, ``subject``,
        ``sample_id``, ``segment_index``), e.g. ``load_split(...)``.
      split: the file-name prefix, e.g. ``"train"``.
      out_dir: created if missing.
      preset: a ``Preset`` or registry name; applied without augmentation.

    Returns:
      ``(data_path, label_path)``.
    """
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", split):
        raise DataError(f"split {split!r} must be a plain name such as 'train' or 'test'.")
    if isinstance(preset, str):
        preset = get_preset(preset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    order = authors_order(source)
    if not order:
        raise DataError(f"The {split!r} split is empty; nothing to export.")

    names: list[str] = []
    labels: list[int] = []
    data_path = out_dir / DATA_NAME.format(split=split)
    data = None
    for row, position in enumerate(order):
        example = source[position]
        x = preset.apply(np.asarray(example["joints"]), where=describe_example(example))
        if data is None:
            # The script's layout: (N, C, T, V, M) float32, M = 1 body.
            shape = (len(order), x.shape[2], x.shape[0], x.shape[1], 1)
            data = open_memmap(data_path, mode="w+", dtype=np.float32, shape=shape)
        data[row, :, :, :, 0] = np.transpose(x, (2, 0, 1))
        names.append(authors_name(_text(example["sample_id"]), example["segment_index"]))
        labels.append(int(example["label"]))
    data.flush()
    del data  # closes the memmap

    label_path = out_dir / LABEL_NAME.format(split=split)
    with label_path.open("wb") as f:
        # Plain str and int lists, default protocol: what the script pickles.
        pickle.dump((names, labels), f)
    return data_path, label_path


def export(
    manual_dir: str | Path | None,
    split: str,
    out_dir: str | Path,
    *,
    preset: Preset | str = "authors",
    data_dir: str | Path | None = None,
    config: str = "clips",
) -> tuple[Path, Path]:
    """Builds (or reuses) the TFDS ``smg/clips`` dataset and writes the authors' files.

    Args:
      manual_dir: the raw SMG folder (``SampleNNNN/...``); may be ``None``
        when ``data_dir`` already holds the built dataset.
      split: ``"train"`` (participants 1-35) or ``"test"`` (36-40).
      out_dir: where ``{split}_data.npy`` / ``{split}_label.pkl`` go.
      preset: ``"authors"`` for the published preprocessing, or any preset.
      data_dir: TFDS data directory to build into or read from; ``None``
        builds into a temporary directory that is removed afterwards.
      config: TFDS builder config.

    Returns:
      ``(data_path, label_path)``.
    """
    if isinstance(preset, str):
        preset = get_preset(preset)
    manual = None if manual_dir is None else str(manual_dir)
    if data_dir is not None:
        source = load_split(str(data_dir), config, split, manual_dir=manual)
        return write_split(source, split, out_dir, preset)
    if manual is None:
        raise DataError("export needs manual_dir (the raw SMG folder) or a built data_dir.")
    with tempfile.TemporaryDirectory(prefix="smg_tfds_") as tmp:
        source = load_split(tmp, config, split, manual_dir=manual)
        return write_split(source, split, out_dir, preset)


def main(argv: Sequence[str] | None = None) -> int:
    """``smg-export``: the authors' ``{split}_data.npy`` / ``{split}_label.pkl`` from raw SMG."""
    parser = argparse.ArgumentParser(
        prog="smg-export",
        description="Write SMG clips in the authors' npy/pkl format (smg_gendata.py).",
    )
    parser.add_argument("--manual_dir", help="raw SMG folder holding Sample0001..Sample0040")
    parser.add_argument("--split", required=True, choices=("train", "test"))
    parser.add_argument("--preset", default="authors", choices=preset_names())
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--data_dir",
        help="TFDS data_dir to reuse (or build into); default: a temporary build",
    )
    args = parser.parse_args(argv)
    if args.manual_dir is None and args.data_dir is None:
        parser.error("give --manual_dir (raw SMG) or --data_dir (an already built dataset)")
    data_path, label_path = export(
        args.manual_dir, args.split, args.out, preset=args.preset, data_dir=args.data_dir
    )
    shape = np.load(data_path, mmap_mode="r").shape
    print(f"wrote {data_path} {shape} float32 and {label_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
