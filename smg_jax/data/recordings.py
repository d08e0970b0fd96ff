"""Segments and recordings: the vocabulary that data, online and emotion recognition share.

A *segment* is an integer triple ``(label, start, end)``: ``label`` a 0-based
class index in ``[0, num_classes)`` (SMG: 17 classes, raw label - 1) and
``start``/``end`` frame numbers of one recording. The SMG label files write
MGs as half-open row ranges ``[start, end)``; the authors' online decoder
reports inclusive ends. The online metric does not care which: it treats every
segment as the span ``[start, end]`` of the real line (``smg_jax.online.metric``), and
each recognizer's docstring says which convention its output follows.

A *recording* is one participant's whole skeleton sequence with its
ground-truth segments (one TFDS ``smg/sequences`` example).
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

Segment = tuple[int, int, int]

NUM_CLASSES = 17  # SMG's MG classes; 0-based labels 0..16 (raw labels 1..17)


class RecordingError(ValueError):
    """A malformed segment, segment file or recording.

    The message names the recording and the row (0-based position in its
    segment list) where one is at fault, and says how to fix it.
    """


def _as_int(value: Any, what: str, where: str) -> int:
    """``value`` as a Python int; floats that are not whole numbers and bools are errors."""
    if isinstance(value, (bool, np.bool_)):
        raise RecordingError(f"{where}: {what} is a boolean ({value!r}); write an integer.")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise RecordingError(f"{where}: {what} {value!r} is not an integer frame number / label.")


def check_segments(
    segments: Iterable[Sequence[Any]],
    *,
    recording: str = "recording",
    num_classes: int = NUM_CLASSES,
    num_frames: int | None = None,
) -> list[Segment]:
    """Validates one recording's segments and returns them as a list of int triples.

    Args:
      segments: ``(label, start, end)`` triples (tuples, lists or array rows).
      recording: the recording's name, for error messages.
      num_classes: labels must lie in ``[0, num_classes)``.
      num_frames: when given, ``end`` must not exceed it.

    Raises:
      RecordingError: a row that is not a triple, a non-integer value, a label
        out of range, a negative frame, ``start > end`` or an end beyond the
        recording; the message names ``recording`` and the 0-based row.
    """
    checked: list[Segment] = []
    for row, segment in enumerate(segments):
        where = f"{recording}, segment row {row}"
        try:
            values = list(segment)
        except TypeError:
            raise RecordingError(
                f"{where}: {segment!r} is not a (label, start, end) triple."
            ) from None
        if len(values) != 3:
            raise RecordingError(
                f"{where}: {segment!r} has {len(values)} values; a segment is (label, start, end)."
            )
        label = _as_int(values[0], "label", where)
        start = _as_int(values[1], "start", where)
        end = _as_int(values[2], "end", where)
        if not 0 <= label < num_classes:
            raise RecordingError(
                f"{where}: label {label} is outside [0, {num_classes}); labels are 0-based "
                f"class indices (raw SMG label - 1)."
            )
        if start < 0 or end < 0:
            raise RecordingError(f"{where}: negative frame in ({label}, {start}, {end}).")
        if start > end:
            raise RecordingError(
                f"{where}: start {start} > end {end}; a segment must not end before it starts."
            )
        if num_frames is not None and end > num_frames:
            raise RecordingError(
                f"{where}: end {end} is beyond the recording's {num_frames} frames."
            )
        checked.append((label, start, end))
    return checked


def by_recording(
    items: Mapping[str, Iterable[Sequence[Any]]] | Sequence[Iterable[Sequence[Any]]],
) -> dict[str, Iterable[Sequence[Any]]]:
    """``{name: segments}`` from a mapping (kept) or a sequence (named ``recording <i>``)."""
    if isinstance(items, Mapping):
        return {str(name): segs for name, segs in items.items()}
    if isinstance(items, (str, bytes)):
        raise RecordingError("Expected one item (a list of segments) per recording, got a string.")
    return {f"recording {index}": segs for index, segs in enumerate(items)}


def write_csv(path: str | pathlib.Path, segments: Iterable[Sequence[int]]) -> pathlib.Path:
    """Writes segments in the raw label layout: no header, rows ``label,start,end``, label 1-17."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        for label, start, end in (tuple(s)[:3] for s in segments):
            writer.writerow([int(label) + 1, int(start), int(end)])
    tmp.replace(path)
    return path


def read_csv(path: str | pathlib.Path, *, num_classes: int = NUM_CLASSES) -> list[Segment]:
    """Reads a raw-layout label file (``label,start,end``, label 1-based) as 0-based segments."""
    path = pathlib.Path(path)
    rows = []
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != 3:
                raise RecordingError(f"{path}, line {line}: expected label,start,end, got {row}.")
            try:
                label, start, end = (int(v) for v in row)
            except ValueError:
                raise RecordingError(f"{path}, line {line}: {row} holds a non-integer.") from None
            rows.append((label - 1, start, end))
    return check_segments(rows, recording=str(path), num_classes=num_classes)


@dataclasses.dataclass
class Recording:
    """One participant's recording.

    Attributes:
      name: ``"Sample0036"``.
      subject: participant number, 1-40.
      joints: ``(T, 25, 3)`` float32 world xyz in metres (all-zero rows: lost tracking).
      segments: ground-truth MGs ``(label 0-16, start, end)``, rows ``[start, end)``,
        in label-file order.
    """

    name: str
    subject: int
    joints: np.ndarray
    segments: list[Segment]

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    def frame_mask(self) -> np.ndarray:
        """``(T,)`` bool: True inside any MG (rows ``[start, end)``; the authors' ``MG_flag``)."""
        mask = np.zeros(self.num_frames, bool)
        for _, start, end in self.segments:
            mask[start:end] = True
        return mask


def recording_from_example(example: Mapping[str, Any], *, num_classes: int = NUM_CLASSES):
    """A ``Recording`` from one TFDS ``smg/sequences`` example (dict of NumPy values)."""
    name = example.get("sample_id", "recording")
    name = name.decode() if isinstance(name, (bytes, np.bytes_)) else str(name)
    joints = np.asarray(example["joints"], np.float32)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise RecordingError(f"{name}: joints must be (T, V, 3), got {joints.shape}.")
    seg = example["segments"]
    rows = zip(
        np.asarray(seg["label"]).tolist(),
        np.asarray(seg["start"]).tolist(),
        np.asarray(seg["end"]).tolist(),
        strict=True,
    )
    segments = check_segments(
        rows, recording=name, num_classes=num_classes, num_frames=joints.shape[0]
    )
    return Recording(name=name, subject=int(example["subject"]), joints=joints, segments=segments)
