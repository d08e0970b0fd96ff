"""Reader for the raw SMG layout: the only module that knows the CSV columns.

The layout, as the authors' loaders read it (``smg_gendata.py``,
``smg_gendata_emotion.py`` and ``SMGaccessSample.py`` in
github.com/mikecheninoulu/SMG)::

    <manual_dir>/
      Sample0001/
        Sample0001_skeleton.csv      no header; one row per frame; 25 joints x 11 values
        Sample0001_finelabels.csv    no header; one row per MG: label,start,end
        Sample0001_data.csv          one row: number of frames,fps,maximum depth
        Sample0001_tflabels_new.csv  no header; one row per emotional-state instance:
                                     id,start,end,code   (optional except for `emotion`)
      ...
      Sample0040/

Subject folders may also sit one level deeper (``<manual_dir>/<any>/SampleNNNN``),
which is how the MiGA challenge splits its SMG release into train and validation
folders.

Skeleton columns, joint ``j`` (0-based, Kinect v2 / NTU order) occupying
columns ``11 * j .. 11 * j + 10``:

====== ==================== =====================================================
cols   name here            meaning
====== ==================== =====================================================
0-2    ``world_xyz``        camera-space position x, y, z in metres (z away from
                            the sensor); what every published SMG model reads
3-6    ``orientation_wxyz`` joint orientation quaternion w, x, y, z
7-8    ``pixel_xy``         2-D pixel position (the authors' ``SMGaccessSample``
                            reads these as the joint's pixel coordinates; the image
                            space is not stated)
9-10   ``extra_9_10``       two values that no published SMG code reads. By the
                            Kinect v2 SDK they are most likely the joint's second
                            2-D projection (depth space 512x424 vs colour space
                            1920x1080; NTU RGB+D, captured with the same SDK,
                            stores depthX, depthY, colorX, colorY in that order).
                            Unconfirmed, hence the neutral name.
====== ==================== =====================================================

Frame numbers in the label files index rows of the skeleton file: the
classification loader takes rows ``start .. end - 1`` (0-based), so a segment is
the half-open row range ``[start, end)`` and ``end`` may equal the row count.

A frame whose 25 world positions are all zero is a frame where the Kinect lost
the body. Such frames are data, not errors: they are kept and counted.

Every problem with the input raises :class:`SMGDataError`, whose message names
the file, the 1-based line where there is one, and the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

NUM_JOINTS = 25
VALUES_PER_JOINT = 11
VALUES_PER_FRAME = NUM_JOINTS * VALUES_PER_JOINT
NUM_CLASSES = 17
NUM_SUBJECTS = 40

# Column groups within one joint's 11 values (see the module docstring).
WORLD_XYZ = slice(0, 3)
ORIENTATION_WXYZ = slice(3, 7)
PIXEL_XY = slice(7, 9)
EXTRA_9_10 = slice(9, 11)
COLUMN_GROUPS: dict[str, slice] = {
    "world_xyz": WORLD_XYZ,
    "orientation_wxyz": ORIENTATION_WXYZ,
    "pixel_xy": PIXEL_XY,
    "extra_9_10": EXTRA_9_10,
}

SAMPLE_DIR_PATTERN = re.compile(r"^Sample(\d{4})$")
SKELETON_SUFFIX = "_skeleton.csv"
FINELABELS_SUFFIX = "_finelabels.csv"
DATA_SUFFIX = "_data.csv"
EMOTION_SUFFIX = "_tflabels_new.csv"


class SMGDataError(ValueError):
    """A raw SMG file is missing or malformed.

    Attributes:
      path: the offending file or folder.
      line: 1-based line number within ``path``, or ``None``.
    """

    def __init__(self, path: Path | str, problem: str, fix: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}. Fix: {fix}")


class DataInfo(NamedTuple):
    """The one row of ``SampleNNNN_data.csv``."""

    num_frames: int
    fps: float
    max_depth: float


@dataclasses.dataclass(frozen=True, eq=False)
class RawSample:
    """One participant's recording, as read from its ``SampleNNNN`` folder.

    Attributes:
      subject: participant number, 1-40 (from the folder name).
      sample_id: folder name, e.g. ``"Sample0036"``.
      skeleton: ``(T, 25, 11)`` float32, one row of the skeleton file per frame;
        see the module docstring for the 11 values.
      segments: ``(K, 3)`` int64 rows ``[label, start, end]`` of the fine label
        file, in file order: ``label`` 1-17 as written (the builder stores
        ``label - 1``), frames ``[start, end)``, 0-based.
      fps: frames per second from the data file.
      max_depth: maximum depth from the data file (the depth video's range;
        its unit is not documented by the authors).
      declared_num_frames: frame count written in the data file.
      emotion: ``(E, 4)`` int64 rows ``[id, start, end, code]`` of the
        emotional-state file, frames ``[start, end)``; ``(0, 4)`` when the file
        is absent.
      has_emotion_labels: whether ``SampleNNNN_tflabels_new.csv`` exists.
    """

    subject: int
    sample_id: str
    skeleton: np.ndarray
    segments: np.ndarray
    fps: float
    max_depth: float
    declared_num_frames: int
    emotion: np.ndarray
    has_emotion_labels: bool

    @property
    def num_frames(self) -> int:
        """Number of skeleton rows ``T`` (the authority for frame ranges)."""
        return int(self.skeleton.shape[0])

    @property
    def world_xyz(self) -> np.ndarray:
        """``(T, 25, 3)`` float32 camera-space joint positions in metres."""
        return self.skeleton[..., WORLD_XYZ]

    @functools.cached_property
    def zero_frames(self) -> np.ndarray:
        """``(T,)`` bool: frames whose 25 world positions are all zero (lost tracking)."""
        return ~np.any(self.world_xyz != 0.0, axis=(1, 2))


# ---------------------------------------------------------------------------
# Small CSV files: parsed row by row, which gives exact line numbers for free.


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise SMGDataError(
            path,
            f"the {what} file is missing",
            f"put {path.name} into {path.parent} (see the raw layout in the tfds_smg docs)",
        )
    text = path.read_text(encoding="utf-8-sig")  # a BOM from Windows tools is harmless
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _rows(text: str) -> list[tuple[int, list[str]]]:
    """``(1-based line, fields)`` for the non-blank lines; blank lines only at the end."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return [(i + 1, line.split(",")) for i, line in enumerate(lines)]


def _int_rows(path: Path, what: str, columns: Sequence[str]) -> np.ndarray:
    """Parses a header-less CSV of integers into ``(rows, len(columns))`` int64."""
    rows = _rows(_read_text(path, what))
    out = np.zeros((len(rows), len(columns)), dtype=np.int64)
    layout = ",".join(columns)
    for r, (line, fields) in enumerate(rows):
        if len(fields) != len(columns):
            raise SMGDataError(
                path,
                f"expected {len(columns)} comma-separated values ({layout}), found {len(fields)}",
                f"make every row of the {what} file read '{layout}' with no header",
                line,
            )
        for c, field in enumerate(fields):
            out[r, c] = _parse_int(field, path, line, columns[c], what)
    return out


def _parse_int(field: str, path: Path, line: int, column: str, what: str) -> int:
    try:
        value = float(field)
    except ValueError:
        header = " (a header row? the file has none)" if line == 1 else ""
        raise SMGDataError(
            path,
            f"{column} value {field.strip()!r} is not a number{header}",
            f"write an integer {column} in every row of the {what} file",
            line,
        ) from None
    if not np.isfinite(value) or value != int(value):
        raise SMGDataError(
            path,
            f"{column} value {field.strip()!r} is not a finite integer",
            f"write an integer {column} in every row of the {what} file",
            line,
        )
    return int(value)


def read_finelabels(path: Path | str, num_frames: int | None = None) -> np.ndarray:
    """Reads ``SampleNNNN_finelabels.csv``.

    Args:
      path: the label file (no header; rows ``label,start,end``).
      num_frames: when given, segments must end at or before this frame.

    Returns:
      ``(K, 3)`` int64 rows ``[label, start, end]``: ``label`` 1-17 as in the
      file, frames ``[start, end)`` 0-based. ``K`` may be 0.

    Raises:
      SMGDataError: missing file, wrong column count, non-integer value, label
        outside 1-17, ``start >= end``, negative start, or ``end > num_frames``.
    """
    path = Path(path)
    segments = _int_rows(path, "fine label", ("label", "start", "end"))
    for r, (label, start, end) in enumerate(segments):
        line = r + 1
        if not 1 <= label <= NUM_CLASSES:
            raise SMGDataError(
                path,
                f"label {label} is outside 1-{NUM_CLASSES}",
                f"labels in the fine label file are 1-based class numbers 1-{NUM_CLASSES}; "
                "correct this row",
                line,
            )
        _check_range(path, line, start, end, num_frames, "segment")
    return segments


def _check_range(
    path: Path, line: int, start: int, end: int, num_frames: int | None, what: str
) -> None:
    if start < 0:
        raise SMGDataError(
            path, f"{what} start {start} is negative", "frame numbers are 0-based rows", line
        )
    if start >= end:
        raise SMGDataError(
            path,
            f"{what} start {start} is not before its end {end}",
            f"a {what} covers frames [start, end): make end greater than start",
            line,
        )
    if num_frames is not None and end > num_frames:
        raise SMGDataError(
            path,
            f"{what} end {end} is beyond the recording, which has {num_frames} frames",
            f"end must be at most {num_frames} (the skeleton file's row count); check that "
            "the label and skeleton files belong to the same recording",
            line,
        )


def read_data_info(path: Path | str) -> DataInfo:
    """Reads ``SampleNNNN_data.csv``: one row ``num_frames,fps,max_depth``.

    Returns:
      :class:`DataInfo` with the declared frame count, frames per second and
      the maximum depth value.
    """
    path = Path(path)
    rows = _rows(_read_text(path, "data"))
    fix = "the data file holds one row: number of frames,fps,maximum depth"
    if len(rows) != 1:
        raise SMGDataError(path, f"expected exactly one row, found {len(rows)}", fix)
    line, fields = rows[0]
    if len(fields) != 3:
        raise SMGDataError(path, f"expected 3 values, found {len(fields)}", fix, line)
    values = []
    for name, field in zip(("number of frames", "fps", "maximum depth"), fields, strict=True):
        try:
            value = float(field)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or value < 0:
            raise SMGDataError(
                path, f"{name} {field.strip()!r} is not a finite non-negative number", fix, line
            )
        values.append(value)
    if values[0] != int(values[0]) or values[1] <= 0:
        raise SMGDataError(
            path, f"frame count {fields[0]!r} / fps {fields[1]!r} are not usable", fix, line
        )
    return DataInfo(num_frames=int(values[0]), fps=values[1], max_depth=values[2])


def read_emotion_labels(path: Path | str, num_frames: int | None = None) -> np.ndarray:
    """Reads ``SampleNNNN_tflabels_new.csv`` (emotional-state instances).

    Each row is ``id,start,end,code``. The authors' ``smg_gendata_emotion.py``
    derives the emotional state as ``code // 10`` (their "hidden" state) and a
    second label as ``code % 10 - 1`` (their "normal" state).

    Args:
      path: the file.
      num_frames: when given, instances must end at or before this frame.

    Returns:
      ``(E, 4)`` int64 rows ``[id, start, end, code]``, frames ``[start, end)``.

    Raises:
      SMGDataError: missing file, wrong column count, non-integer value,
        ``start >= end``, ``end > num_frames``, or a code whose state
        ``code // 10`` is not 0 or 1 or whose ``code % 10`` is 0.
    """
    path = Path(path)
    rows = _int_rows(path, "emotional-state", ("id", "start", "end", "code"))
    for r, (_, start, end, code) in enumerate(rows):
        line = r + 1
        _check_range(path, line, start, end, num_frames, "instance")
        if code < 0 or code // 10 not in (0, 1) or code % 10 == 0:
            raise SMGDataError(
                path,
                f"code {code} does not read as state*10 + k with state 0 or 1 and k >= 1",
                "codes are two-digit: the tens digit is the emotional state (0 or 1), the "
                "units digit a 1-based label; correct the row or report the new code",
                line,
            )
    return rows


# ---------------------------------------------------------------------------
# The skeleton file: large, so parsed in bulk; row-by-row only to locate an error.


def read_skeleton(path: Path | str) -> np.ndarray:
    """Reads ``SampleNNNN_skeleton.csv``.

    Parsing is vectorized: the whole file goes through one ``np.fromstring``
    call (about 100 MB/s); the row-by-row pass runs only to locate an error.
    Values are parsed as float64 and then rounded to float32, exactly as the
    authors' ``float()`` + float32-array path does.

    Args:
      path: the skeleton file (no header, one row of 275 values per frame).

    Returns:
      ``(T, 25, 11)`` float32: per frame and joint the 11 raw values (world xyz
      in metres, orientation quaternion wxyz, pixel xy, the two extra values).
      All-zero frames (lost tracking) are kept.

    Raises:
      SMGDataError: missing or empty file, a row without 275 values, a value
        that is not a number, or a NaN / infinite value.
    """
    path = Path(path)
    body = _read_text(path, "skeleton").rstrip()
    lines = body.split("\n") if body else []
    if not lines:
        raise SMGDataError(
            path, "the skeleton file has no rows", "re-export the recording's skeleton file"
        )
    # One comma count per row catches every wrong-width row before the bulk parse.
    commas = np.fromiter((line.count(",") for line in lines), dtype=np.int64, count=len(lines))
    bad = np.flatnonzero(commas != VALUES_PER_FRAME - 1)
    if bad.size:
        r = int(bad[0])
        problem = (
            "the row is empty"
            if not lines[r].strip()
            else f"expected {VALUES_PER_FRAME} comma-separated values (25 joints x 11), "
            f"found {commas[r] + 1}"
        )
        raise SMGDataError(
            path,
            problem,
            "every row is one frame of 275 values, no header and no blank lines; repair or "
            "remove this row",
            r + 1,
        )
    try:
        with warnings.catch_warnings():
            # Older NumPy warns (DeprecationWarning) instead of raising on unparsable text.
            warnings.simplefilter("error", DeprecationWarning)
            # float64 first, then float32: the authors' loaders parse with float() and
            # store into float32 arrays, and a direct float32 parse can round differently.
            values = np.fromstring(body.replace("\n", ","), dtype=np.float64, sep=",")
    except (ValueError, DeprecationWarning):
        values = None
    if values is None or values.size != len(lines) * VALUES_PER_FRAME:
        _raise_unparsable(path, lines)
    with np.errstate(over="ignore"):  # overflow becomes inf, reported just below
        values32 = values.astype(np.float32)
    finite = np.isfinite(values32)  # also catches float64 values beyond float32's range
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        row, col = divmod(index, VALUES_PER_FRAME)
        joint, k = divmod(col, VALUES_PER_JOINT)
        raise SMGDataError(
            path,
            f"value {values[index]} in column {col + 1} (joint {joint}, value {k}) is not a "
            "finite float32",
            "lost-tracking frames must be written as zeros, not NaN or inf; repair the row",
            row + 1,
        )
    return values32.reshape(len(lines), NUM_JOINTS, VALUES_PER_JOINT)


def _raise_unparsable(path: Path, lines: list[str]) -> None:
    """Finds the first field that is not a number and raises with its line and column."""
    for r, line in enumerate(lines):
        for col, field in enumerate(line.split(",")):
            try:
                float(field)
            except ValueError:
                joint, k = divmod(col, VALUES_PER_JOINT)
                header = " (a header row? the file has none)" if r == 0 else ""
                raise SMGDataError(
                    path,
                    f"value {field.strip()!r} in column {col + 1} (joint {joint}, value {k}) "
                    f"is not a number{header}",
                    "every value is a decimal number; repair the row",
                    r + 1,
                ) from None
    raise SMGDataError(path, "the file could not be parsed", "check its encoding (UTF-8/ASCII)")


# ---------------------------------------------------------------------------
# Whole samples and the manual directory.


def sample_paths(sample_dir: Path | str) -> dict[str, Path]:
    """The four file paths of a ``SampleNNNN`` folder, keyed by kind."""
    sample_dir = Path(sample_dir)
    name = sample_dir.name
    return {
        "skeleton": sample_dir / f"{name}{SKELETON_SUFFIX}",
        "finelabels": sample_dir / f"{name}{FINELABELS_SUFFIX}",
        "data": sample_dir / f"{name}{DATA_SUFFIX}",
        "emotion": sample_dir / f"{name}{EMOTION_SUFFIX}",
    }


def subject_of(sample_dir: Path | str) -> int:
    """Participant number from a ``SampleNNNN`` folder name."""
    sample_dir = Path(sample_dir)
    match = SAMPLE_DIR_PATTERN.match(sample_dir.name)
    if not match or not 1 <= int(match.group(1)) <= NUM_SUBJECTS:
        raise SMGDataError(
            sample_dir,
            f"folder name {sample_dir.name!r} is not SampleNNNN with NNNN in 0001-0040",
            "name each participant's folder Sample0001 .. Sample0040",
        )
    return int(match.group(1))


def read_sample(sample_dir: Path | str, *, require_emotion: bool = False) -> RawSample:
    """Reads and cross-checks one participant's folder.

    Args:
      sample_dir: a ``SampleNNNN`` folder.
      require_emotion: raise when ``SampleNNNN_tflabels_new.csv`` is absent
        (the ``emotion`` config needs it; the others do not).

    Returns:
      The :class:`RawSample`. A frame count in the data file that differs from
      the skeleton's row count is logged, not raised: the rows are the
      authority, as in the authors' loaders.

    Raises:
      SMGDataError: see the ``read_*`` functions; segments and instances are
        checked against the skeleton's row count.
    """
    sample_dir = Path(sample_dir)
    subject = subject_of(sample_dir)
    paths = sample_paths(sample_dir)
    skeleton = read_skeleton(paths["skeleton"])
    num_frames = int(skeleton.shape[0])
    info = read_data_info(paths["data"])
    if info.num_frames != num_frames:
        logger.warning(
            "%s declares %d frames but %s has %d rows; using the rows.",
            paths["data"],
            info.num_frames,
            paths["skeleton"].name,
            num_frames,
        )
    segments = read_finelabels(paths["finelabels"], num_frames)
    has_emotion = paths["emotion"].is_file()
    if has_emotion or require_emotion:
        emotion = read_emotion_labels(paths["emotion"], num_frames)
    else:
        emotion = np.zeros((0, 4), dtype=np.int64)
    return RawSample(
        subject=subject,
        sample_id=sample_dir.name,
        skeleton=skeleton,
        segments=segments,
        fps=info.fps,
        max_depth=info.max_depth,
        declared_num_frames=info.num_frames,
        emotion=emotion,
        has_emotion_labels=has_emotion,
    )


def list_samples(manual_dir: Path | str) -> list[Path]:
    """The ``SampleNNNN`` folders under ``manual_dir``, sorted by subject.

    Folders are found directly under ``manual_dir`` or one level below it
    (e.g. ``smg_skeleton_train/Sample0001``).

    Raises:
      SMGDataError: ``manual_dir`` missing, holding no subject folder, or
        holding the same subject twice.
    """
    manual_dir = Path(manual_dir)
    layout = "SampleNNNN/SampleNNNN_skeleton.csv (+ _finelabels.csv, _data.csv)"
    if not manual_dir.is_dir():
        raise SMGDataError(
            manual_dir,
            "the manual directory does not exist",
            f"download SMG and unpack it so that this folder holds {layout}",
        )
    found: dict[int, Path] = {}
    candidates = [*manual_dir.glob("Sample[0-9][0-9][0-9][0-9]")]
    candidates += manual_dir.glob("*/Sample[0-9][0-9][0-9][0-9]")
    for path in candidates:
        if not path.is_dir():
            continue
        subject = subject_of(path)
        if subject in found:
            raise SMGDataError(
                path,
                f"subject {subject} appears twice (also {found[subject]})",
                "keep one copy of each SampleNNNN folder",
            )
        found[subject] = path
    if not found:
        raise SMGDataError(
            manual_dir,
            "no SampleNNNN subject folders found",
            f"point manual_dir at the folder that holds {layout}, one folder per participant",
        )
    return [found[s] for s in sorted(found)]
