"""The authors' npy/pkl export (smg_jax.data.export) against an oracle of smg_gendata.py.

The oracle below re-derives what mikecheninoulu/SMG ``tools/smg_gendata.py``
writes, straight from the raw CSV text (``csv`` module + NumPy), without
touching TFDS or our transforms: for each label row ``label,start,end`` it
moves ``start`` to ``end - 59`` when ``end - start > 59``, parses the x, y, z
fields of rows ``start .. end-1`` as Python floats into a float64 buffer,
stores them from frame 0 into a zero float32 ``(N, 3, 60, 25, 1)`` memmap,
and pickles ``(names, labels)`` with ``name = folder + str(row)`` and
``label - 1``, participants ascending and rows in file order.
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.format import open_memmap

from smg_jax.data import export, transforms

TEST_SUBJECTS = (36, 37, 38, 39, 40)  # smg_gendata.py's subject_test
SUBJECTS = (1, 2, 36, 37)
NUM_FRAMES = {1: 130, 2: 75, 36: 140, 37: 61}
# (label, start, end): lengths 1, 10, 59, 60, 61, 100, overlaps, start 0 and end = row count.
SEGMENTS = {
    1: [(3, 0, 10), (17, 5, 64), (1, 20, 80), (8, 29, 130), (9, 100, 101)],
    2: [(8, 10, 71), (2, 0, 75)],
    36: [(9, 40, 140), (5, 0, 59), (12, 3, 13), (9, 60, 120)],
    37: [(4, 1, 61), (16, 0, 1)],
}

# 1 + 2**-24 + 2**-80: float64 rounds it onto the midpoint of two float32 values and
# float32 then rounds to even (1.0); a direct float32 parse would give 1 + 2**-23.
# The script goes through float64, so 1.0 is the bit-exact answer.
DOUBLE_ROUNDING = "1.00000005960464477539062582718061255302767487140869206996285"


def write_raw_smg(root: Path, seed: int = 0) -> Path:
    """A hand-written raw SMG tree in the authors' layout (see shared/smg/README.md)."""
    rng = np.random.default_rng(seed)
    for subject in SUBJECTS:
        name = f"Sample{subject:04d}"
        folder = root / name
        folder.mkdir(parents=True)
        frames = NUM_FRAMES[subject]
        offset = np.array([0.1, 0.2, 2.0] + [0.0] * 8)
        values = rng.normal(0.0, 0.4, size=(frames, 25, 11)) + offset
        values[rng.random(frames) < 0.08] = 0.0  # lost tracking: all-zero rows
        lines = []
        for frame in values:
            fields = []
            for j, joint in enumerate(frame):
                for k, value in enumerate(joint):
                    # Mixed spellings the reader must parse exactly like float(): full
                    # repr, 7 significant digits (Kinect exports), exponents, plain 0.
                    style = (j + k + len(lines)) % 4
                    if subject == 36 and not lines and j == k == 0:
                        fields.append(DOUBLE_ROUNDING)
                    elif value == 0.0:
                        fields.append("0")
                    elif style == 0:
                        fields.append(repr(float(value)))
                    elif style == 1:
                        fields.append(f"{value:.7g}")
                    elif style == 2:
                        fields.append(f"{value:.9e}")
                    else:
                        fields.append(f"{value:.6f}")
            lines.append(",".join(fields))
        (folder / f"{name}_skeleton.csv").write_text("\n".join(lines) + "\n")
        labels = "".join(f"{label},{start},{end}\n" for label, start, end in SEGMENTS[subject])
        (folder / f"{name}_finelabels.csv").write_text(labels)
        (folder / f"{name}_data.csv").write_text(f"{frames},30,8000\n")
    return root


def gendata_oracle(raw: Path, split: str, out: Path) -> tuple[Path, Path]:
    """What smg_gendata.py writes for ``split`` (participants absent from ``raw`` skipped)."""
    clips, names, labels = [], [], []
    for subject in range(1, 41):
        name = f"Sample{subject:04d}"
        folder = raw / name
        if not folder.is_dir() or (subject in TEST_SUBJECTS) != (split == "test"):
            continue
        with open(folder / f"{name}_finelabels.csv", newline="") as f:
            rows = list(csv.reader(f))
        with open(folder / f"{name}_skeleton.csv", newline="") as f:
            skeleton = list(csv.reader(f))
        for row_index, (label, start, end) in enumerate(rows):
            start, end = int(start), int(end)
            if end - start > 59:
                start = end - 60 + 1
            length = max(end - start, 0)
            clip = np.zeros((3, length, 25, 1))  # float64, as the script's buffer
            for t in range(length):
                fields = skeleton[start + t]
                for j in range(25):
                    clip[:, t, j, 0] = [float(fields[11 * j + c]) for c in range(3)]
            clips.append(clip)
            names.append(name + str(row_index))
            labels.append(int(label) - 1)
    out.mkdir(parents=True, exist_ok=True)
    data_path, label_path = out / f"{split}_data.npy", out / f"{split}_label.pkl"
    data = open_memmap(data_path, dtype="float32", mode="w+", shape=(len(clips), 3, 60, 25, 1))
    for i, clip in enumerate(clips):
        data[i, :, : clip.shape[1]] = clip
    data.flush()
    del data
    with open(label_path, "wb") as f:
        pickle.dump((names, list(labels)), f)
    return data_path, label_path


def raw_examples(raw: Path) -> list[dict]:
    """TFDS-shaped clips read with the oracle's parser (for the TFDS-free writer test)."""
    examples = []
    for subject in SUBJECTS:
        name = f"Sample{subject:04d}"
        with open(raw / name / f"{name}_skeleton.csv", newline="") as f:
            rows = np.array([[float(v) for v in row] for row in csv.reader(f)])
        xyz = rows.reshape(len(rows), 25, 11)[..., :3].astype(np.float32)
        for index, (label, start, end) in enumerate(SEGMENTS[subject]):
            examples.append(
                {
                    "joints": xyz[start:end],
                    "label": label - 1,
                    "subject": subject,
                    "sample_id": name.encode(),
                    "segment_index": index,
                    "start": start,
                    "end": end,
                }
            )
    return examples


def assert_same_files(ours: tuple[Path, Path], theirs: tuple[Path, Path]) -> None:
    data, want = np.load(ours[0]), np.load(theirs[0])
    assert data.dtype == np.float32 and data.shape == want.shape
    np.testing.assert_array_equal(data, want)
    assert ours[0].read_bytes() == theirs[0].read_bytes()
    with open(ours[1], "rb") as f:
        names, labels = pickle.load(f)
    with open(theirs[1], "rb") as f:
        want_names, want_labels = pickle.load(f)
    assert names == want_names and labels == want_labels
    assert all(type(n) is str for n in names) and all(type(v) is int for v in labels)
    assert ours[1].read_bytes() == theirs[1].read_bytes()


def test_write_split_matches_oracle_without_tfds(tmp_path):
    raw = write_raw_smg(tmp_path / "raw")
    examples = raw_examples(raw)
    rng = np.random.default_rng(1)
    shuffled = [examples[i] for i in rng.permutation(len(examples))]  # TFDS shuffles on write
    for split, subjects in (("train", (1, 2)), ("test", (36, 37))):
        source = [e for e in shuffled if e["subject"] in subjects]
        ours = export.write_split(source, split, tmp_path / "ours")
        theirs = gendata_oracle(raw, split, tmp_path / "oracle")
        assert_same_files(ours, theirs)
    with open(tmp_path / "ours" / "test_label.pkl", "rb") as f:
        names, labels = pickle.load(f)
    assert names == [f"Sample0036{i}" for i in range(4)] + ["Sample00370", "Sample00371"]
    assert labels == [8, 4, 11, 8, 3, 15]


def test_write_split_rejects_duplicates_and_other_presets_keep_layout(tmp_path):
    examples = raw_examples(write_raw_smg(tmp_path / "raw"))
    with pytest.raises(transforms.DataError, match="participant 1 label row 0"):
        export.write_split([examples[0], examples[0]], "train", tmp_path / "dup")
    data_path, _ = export.write_split(
        examples, "train", tmp_path / "bone", transforms.get_preset("normalized", stream="bone")
    )
    assert np.load(data_path).shape == (len(examples), 3, 64, 25, 1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The raw tree and a TFDS data_dir built from it once for this module."""
    pytest.importorskip("tensorflow_datasets")
    tfds_smg = pytest.importorskip("tfds_smg", reason="the TFDS builder (tfds_smg) is needed")
    if not hasattr(tfds_smg, "Smg") and not hasattr(tfds_smg, "smg"):
        pytest.skip("tfds_smg does not register the 'smg' builder yet")
    root = tmp_path_factory.mktemp("export")
    raw = write_raw_smg(root / "raw")
    data_dir = root / "tfds"
    export.export(raw, "test", root / "first", data_dir=data_dir)
    return raw, data_dir, root


@pytest.mark.parametrize("split", ["train", "test"])
def test_export_reproduces_smg_gendata_bit_for_bit(built, split):
    raw, data_dir, root = built
    ours = export.export(raw, split, root / f"ours_{split}", data_dir=data_dir)
    theirs = gendata_oracle(raw, split, root / f"oracle_{split}")
    assert_same_files(ours, theirs)


def test_smg_export_cli_reuses_data_dir(built, capsys):
    raw, data_dir, root = built
    out = root / "cli"
    code = export.main(["--split", "test", "--out", str(out), "--data_dir", str(data_dir)])
    assert code == 0 and "test_data.npy" in capsys.readouterr().out
    assert_same_files(
        (out / "test_data.npy", out / "test_label.pkl"),
        gendata_oracle(raw, "test", root / "oracle_cli"),
    )
    with pytest.raises(SystemExit):
        export.main(["--split", "test", "--out", str(out)])  # neither raw nor built data
