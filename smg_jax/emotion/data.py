"""Emotional-state instances from the TFDS ``smg/emotion`` config, held in memory.

One *instance* is one row of a participant's ``SampleNNNN_tflabels_new.csv``:
a stretch ``[start, end)`` of the recording (two to five minutes in SMG) in
which the participant was relaxed or stressed. The builder's
train/test split (participants 1-35 / 36-40) is only one protocol here, so
both splits are read and the instances are regrouped by participant
(``smg_jax.emotion.protocols`` makes the folds).

The whole of SMG's 142 instances is about 250 MB of float32 joints, so the
instances are read once into a list and every fold indexes into it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from smg_jax.data import sources
from smg_jax.data.recordings import Recording, Segment, recording_from_example

SMG_CONFIG = "emotion"
STATE_NAMES = ("relaxed", "stressed")  # index = code // 10 (docs/data.md: our reading)
NUM_MG_CLASSES = 17


class EmotionError(ValueError):
    """Bad input to emotional-state recognition: data, config, predictions or folds.

    The message names the instance (``Sample0036_01``), file or config field at
    fault and says how to fix it.
    """


@dataclasses.dataclass
class Instance:
    """One relaxed / stressed instance of one participant.

    Attributes:
      key: ``"Sample0036_01"``: the recording and the 0-based row of its
        emotion label file (the TFDS example key).
      subject: participant, 1-40.
      sample_id: ``"Sample0036"``.
      index: 0-based row in the emotion label file.
      start, end: the instance's absolute rows ``[start, end)`` in the recording.
      state: 0 relaxed, 1 stressed (``code // 10``).
      state_code: the raw two-digit code.
      joints: ``(T, 25, 3)`` float32 world xyz in metres, ``T = end - start``.
      segments: ground-truth MGs overlapping the instance, clipped to it,
        instance-relative ``(label 0-16, start, end)`` with ``0 <= start <= end <= T``.
    """

    key: str
    subject: int
    sample_id: str
    index: int
    start: int
    end: int
    state: int
    state_code: int
    joints: np.ndarray
    segments: list[Segment]

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])


@dataclasses.dataclass
class EmotionData:
    """Every instance (sorted by participant, then row) and what is known about the data."""

    instances: list[Instance]
    class_names: list[str]  # the 17 MG class names
    synthetic: bool
    description: str  # "SMG" or "SYNTHETIC SMG (small scale)"

    @property
    def subjects(self) -> list[int]:
        return sorted({inst.subject for inst in self.instances})

    @property
    def states(self) -> np.ndarray:
        """``(N,)`` int64 state of every instance, in ``instances`` order."""
        return np.asarray([inst.state for inst in self.instances], np.int64)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def instance_from_example(example: Mapping[str, Any]) -> Instance:
    """An ``Instance`` from one TFDS ``smg/emotion`` example (a dict of NumPy values).

    Raises:
      EmotionError: a state other than 0/1, joints that are not ``(T, 25, 3)``
        with ``T = end - start``, or an MG outside the instance; the message
        names the instance.
    """
    sample_id = _text(example.get("sample_id", "recording"))
    index = int(example.get("instance_index", -1))
    key = f"{sample_id}_{index:02d}"
    joints = np.asarray(example["joints"], np.float32)
    start, end = int(example["start"]), int(example["end"])
    if joints.ndim != 3 or joints.shape[1:] != (25, 3):
        raise EmotionError(
            f"{key}: joints must be (T, 25, 3) world xyz, got {joints.shape}. Rebuild the TFDS "
            "smg/emotion dataset with this version of tfds_smg."
        )
    if joints.shape[0] != end - start:
        raise EmotionError(
            f"{key}: {joints.shape[0]} frames of joints for rows [{start}, {end}); the TFDS "
            "dataset is stale or corrupt: delete it and rebuild."
        )
    state = int(example["state"])
    if state not in (0, 1):
        raise EmotionError(
            f"{key}: state {state} is neither 0 (relaxed) nor 1 (stressed); the emotion code "
            f"{int(example.get('state_code', -1))} in {sample_id}_tflabels_new.csv row "
            f"{index + 1} must have code // 10 in {{0, 1}}."
        )
    seg = example["segments"]
    labels = np.asarray(seg["label"], np.int64).reshape(-1)
    starts = np.asarray(seg["start"], np.int64).reshape(-1)
    ends = np.asarray(seg["end"], np.int64).reshape(-1)
    segments = []
    for row, (label, s, e) in enumerate(zip(labels, starts, ends, strict=True)):
        if not 0 <= label < NUM_MG_CLASSES or not 0 <= s <= e <= joints.shape[0]:
            raise EmotionError(
                f"{key}: MG row {row} ({label}, {s}, {e}) is not a class in [0, 17) inside "
                f"the instance's {joints.shape[0]} frames; rebuild the TFDS dataset."
            )
        segments.append((int(label), int(s), int(e)))
    return Instance(
        key=key,
        subject=int(example["subject"]),
        sample_id=sample_id,
        index=index,
        start=start,
        end=end,
        state=state,
        state_code=int(example.get("state_code", 10 * state)),
        joints=joints,
        segments=segments,
    )


def load(data: Any) -> EmotionData:
    """Opens (building if needed) ``smg/emotion`` and reads every instance of both splits.

    Args:
      data: the config's ``data`` section (``manual_dir``, ``data_dir``,
        ``synthetic_scale``, ``synthetic_seed``).
    """
    opened = sources.open_smg(
        data, SMG_CONFIG, ("train", "test"), error=EmotionError, missing_ok=True
    )
    instances = [instance_from_example(src[i]) for src in opened.sources for i in range(len(src))]
    instances.sort(key=lambda inst: (inst.subject, inst.index))
    if not instances:
        raise EmotionError(f"smg/emotion in {data.data_dir} holds no instance.")
    keys = [inst.key for inst in instances]
    if len(set(keys)) != len(keys):
        raise EmotionError("smg/emotion holds the same instance twice; rebuild the dataset.")
    class_names = list(opened.info.features["segments"]["label"].names)
    return EmotionData(
        instances=instances,
        class_names=class_names,
        synthetic=opened.synthetic,
        description=opened.description,
    )


def load_recordings(data: Any) -> dict[str, Recording]:
    """Every whole recording (``smg/sequences``, both splits) by ``sample_id``.

    The MG recognizers read whole recordings; the instances are stretches of them.
    """
    opened = sources.open_smg(
        data, "sequences", ("train", "test"), error=EmotionError, missing_ok=True
    )
    recordings = {}
    for source in opened.sources:
        for i in range(len(source)):
            recording = recording_from_example(source[i])
            recordings[recording.name] = recording
    return recordings
