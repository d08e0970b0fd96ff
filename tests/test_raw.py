"""The raw SMG reader (tfds_smg.raw) on hand-written files, good and bad.

Every bad input must raise ``SMGDataError`` (a ``ValueError``) whose message
names the file, the 1-based line where there is one, and a fix.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tfds_smg import miga, raw
from tfds_smg.raw import SMGDataError

NUM_VALUES = raw.VALUES_PER_FRAME


def skeleton_rows(num_frames: int) -> np.ndarray:
    """``(T, 275)`` distinct, exactly representable values; frame 2 lost (all zero)."""
    values = np.arange(num_frames * NUM_VALUES, dtype=np.float64).reshape(num_frames, -1)
    values = values / 8.0 - 100.0
    if num_frames > 2:
        values[2] = 0.0
    return values


def write_sample(
    root: Path,
    subject: int = 1,
    num_frames: int = 6,
    segments: str = "3,0,2\n17,1,6\n",
    emotion: str | None = "1,0,3,1\n2,3,6,12\n",
    data: str | None = None,
    skeleton: str | None = None,
) -> Path:
    """A ``SampleNNNN`` folder with valid files unless a file's text is given."""
    name = f"Sample{subject:04d}"
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if skeleton is None:
        rows = skeleton_rows(num_frames)
        skeleton = "".join(",".join(map(repr, row)) + "\n" for row in rows.tolist())
    (folder / f"{name}_skeleton.csv").write_text(skeleton)
    (folder / f"{name}_finelabels.csv").write_text(segments)
    (folder / f"{name}_data.csv").write_text(
        data if data is not None else f"{num_frames},30,4500\n"
    )
    if emotion is not None:
        (folder / f"{name}_tflabels_new.csv").write_text(emotion)
    return folder


def assert_error(err: pytest.ExceptionInfo, path: Path, line: int | None) -> None:
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert str(path) in message, message
    assert "Fix:" in message, message
    if line is not None:
        assert f"line {line}:" in message, message
        assert err.value.line == line


# --- Valid input -------------------------------------------------------------


def test_read_sample_shapes_values_and_zero_frames(tmp_path):
    folder = write_sample(tmp_path, subject=36)
    sample = raw.read_sample(folder)
    assert sample.subject == 36 and sample.sample_id == "Sample0036"
    assert sample.skeleton.shape == (6, 25, 11) and sample.skeleton.dtype == np.float32
    expected = skeleton_rows(6).astype(np.float32).reshape(6, 25, 11)
    np.testing.assert_array_equal(sample.skeleton, expected)
    np.testing.assert_array_equal(sample.world_xyz, expected[..., :3])
    assert sample.segments.dtype == np.int64
    np.testing.assert_array_equal(sample.segments, [[3, 0, 2], [17, 1, 6]])
    np.testing.assert_array_equal(sample.emotion, [[1, 0, 3, 1], [2, 3, 6, 12]])
    assert sample.has_emotion_labels
    assert (sample.fps, sample.max_depth, sample.num_frames) == (30.0, 4500.0, 6)
    np.testing.assert_array_equal(sample.zero_frames, [0, 0, 1, 0, 0, 0])


def test_joint_columns_follow_the_layout(tmp_path):
    """Joint j's 11 values are columns 11j..11j+10: world xyz, quaternion, pixel, extra."""
    folder = write_sample(tmp_path)
    sample = raw.read_sample(folder)
    flat = skeleton_rows(6).astype(np.float32)
    j = 7
    np.testing.assert_array_equal(
        sample.skeleton[:, j, raw.WORLD_XYZ], flat[:, 11 * j : 11 * j + 3]
    )
    np.testing.assert_array_equal(
        sample.skeleton[:, j, raw.ORIENTATION_WXYZ], flat[:, 11 * j + 3 : 11 * j + 7]
    )
    np.testing.assert_array_equal(
        sample.skeleton[:, j, raw.PIXEL_XY], flat[:, 11 * j + 7 : 11 * j + 9]
    )
    np.testing.assert_array_equal(
        sample.skeleton[:, j, raw.EXTRA_9_10], flat[:, 11 * j + 9 : 11 * j + 11]
    )


def test_windows_line_endings_blank_tail_and_no_emotion_file(tmp_path):
    rows = skeleton_rows(4)
    text = "".join(",".join(map(repr, row)) + "\r\n" for row in rows.tolist()) + "\r\n\r\n"
    folder = write_sample(tmp_path, num_frames=4, segments="1,0,4\r\n", emotion=None, skeleton=text)
    sample = raw.read_sample(folder)
    assert sample.num_frames == 4 and not sample.has_emotion_labels
    assert sample.emotion.shape == (0, 4)
    np.testing.assert_array_equal(sample.skeleton.reshape(4, -1), rows.astype(np.float32))


def test_values_round_through_float64_like_the_authors(tmp_path):
    """float() then float32 (the authors' path), not a direct float32 parse."""
    text = "1.00000005960464477539062582718061255302767487140869206996285"
    fields = [text] + ["0"] * (NUM_VALUES - 1)
    folder = write_sample(tmp_path, num_frames=1, segments="1,0,1\n", emotion=None,
                          skeleton=",".join(fields) + "\n")  # fmt: skip
    assert raw.read_sample(folder).skeleton[0, 0, 0] == np.float32(float(text)) == 1.0


def test_empty_label_file_and_declared_frame_mismatch_are_data(tmp_path, caplog):
    folder = write_sample(tmp_path, segments="", data="99,30,4500\n")
    sample = raw.read_sample(folder)
    assert sample.segments.shape == (0, 3)
    assert sample.declared_num_frames == 99 and sample.num_frames == 6
    assert "declares 99 frames" in caplog.text


def test_list_samples_sorted_nested_and_ignores_other_files(tmp_path):
    for subject in (36, 2):
        write_sample(tmp_path, subject=subject)
    write_sample(tmp_path / "smg_skeleton_validate", subject=31)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "Sample0007").write_text("a file, not a folder")
    names = [p.name for p in raw.list_samples(tmp_path)]
    assert names == ["Sample0002", "Sample0031", "Sample0036"]


# --- Bad input: every one names the file and the line --------------------------


def test_missing_files(tmp_path):
    folder = write_sample(tmp_path)
    for kind in ("skeleton", "finelabels", "data"):
        path = raw.sample_paths(folder)[kind]
        content = path.read_bytes()
        path.unlink()
        with pytest.raises(SMGDataError, match="missing") as err:
            raw.read_sample(folder)
        assert_error(err, path, None)
        path.write_bytes(content)
    emotion = raw.sample_paths(folder)["emotion"]
    emotion.unlink()
    raw.read_sample(folder)  # optional for clips/sequences
    with pytest.raises(SMGDataError, match="missing") as err:
        raw.read_sample(folder, require_emotion=True)
    assert_error(err, emotion, None)


def skeleton_text(rows: np.ndarray) -> list[str]:
    return [",".join(map(repr, row)) for row in rows.tolist()]


@pytest.mark.parametrize(
    ("edit", "line", "match"),
    [
        (lambda lines: lines.__setitem__(2, lines[2].rsplit(",", 1)[0]), 3, "found 274"),
        (lambda lines: lines.__setitem__(1, lines[1] + ",1.0"), 2, "found 276"),
        (lambda lines: lines.insert(3, ""), 4, "row is empty"),
        (lambda lines: lines.__setitem__(4, lines[4].replace("-99.5", "abc", 1)), 5, "'abc'"),
        (lambda lines: lines.__setitem__(1, lines[1].replace("-99.5", "nan", 1)), 2, "finite"),
        (lambda lines: lines.__setitem__(3, lines[3].replace("-99.5", "-inf", 1)), 4, "finite"),
        (lambda lines: lines.__setitem__(0, lines[0].replace("-100.0", "1e40", 1)), 1, "finite"),
        (lambda lines: lines.insert(0, ",".join(["x"] * NUM_VALUES)), 1, "header"),
    ],
    ids=["short-row", "long-row", "blank-row", "non-numeric", "nan", "inf", "overflow", "header"],
)
def test_bad_skeleton_rows(tmp_path, edit, line, match):
    rows = skeleton_rows(6)
    rows[:, 1] = -99.5  # a value each edit can find in its row
    lines = skeleton_text(rows)
    edit(lines)
    folder = write_sample(tmp_path, skeleton="\n".join(lines) + "\n")
    with pytest.raises(SMGDataError, match=match) as err:
        raw.read_sample(folder)
    assert_error(err, raw.sample_paths(folder)["skeleton"], line)


def test_empty_skeleton_file(tmp_path):
    folder = write_sample(tmp_path, skeleton="\n")
    with pytest.raises(SMGDataError, match="no rows") as err:
        raw.read_skeleton(raw.sample_paths(folder)["skeleton"])
    assert_error(err, raw.sample_paths(folder)["skeleton"], None)


@pytest.mark.parametrize(
    ("segments", "line", "match"),
    [
        ("3,0,2\n17,1\n", 2, "expected 3"),
        ("3,0,2\n3,1,4,5\n", 2, "expected 3"),
        ("label,start,end\n3,0,2\n", 1, "header"),
        ("3,0,2\n1.5,1,2\n", 2, "not a finite integer"),
        ("3,0,2\n1,1,2\n0,1,3\n", 3, "outside 1-17"),
        ("18,0,2\n", 1, "outside 1-17"),
        ("3,0,2\n4,2,2\n", 2, "not before its end"),
        ("3,4,2\n", 1, "not before its end"),
        ("3,-1,2\n", 1, "negative"),
        ("3,0,2\n5,3,7\n", 2, "beyond the recording"),
    ],
    ids=["short", "long", "header", "float", "label-0", "label-18", "empty", "reversed",
         "negative", "beyond"],
)  # fmt: skip
def test_bad_finelabels(tmp_path, segments, line, match):
    folder = write_sample(tmp_path, segments=segments)
    with pytest.raises(SMGDataError, match=match) as err:
        raw.read_sample(folder)
    assert_error(err, raw.sample_paths(folder)["finelabels"], line)


@pytest.mark.parametrize(
    ("emotion", "line", "match"),
    [
        ("1,0,3\n", 1, "expected 4"),
        ("1,0,3,1\n2,3,9,12\n", 2, "beyond the recording"),
        ("1,0,3,25\n", 1, "state 0 or 1"),
        ("1,0,3,10\n", 1, "k >= 1"),
        ("1,3,3,1\n", 1, "not before its end"),
    ],
    ids=["short", "beyond", "state-2", "k-0", "empty"],
)
def test_bad_emotion_labels(tmp_path, emotion, line, match):
    folder = write_sample(tmp_path, emotion=emotion)
    with pytest.raises(SMGDataError, match=match) as err:
        raw.read_sample(folder)
    assert_error(err, raw.sample_paths(folder)["emotion"], line)


@pytest.mark.parametrize(
    ("data", "line", "match"),
    [
        ("6,30,4500\n6,30,4500\n", None, "exactly one row"),
        ("6,30\n", 1, "expected 3"),
        ("6,thirty,4500\n", 1, "fps"),
        ("6.5,30,4500\n", 1, "not usable"),
        ("6,0,4500\n", 1, "not usable"),
    ],
    ids=["two-rows", "short", "text", "fractional-frames", "zero-fps"],
)
def test_bad_data_file(tmp_path, data, line, match):
    folder = write_sample(tmp_path, data=data)
    with pytest.raises(SMGDataError, match=match) as err:
        raw.read_sample(folder)
    assert_error(err, raw.sample_paths(folder)["data"], line)


def test_manual_dir_problems(tmp_path):
    with pytest.raises(SMGDataError, match="does not exist") as err:
        raw.list_samples(tmp_path / "absent")
    assert_error(err, tmp_path / "absent", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SMGDataError, match="no SampleNNNN") as err:
        raw.list_samples(tmp_path / "empty")
    assert_error(err, tmp_path / "empty", None)
    write_sample(tmp_path / "twice", subject=3)
    write_sample(tmp_path / "twice" / "copy", subject=3)
    with pytest.raises(SMGDataError, match="appears twice"):
        raw.list_samples(tmp_path / "twice")
    write_sample(tmp_path / "range", subject=41)
    with pytest.raises(SMGDataError, match="0001-0040"):
        raw.list_samples(tmp_path / "range")


# --- The preprocessed (MiGA / authors') files ------------------------------------


def write_miga(root: Path, split: str, data: np.ndarray, names, labels) -> None:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / f"{split}_data.npy", data)
    with (root / f"{split}_label.pkl").open("wb") as f:
        pickle.dump((names, labels), f)


def test_read_miga_split(tmp_path):
    data = np.random.default_rng(0).normal(size=(2, 3, 60, 25, 1)).astype(np.float32)
    write_miga(tmp_path, "test", data, ["Sample00360", "Sample003611"], [8, np.int64(16)])
    got, names, labels = miga.read_miga_split(tmp_path, "test")
    np.testing.assert_array_equal(got, data)
    assert names == ["Sample00360", "Sample003611"] and labels.tolist() == [8, 16]


def test_bad_miga_files(tmp_path):
    with pytest.raises(SMGDataError, match="missing"):
        miga.read_miga_split(tmp_path, "train")
    write_miga(tmp_path, "train", np.zeros((2, 3, 60, 24, 1), np.float32), ["a", "b"], [0, 1])
    with pytest.raises(SMGDataError, match="not \\(N, 3, T, 25, M\\)"):
        miga.read_miga_split(tmp_path, "train")
    write_miga(tmp_path, "train", np.zeros((2, 3, 60, 25, 1), np.float32), ["a", "b"], [0, 17])
    with pytest.raises(SMGDataError, match="0-based"):
        miga.read_miga_split(tmp_path, "train")
    write_miga(tmp_path, "train", np.zeros((2, 3, 60, 25, 1), np.float32), ["a"], [0])
    with pytest.raises(SMGDataError, match="1 names and 1 labels for 2 clips"):
        miga.read_miga_split(tmp_path, "train")
    with (tmp_path / "train_label.pkl").open("wb") as f:
        pickle.dump((["a", "b"], [0, 1], Path("x")), f)  # a class outside the allow-list
    with pytest.raises(SMGDataError, match="refusing to load"):
        miga.read_miga_split(tmp_path, "train")
