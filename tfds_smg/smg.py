"""The TFDS builder ``smg``: SMG micro-gestures from the raw layout (or the MiGA files).

Configs (feature tables in ``docs/data.md``):

* ``clips``: one example per labeled micro-gesture (MG), rows ``[start, end)``.
* ``sequences``: one example per recording, with a per-frame label.
* ``emotion``: one example per relaxed / stressed instance, with its MGs.
* ``miga``: the preprocessed ``(N, 3, T, 25, 1)`` classification files.

Splits are cross-subject, as in the paper: participants 1-35 ``train``, 36-40
``test``. A manual directory holding only some participants builds what it
has; a split with none of its participants is left out (and logged), so that
asking for it fails with TFDS's "Unknown split" error naming the splits there
are.

Files are written as TFRecord (what ``tfds.load`` / ``as_dataset`` read) and,
right after, as an ArrayRecord copy registered as an alternative format, which
``tfds.data_source`` / ``as_data_source`` pick automatically. TFDS 4.9 cannot
read ArrayRecord through ``tf.data``, so both are needed for both APIs to work.

This module must not use ``os`` or ``open``: TFDS's builder tests forbid both
in builder modules (file access goes through ``tfds_smg.raw`` and ``epath``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.core.utils import tqdm_utils

from tfds_smg import miga, raw, synthetic

NUM_CLASSES = raw.NUM_CLASSES
NO_MG_LABEL = NUM_CLASSES  # per-frame label of frames outside every MG (17)
LABEL_NAMES = tuple(f"mg{c:02d}" for c in range(1, NUM_CLASSES + 1))  # index = raw label - 1
STATE_NAMES = ("relaxed", "stressed")  # index = code // 10 (see the emotion config)
LAST_TRAIN_SUBJECT = 35
SPLITS = ("train", "test")
KINDS = ("clips", "sequences", "emotion", "miga")

_MIGA_NAME = re.compile(r"^(Sample(\d{4}))(\d+)$")  # the authors' clip name: sample + row

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
SMG is distributed by its authors on request; see https://github.com/mikecheninoulu/SMG
(the README's "Download" section: the full dataset by e-mail to the authors, the skeleton
modality through the MiGA challenge). Unpack it so that `manual_dir` holds one folder per
participant (or one level deeper, e.g. `smg_skeleton_train/Sample0001`):

  <manual_dir>/Sample0001/Sample0001_skeleton.csv       (required)
                          Sample0001_finelabels.csv     (required)
                          Sample0001_data.csv           (required)
                          Sample0001_tflabels_new.csv   (required by the `emotion` config)
  ...
  <manual_dir>/Sample0040/...

For the `miga` config put the preprocessed classification files into `manual_dir`:
`train_data.npy`, `train_label.pkl`, `test_data.npy`, `test_label.pkl`.

Then: tfds.builder('smg/clips', data_dir=...).download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=<manual_dir>))
To try everything without the real data, write a synthetic tree first:
  smg-synth --out /tmp/smg_raw --scale tiny --miga
"""

DESCRIPTION = """\
SMG (Spontaneous Micro-Gesture dataset; Chen et al., IJCV 2023): 40 participants recorded
with a Kinect v2 while telling stories in a relaxed and a stressed emotional state; 3,692
labeled micro-gestures in 17 classes, 71 relaxed and 71 stressed instances. Skeletons are
25 joints in camera space (metres). Class names are not published machine-readably: labels
are `mg01`..`mg17` (index = raw label - 1); see `tfds_smg.load_class_names`.
"""


def split_of(subject: int) -> str:
    """``"train"`` for participants 1-35, ``"test"`` for 36-40 (the paper's protocol)."""
    return "train" if subject <= LAST_TRAIN_SUBJECT else "test"


def load_class_names(path: str | Path) -> tuple[str, ...]:
    """Reads a names file: 17 non-empty, distinct lines, line ``c + 1`` naming class ``c``.

    Raises:
      SMGDataError: the file is missing or does not hold 17 distinct names.
    """
    path = Path(path)
    if not path.is_file():
        raise raw.SMGDataError(path, "the class-names file is missing", "write one name per line")
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    names = tuple(n for n in names if n)
    if len(names) != NUM_CLASSES or len(set(names)) != NUM_CLASSES:
        raise raw.SMGDataError(
            path,
            f"found {len(names)} names ({len(set(names))} distinct), need {NUM_CLASSES}",
            "write 17 distinct names, one per line, in class order (raw label 1 first)",
        )
    return names


@dataclasses.dataclass(eq=False)
class SmgConfig(tfds.core.BuilderConfig):
    """A ``smg`` config.

    Attributes:
      kind: one of ``clips``, ``sequences``, ``emotion``, ``miga``.
      label_names: the 17 ClassLabel names (default ``mg01``..``mg17``).
    """

    kind: str = "clips"
    label_names: tuple[str, ...] = LABEL_NAMES

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"SmgConfig kind {self.kind!r} is not one of {KINDS}")
        if len(self.label_names) != NUM_CLASSES:
            raise ValueError(f"SmgConfig needs {NUM_CLASSES} label names")

    @classmethod
    def with_label_names(
        cls, kind: str, names_file: str | Path, name: str | None = None
    ) -> SmgConfig:
        """A config of ``kind`` whose labels carry the names in ``names_file``.

        Use as ``tfds.builder('smg', config=SmgConfig.with_label_names('clips', 'names.txt'))``;
        the data is stored under the config name (default ``<kind>_named``).
        """
        return cls(
            name=name or f"{kind}_named",
            kind=kind,
            label_names=load_class_names(names_file),
            description=f"The {kind} config with class names from {Path(names_file).name}.",
        )


def _joint_tensor(channels: int) -> tfds.features.Tensor:
    # Raw bytes: decoding is one frombuffer, not a proto float list.
    return tfds.features.Tensor(
        shape=(None, raw.NUM_JOINTS, channels),
        dtype=np.float32,
        encoding=tfds.features.Encoding.BYTES,
    )


def _frame_labels() -> tfds.features.Tensor:
    return tfds.features.Tensor(
        shape=(None,), dtype=np.int32, encoding=tfds.features.Encoding.BYTES
    )


class Smg(tfds.core.GeneratorBasedBuilder):
    """SMG micro-gesture skeletons (Kinect v2, 25 joints), built from a manual directory."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "First release: clips, sequences, emotion and miga configs; cross-subject "
        "splits (1-35 train, 36-40 test); TFRecord plus an ArrayRecord copy.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS: ClassVar[list[SmgConfig]] = [
        SmgConfig(
            name="clips",
            kind="clips",
            description="One example per labeled MG: its frames [start, end) of the recording.",
        ),
        SmgConfig(
            name="sequences",
            kind="sequences",
            description="One example per recording: all frames, its MGs and a per-frame label.",
        ),
        SmgConfig(
            name="emotion",
            kind="emotion",
            description="One example per relaxed/stressed instance, with the MGs inside it.",
        ),
        SmgConfig(
            name="miga",
            kind="miga",
            description="The preprocessed (N, 3, T, 25, 1) classification files (MiGA/authors).",
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "clips"

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """This file. TFDS 4.9.10 looks it up through ``importlib_resources``, which it
        declares for Python < 3.9 only, and fails without it; the answer is the same."""
        return epath.Path(__file__)

    @property
    def _kind(self) -> str:
        return self.builder_config.kind

    def _info(self) -> tfds.core.DatasetInfo:
        label = tfds.features.ClassLabel(names=list(self.builder_config.label_names))
        ident = {"subject": np.int32, "sample_id": tfds.features.Text()}
        segment = {"label": label, "start": np.int32, "end": np.int32}
        if self._kind == "clips":
            features = {
                "joints": _joint_tensor(3),
                "orientation_wxyz": _joint_tensor(4),
                "pixel_xy": _joint_tensor(2),
                "extra_9_10": _joint_tensor(2),
                "label": label,
                **ident,
                "segment_index": np.int32,
                "start": np.int32,
                "end": np.int32,
            }
            keys = ("joints", "label")
        elif self._kind == "sequences":
            features = {
                "joints": _joint_tensor(3),
                "frame_labels": _frame_labels(),
                "segments": tfds.features.Sequence(segment),
                **ident,
                "fps": np.float32,
                "num_zero_frames": np.int32,
            }
            keys = ("joints", "frame_labels")
        elif self._kind == "emotion":
            features = {
                "joints": _joint_tensor(3),
                "state": tfds.features.ClassLabel(names=list(STATE_NAMES)),
                "state_code": np.int32,
                "normal_label": np.int32,
                "instance_id": np.int32,
                "instance_index": np.int32,
                **ident,
                "start": np.int32,
                "end": np.int32,
                "frame_labels": _frame_labels(),
                "segments": tfds.features.Sequence({**segment, "segment_index": np.int32}),
            }
            keys = ("joints", "state")
        else:
            features = {
                "joints": _joint_tensor(3),
                "num_frames": np.int32,
                "label": label,
                "name": tfds.features.Text(),
                **ident,
                "segment_index": np.int32,
            }
            keys = ("joints", "label")
        return self.dataset_info_from_configs(
            description=DESCRIPTION,
            features=tfds.features.FeaturesDict(features),
            supervised_keys=keys,
            homepage="https://github.com/mikecheninoulu/SMG",
            metadata=tfds.core.MetadataDict(),
            # Declared here, not only in dataset_info.json: TFDS restores the list of
            # available formats from the code's DatasetInfo, not from the file.
            alternative_file_formats=[file_adapters.FileFormat.ARRAY_RECORD],
        )

    # --- Splits -----------------------------------------------------------------

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        manual_dir = Path(str(dl_manager.manual_dir))
        marker = synthetic.read_marker(manual_dir)
        metadata = self.info.metadata
        metadata.update(
            {
                "synthetic": marker is not None,
                "synthetic_marker": marker,
                "label_names": list(self.builder_config.label_names),
                "splits": {},
            }
        )
        if marker is not None:
            logging.warning(
                "smg/%s: %s holds SYNTHETIC data (%s, scale %s, seed %s). The dataset's "
                "metadata says so; numbers computed on it are not SMG results.",
                self._kind,
                manual_dir,
                marker.get("generator"),
                marker.get("scale"),
                marker.get("seed"),
            )
        if self._kind == "miga":
            return self._miga_splits(manual_dir)
        by_split: dict[str, list[Path]] = {split: [] for split in SPLITS}
        for path in raw.list_samples(manual_dir):
            by_split[split_of(raw.subject_of(path))].append(path)
        metadata["no_mg_label"] = NO_MG_LABEL
        metadata["state_names"] = list(STATE_NAMES)
        for split, paths in by_split.items():
            if not paths:
                logging.warning(
                    "smg/%s: %s holds no participant of the %s split; the split is left out.",
                    self._kind,
                    manual_dir,
                    split,
                )
        return {
            split: self._generate_examples(paths, split)
            for split, paths in by_split.items()
            if paths
        }

    def _miga_splits(self, manual_dir: Path) -> dict[str, Any]:
        present = [
            s for s in SPLITS if (manual_dir / miga.MIGA_DATA_NAME.format(split=s)).is_file()
        ]
        if not present:
            raise raw.SMGDataError(
                manual_dir,
                "no preprocessed classification files found",
                "put train_data.npy + train_label.pkl and/or test_data.npy + test_label.pkl "
                "(the authors' smg_gendata.py output) into manual_dir",
            )
        return {split: self._generate_miga(manual_dir, split) for split in present}

    # --- Examples ---------------------------------------------------------------

    def _generate_examples(self, paths: list[Path], split: str) -> Iterator[tuple[str, dict]]:
        """Yields ``(key, example)`` for the participants in ``paths`` (one split)."""
        stats = _SplitStats(self._kind)
        make = {
            "clips": _clip_examples,
            "sequences": _sequence_example,
            "emotion": _emotion_examples,
        }
        for path in tqdm_utils.tqdm(paths, desc=f"smg/{self._kind} {split}", unit=" subjects"):
            sample = raw.read_sample(path, require_emotion=self._kind == "emotion")
            stats.add_sample(sample)
            for key, example in make[self._kind](sample):
                stats.add_example(example)
                yield key, example
        self.info.metadata["splits"][split] = stats.as_dict()

    def _generate_miga(self, manual_dir: Path, split: str) -> Iterator[tuple[str, dict]]:
        data, names, labels = miga.read_miga_split(manual_dir, split)
        if data.shape[4] > 1:
            logging.warning("smg/miga: %d bodies per clip; keeping body 0.", data.shape[4])
        joints = np.ascontiguousarray(data[..., 0].transpose(0, 2, 3, 1))  # (N, T, 25, 3)
        moving = joints.any(axis=(2, 3))  # (N, T): frames with any non-zero joint
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        for i, (name, label) in enumerate(zip(names, labels.tolist(), strict=True)):
            match = _MIGA_NAME.match(name)
            nonzero = np.flatnonzero(moving[i])
            yield (
                f"{i:05d}_{name}",
                {
                    "joints": joints[i],
                    "num_frames": int(nonzero[-1] + 1) if nonzero.size else 0,
                    "label": label,
                    "name": name,
                    "subject": int(match.group(2)) if match else -1,
                    "sample_id": match.group(1) if match else "",
                    "segment_index": int(match.group(3)) if match else -1,
                },
            )
        self.info.metadata["splits"][split] = {
            "num_examples": len(names),
            "frames_per_example": int(joints.shape[1]),
            "class_counts": counts.tolist(),
        }

    # --- After writing: the ArrayRecord copy ----------------------------------------

    def _post_download_and_prepare_hook(self) -> None:
        """Writes the ArrayRecord copy of the TFRecord files (for ``tfds.data_source``)."""
        if self.info.file_format != file_adapters.FileFormat.TFRECORD:
            return  # built directly in another format: nothing to copy
        array_record = file_adapters.FileFormat.ARRAY_RECORD
        adapter = file_adapters.ADAPTER_FOR_FORMAT[array_record]
        for split_info in self.info.splits.values():
            template = split_info.filename_template.replace(
                filetype_suffix=array_record.file_suffix
            )
            targets = sorted(template.sharded_filepaths(split_info.num_shards))
            for source, target in zip(split_info.filepaths, targets, strict=True):
                partial = epath.Path(f"{target}.incomplete")
                records = tf.data.TFRecordDataset(str(source)).as_numpy_iterator()
                adapter.write_examples(partial, enumerate(records))
                partial.rename(target)
        logging.info("smg/%s: wrote the ArrayRecord copy in %s", self._kind, self.data_dir)


# --- Example makers: one raw sample -> (key, example) pairs ----------------------


def _frame_label_array(num_frames: int, segments: np.ndarray, offset: int = 0) -> np.ndarray:
    """``(num_frames,)`` int32: MG class per frame, ``NO_MG_LABEL`` outside MGs.

    ``segments`` are raw ``[label 1-17, start, end)`` rows; ``offset`` is
    subtracted from their frames. Where MGs overlap, the later row wins.
    """
    labels = np.full(num_frames, NO_MG_LABEL, dtype=np.int32)
    for label, start, end in segments.tolist():
        labels[max(0, start - offset) : max(0, end - offset)] = label - 1
    return labels


def _clip_examples(sample: raw.RawSample) -> Iterator[tuple[str, dict]]:
    for k, (label, start, end) in enumerate(sample.segments.tolist()):
        frames = sample.skeleton[start:end]
        yield (
            f"{sample.sample_id}_{k:04d}",
            {
                "joints": frames[..., raw.WORLD_XYZ],
                "orientation_wxyz": frames[..., raw.ORIENTATION_WXYZ],
                "pixel_xy": frames[..., raw.PIXEL_XY],
                "extra_9_10": frames[..., raw.EXTRA_9_10],
                "label": label - 1,
                "subject": sample.subject,
                "sample_id": sample.sample_id,
                "segment_index": k,
                "start": start,
                "end": end,
            },
        )


def _sequence_example(sample: raw.RawSample) -> Iterator[tuple[str, dict]]:
    segments = sample.segments
    yield (
        sample.sample_id,
        {
            "joints": sample.world_xyz,
            "frame_labels": _frame_label_array(sample.num_frames, segments),
            "segments": {
                "label": segments[:, 0] - 1,
                "start": segments[:, 1].astype(np.int32),
                "end": segments[:, 2].astype(np.int32),
            },
            "subject": sample.subject,
            "sample_id": sample.sample_id,
            "fps": sample.fps,
            "num_zero_frames": int(sample.zero_frames.sum()),
        },
    )


def _emotion_examples(sample: raw.RawSample) -> Iterator[tuple[str, dict]]:
    seg = sample.segments
    for i, (instance_id, start, end, code) in enumerate(sample.emotion.tolist()):
        # MGs that overlap the instance, clipped to it, in instance-relative frames.
        inside = np.flatnonzero((seg[:, 1] < end) & (seg[:, 2] > start))
        rel_start = np.maximum(seg[inside, 1], start) - start
        rel_end = np.minimum(seg[inside, 2], end) - start
        yield (
            f"{sample.sample_id}_{i:02d}",
            {
                "joints": sample.world_xyz[start:end],
                "state": code // 10,
                "state_code": code,
                "normal_label": code % 10 - 1,
                "instance_id": instance_id,
                "instance_index": i,
                "subject": sample.subject,
                "sample_id": sample.sample_id,
                "start": start,
                "end": end,
                "frame_labels": _frame_label_array(end - start, seg[inside], offset=start),
                "segments": {
                    "label": seg[inside, 0] - 1,
                    "start": rel_start.astype(np.int32),
                    "end": rel_end.astype(np.int32),
                    "segment_index": inside.astype(np.int32),
                },
            },
        )


class _SplitStats:
    """Per-split counts stored in the dataset's metadata (JSON-safe Python numbers)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.subjects: list[int] = []
        self.num_frames = 0
        self.num_zero_frames = 0
        self.num_frame_count_mismatches = 0
        self.num_segments = 0
        self.num_overlapping_segments = 0
        self.segment_class_counts = np.zeros(NUM_CLASSES, np.int64)
        self.state_counts = np.zeros(len(STATE_NAMES), np.int64)
        self.num_examples = 0
        self.num_zero_frames_in_examples = 0

    def add_sample(self, sample: raw.RawSample) -> None:
        self.subjects.append(sample.subject)
        self.num_frames += sample.num_frames
        self.num_zero_frames += int(sample.zero_frames.sum())
        self.num_frame_count_mismatches += int(sample.declared_num_frames != sample.num_frames)
        seg = sample.segments
        self.num_segments += len(seg)
        self.segment_class_counts += np.bincount(seg[:, 0] - 1, minlength=NUM_CLASSES)
        if len(seg) > 1:  # a segment overlaps when it starts before an earlier one ends
            by_start = seg[np.argsort(seg[:, 1], kind="stable")]
            ends_so_far = np.maximum.accumulate(by_start[:, 2])
            self.num_overlapping_segments += int((by_start[1:, 1] < ends_so_far[:-1]).sum())

    def add_example(self, example: dict) -> None:
        self.num_examples += 1
        joints = example["joints"]
        self.num_zero_frames_in_examples += int((~joints.any(axis=(1, 2))).sum())
        if self.kind == "emotion":
            self.state_counts[example["state"]] += 1

    def as_dict(self) -> dict:
        out = {
            "subjects": self.subjects,
            "num_recordings": len(self.subjects),
            "num_frames": self.num_frames,
            "num_zero_frames": self.num_zero_frames,
            "num_frame_count_mismatches": self.num_frame_count_mismatches,
            "num_segments": self.num_segments,
            "num_overlapping_segments": self.num_overlapping_segments,
            "segment_class_counts": self.segment_class_counts.tolist(),
            "num_examples": self.num_examples,
            "num_zero_frames_in_examples": self.num_zero_frames_in_examples,
        }
        if self.kind == "emotion":
            out["state_counts"] = dict(zip(STATE_NAMES, self.state_counts.tolist(), strict=True))
        return out
