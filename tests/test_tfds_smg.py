"""The TFDS builder ``smg``: every config on ``tfds_smg/dummy_data``, plus random access.

``tfds_smg/dummy_data`` is synthetic (two participants, one per split) and was
written by::

    smg-synth --out tfds_smg/dummy_data --scale tiny --subjects 1,36 \\
        --frames-per-subject 60 --clips-per-subject 2.5 --clip-frames 10 \\
        --lost-runs-per-1000 15 --miga
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_smg
from tfds_smg import miga, raw, synthetic

DUMMY = Path(tfds_smg.__file__).parent / "dummy_data"
SAMPLES = {split: [raw.read_sample(p, require_emotion=True) for p in raw.list_samples(DUMMY)
                   if tfds_smg.split_of(raw.subject_of(p)) == split]
           for split in ("train", "test")}  # fmt: skip


def expected_counts(kind: str) -> dict[str, int]:
    """Examples per split, counted from the raw files."""
    if kind == "miga":
        return {s: len(miga.read_miga_split(DUMMY, s)[1]) for s in SAMPLES}
    per_sample = {
        "clips": lambda s: len(s.segments),
        "sequences": lambda s: 1,
        "emotion": lambda s: len(s.emotion),
    }[kind]
    return {split: sum(per_sample(s) for s in samples) for split, samples in SAMPLES.items()}


def test_dummy_data_is_small_synthetic_and_covers_both_splits():
    size = sum(p.stat().st_size for p in DUMMY.rglob("*") if p.is_file())
    assert size < 400_000
    assert synthetic.read_marker(DUMMY)["synthetic"] is True
    for samples in SAMPLES.values():
        assert samples and sum(len(s.segments) for s in samples) >= 2
        assert {int(c) // 10 for s in samples for c in s.emotion[:, 3]} == {0, 1}
    assert sum(int(s.zero_frames.sum()) for ss in SAMPLES.values() for s in ss) > 0


# One DatasetBuilderTestCase per config: SPLITS differ between configs. The base class
# is reached through `tfds.testing` so that pytest does not collect it on its own.
class SmgClipsTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = tfds_smg.Smg
    BUILDER_CONFIG_NAMES_TO_TEST = ["clips"]  # noqa: RUF012 - the TFDS test API
    SPLITS = expected_counts("clips")


class SmgSequencesTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = tfds_smg.Smg
    BUILDER_CONFIG_NAMES_TO_TEST = ["sequences"]  # noqa: RUF012
    SPLITS = expected_counts("sequences")


class SmgEmotionTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = tfds_smg.Smg
    BUILDER_CONFIG_NAMES_TO_TEST = ["emotion"]  # noqa: RUF012
    SPLITS = expected_counts("emotion")


class SmgMigaTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = tfds_smg.Smg
    BUILDER_CONFIG_NAMES_TO_TEST = ["miga"]  # noqa: RUF012
    SPLITS = expected_counts("miga")


# --- Contents, through the random-access API ----------------------------------------


def build(config: str | tfds_smg.SmgConfig, data_dir: Path, manual_dir: Path = DUMMY):
    builder = tfds.builder("smg", config=config, data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tfds")
    for config in ("clips", "sequences", "emotion"):
        build(config, root)
    return root


def test_clips_random_access_matches_the_raw_rows(data_dir):
    builder = tfds.builder("smg/clips", data_dir=data_dir)
    assert builder.info.file_format.value == "tfrecord"
    assert "array_record" in {f.value for f in builder.info.available_file_formats()}
    for split, samples in SAMPLES.items():
        source = tfds.data_source("smg/clips", split=split, data_dir=data_dir)
        assert len(source) == sum(len(s.segments) for s in samples)
        by_key = {(s.subject, k): (s, row) for s in samples for k, row in enumerate(s.segments)}
        for i in np.random.default_rng(0).permutation(len(source)):
            ex = source[int(i)]
            sample, (label, start, end) = by_key[(ex["subject"], ex["segment_index"])]
            assert ex["sample_id"].decode() == sample.sample_id
            assert (ex["label"], ex["start"], ex["end"]) == (label - 1, start, end)
            rows = sample.skeleton[start:end]
            np.testing.assert_array_equal(ex["joints"], rows[..., raw.WORLD_XYZ])
            np.testing.assert_array_equal(ex["orientation_wxyz"], rows[..., raw.ORIENTATION_WXYZ])
            np.testing.assert_array_equal(ex["pixel_xy"], rows[..., raw.PIXEL_XY])
            np.testing.assert_array_equal(ex["extra_9_10"], rows[..., raw.EXTRA_9_10])
            assert ex["joints"].dtype == np.float32


def test_metadata_says_synthetic_and_counts_zero_frames(data_dir):
    metadata = tfds.builder("smg/clips", data_dir=data_dir).info.metadata
    assert metadata["synthetic"] is True
    assert metadata["synthetic_marker"]["generator"] == "tfds_smg.synthetic"
    for split, samples in SAMPLES.items():
        stats = metadata["splits"][split]
        assert stats["subjects"] == [s.subject for s in samples]
        assert stats["num_zero_frames"] == sum(int(s.zero_frames.sum()) for s in samples)
        assert stats["num_examples"] == sum(stats["segment_class_counts"])


def test_sequences_frame_labels(data_dir):
    source = tfds.data_source("smg/sequences", split="test", data_dir=data_dir)
    sample = SAMPLES["test"][0]
    ex = source[0]
    np.testing.assert_array_equal(ex["joints"], sample.world_xyz)
    expected = np.full(sample.num_frames, tfds_smg.NO_MG_LABEL)
    for label, start, end in sample.segments:
        expected[start:end] = label - 1
    np.testing.assert_array_equal(ex["frame_labels"], expected)
    np.testing.assert_array_equal(ex["segments"]["start"], sample.segments[:, 1])
    assert ex["num_zero_frames"] == sample.zero_frames.sum()


def test_emotion_instances_and_clipped_segments(data_dir):
    source = tfds.data_source("smg/emotion", split="train", data_dir=data_dir)
    sample = SAMPLES["train"][0]
    assert len(source) == len(sample.emotion)
    for ex in (source[i] for i in range(len(source))):
        instance_id, start, end, code = sample.emotion[ex["instance_index"]]
        assert (ex["instance_id"], ex["start"], ex["end"]) == (instance_id, start, end)
        assert ex["state"] == code // 10 and ex["normal_label"] == code % 10 - 1
        np.testing.assert_array_equal(ex["joints"], sample.world_xyz[start:end])
        segments = ex["segments"]
        fields = (segments[f] for f in ("label", "start", "end", "segment_index"))
        for label, s, e, k in zip(*fields, strict=True):
            raw_label, raw_start, raw_end = sample.segments[k]
            assert label == raw_label - 1
            assert (s, e) == (max(raw_start, start) - start, min(raw_end, end) - start)
            assert 0 <= s < e <= end - start


def test_tfds_load_reads_the_tfrecord_files(data_dir):
    ds = tfds.load("smg/clips", split="train", data_dir=data_dir)
    first = next(iter(tfds.as_numpy(ds)))
    assert first["joints"].shape[1:] == (25, 3)


def test_missing_split_is_left_out_and_named(tmp_path):
    manual = tmp_path / "raw"
    shutil.copytree(DUMMY / "Sample0001", manual / "Sample0001")
    builder = build("clips", tmp_path / "tfds", manual)
    assert set(builder.info.splits) == {"train"}
    with pytest.raises(ValueError, match="Unknown split"):
        tfds.data_source("smg/clips", split="test", data_dir=tmp_path / "tfds")
    assert builder.info.metadata["synthetic"] is False  # no marker copied


def test_emotion_needs_its_label_files(tmp_path):
    manual = tmp_path / "raw"
    shutil.copytree(DUMMY / "Sample0036", manual / "Sample0036")
    (manual / "Sample0036" / "Sample0036_tflabels_new.csv").unlink()
    build("clips", tmp_path / "tfds", manual)  # the other configs do not need it
    with pytest.raises(raw.SMGDataError, match=r"tflabels_new\.csv: the emotional-state file"):
        build("emotion", tmp_path / "tfds", manual)
    with pytest.raises(raw.SMGDataError, match="no preprocessed classification files"):
        build("miga", tmp_path / "tfds", manual)


def test_user_supplied_class_names(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"gesture {c}\n" for c in range(17)))
    config = tfds_smg.SmgConfig.with_label_names("clips", names)
    builder = build(config, tmp_path / "tfds")
    assert builder.info.features["label"].names[16] == "gesture 16"
    assert builder.builder_config.name == "clips_named"
    names.write_text("only one\n")
    with pytest.raises(raw.SMGDataError, match="need 17"):
        tfds_smg.load_class_names(names)
