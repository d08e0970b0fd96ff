"""The synthetic SMG generator (tfds_smg.synthetic): plan statistics, layout, determinism.

The full-scale statistics are checked on the plan alone (no CSV writing); the
written layout and the read-back on the ``tiny`` scale (40 short recordings).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tfds_smg import miga, raw, synthetic, synthetic_plan
from tfds_smg import synthetic_body as body

KINECT_PARENT_EDGES = {(c, int(p)) for c, p in enumerate(body.PARENT) if p >= 0}


@pytest.fixture(scope="module")
def full_plan() -> list[synthetic.SubjectPlan]:
    return synthetic.make_plan(synthetic.SCALES["full"], seed=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("tiny"), scale="tiny", seed=0, miga=True)


# --- The plan at full scale: SMG's published numbers ----------------------------


def test_full_plan_matches_published_totals(full_plan):
    assert len(full_plan) == 40
    assert sum(p.num_frames for p in full_plan) == 821_056
    assert sum(len(p.segments) for p in full_plan) == 3_692
    lengths = np.concatenate([p.segments[:, 2] - p.segments[:, 1] for p in full_plan])
    assert 50.0 <= lengths.mean() <= 53.0
    test = [p for p in full_plan if p.subject >= 36]
    assert [len(p.segments) for p in test] == [155, 164, 57, 121, 113]
    test_counts = np.bincount(np.concatenate([p.segments[:, 0] - 1 for p in test]), minlength=17)
    np.testing.assert_array_equal(test_counts, synthetic_plan.TEST_CLASS_COUNTS)
    train_labels = np.concatenate([p.segments[:, 0] - 1 for p in full_plan if p.subject <= 35])
    train_counts = np.bincount(train_labels, minlength=17)
    assert train_counts.min() >= 1 and train_counts.sum() == 3_082
    assert np.argmax(train_counts) == 8  # the same long tail as the test set


def test_full_plan_emotional_states(full_plan):
    per_subject = [len(p.emotion) for p in full_plan]
    assert sorted(set(per_subject)) == [2, 4] and per_subject.count(2) == 9
    rows = np.concatenate([p.emotion for p in full_plan])
    states = rows[:, 3] // 10
    assert (np.bincount(states) == [71, 71]).all()
    for p in full_plan:  # half of each state per participant
        assert (p.emotion[:, 3] // 10).sum() * 2 == len(p.emotion)
    minutes = (rows[:, 2] - rows[:, 1]) / synthetic.FPS / 60
    assert minutes.min() >= 2.0 and minutes.max() <= 5.0
    assert set((rows[:, 3] % 10).tolist()) <= {1, 2}


def test_full_plan_segments_do_not_overlap_and_emotion_has_signal(full_plan):
    mgs = {0: 0, 1: 0}
    frames = {0: 0, 1: 0}
    classes = {0: np.zeros(17), 1: np.zeros(17)}
    for p in full_plan:
        seg = p.segments
        assert (seg[1:, 1] >= seg[:-1, 2]).all(), f"overlap in subject {p.subject}"
        assert seg[:, 1].min() >= 0 and seg[:, 2].max() <= p.num_frames
        for _, start, end, code in p.emotion:
            inside = (seg[:, 1] >= start) & (seg[:, 2] <= end)
            mgs[code // 10] += int(inside.sum())
            frames[code // 10] += int(end - start)
            classes[code // 10] += np.bincount(seg[inside, 0] - 1, minlength=17)
    rate_relaxed, rate_stressed = (mgs[s] / frames[s] for s in (0, 1))
    assert rate_stressed > 1.2 * rate_relaxed
    share = classes[1] / np.maximum(classes[0] + classes[1], 1)
    assert share[12] > share[15] + 0.2  # leg bounce leans stressed, stretching relaxed


def test_every_class_moves_its_own_body_part():
    parts = {
        0: {body.HEAD}, 1: {body.HEAD}, 2: {body.LS, body.RS},
        5: {body.RW, body.RH}, 6: {body.LW, body.LH},
        12: {body.RK}, 13: {body.RA, body.RF}, 14: {body.LF},
    }  # fmt: skip
    signatures = []
    for c in range(17):
        static, osc, freq = body.mg_motion(c, body.TEMPLATE)
        motion = np.linalg.norm(static, axis=1) + np.linalg.norm(osc, axis=1)
        assert motion.max() > 0.005, f"class {c} barely moves"
        assert (freq > 0) == bool(np.abs(osc).sum() > 0)
        if c in parts:
            moved = set(np.flatnonzero(motion >= motion.max() - 1e-9).tolist())
            assert moved & parts[c], f"class {c} moves {moved}"
        signatures.append(np.concatenate([static.ravel(), osc.ravel(), [freq]]))
    distances = np.array([[np.linalg.norm(a - b) for b in signatures] for a in signatures])
    assert (distances + np.eye(17) > 1e-3).all(), "two classes share a motion"


def test_kinematic_tree_is_the_kinect_tree():
    """24 bones, one root (spine base), every joint reaches it."""
    assert len(KINECT_PARENT_EDGES) == 24
    assert body.SUBTREE[body.SB].all()
    assert body.SUBTREE[body.LW, [body.LH, body.LHT, body.LT]].all()
    assert not body.SUBTREE[body.LW, body.RH]


# --- Writing: layout, marker, read-back ------------------------------------------


def test_tiny_layout_and_marker(tiny):
    samples = raw.list_samples(tiny)
    assert [raw.subject_of(p) for p in samples] == list(range(1, 41))
    for path in samples:
        assert all(f.is_file() for f in raw.sample_paths(path).values())
    marker = json.loads((tiny / synthetic.MARKER_NAME).read_text())
    assert marker["synthetic"] is True and marker["scale"] == "tiny" and marker["seed"] == 0
    assert synthetic.read_marker(tiny) == marker
    frames = [raw.read_data_info(raw.sample_paths(p)["data"]).num_frames for p in samples]
    assert sum(frames) == marker["total_frames"] == 40_000
    assert min(frames) >= 600 and max(frames) <= 1500
    for split in ("train", "test"):
        assert (tiny / f"{split}_data.npy").is_file() and (tiny / f"{split}_label.pkl").is_file()


def test_reader_reads_back_what_was_written(tiny):
    plans = synthetic.make_plan(synthetic.SCALES["tiny"], seed=0)
    for subject in (1, 36):
        plan = plans[subject - 1]
        sample = raw.read_sample(tiny / plan.sample_id, require_emotion=True)
        np.testing.assert_array_equal(sample.segments, plan.segments)
        np.testing.assert_array_equal(sample.emotion, plan.emotion)
        assert sample.num_frames == sample.declared_num_frames == plan.num_frames
        assert (sample.fps, sample.max_depth) == (synthetic.FPS, plan.max_depth)
        expected = synthetic.synthesize_skeleton(plan, seed=0)
        np.testing.assert_allclose(sample.skeleton[..., :7], expected[..., :7], atol=5.1e-5)
        np.testing.assert_allclose(sample.skeleton[..., 7:], expected[..., 7:], atol=0.051)


def test_miga_files_follow_the_authors_preprocessing(tiny):
    data, names, labels = miga.read_miga_split(tiny, "test")
    plans = synthetic.make_plan(synthetic.SCALES["tiny"], seed=0)
    test_plans = [p for p in plans if p.subject >= 36]
    assert data.shape == (sum(len(p.segments) for p in test_plans), 3, 60, 25, 1)
    first = test_plans[0]
    assert names[0] == f"{first.sample_id}0" and labels[0] == first.segments[0, 0] - 1
    sample = raw.read_sample(tiny / first.sample_id)
    _, start, end = first.segments[0]
    start = max(start, end - 59)
    clip = sample.world_xyz[start:end].transpose(2, 0, 1)
    np.testing.assert_allclose(data[0, :, : end - start, :, 0], clip, atol=5.1e-5)
    assert not data[0, :, end - start :].any()


def test_motion_looks_like_a_seated_kinect_body(tiny):
    sample = raw.read_sample(tiny / "Sample0007")
    xyz = sample.world_xyz[~sample.zero_frames]
    assert sample.zero_frames.sum() < 0.05 * sample.num_frames
    assert xyz[..., 2].min() > 1.8 and xyz[..., 2].max() < 3.5  # metres in front of the sensor
    assert (xyz[:, body.HEAD, 1] > xyz[:, body.SB, 1] + 0.5).all()
    assert (xyz[:, body.RS, 0] > xyz[:, body.LS, 0]).all()  # person faces the sensor
    bones = {
        "upper arm": (body.LS, body.LE, 0.2, 0.35),
        "thigh": (body.RHIP, body.RK, 0.35, 0.55),
        "shin": (body.LK, body.LA, 0.35, 0.55),
    }
    for name, (a, b, lo, hi) in bones.items():
        length = np.linalg.norm(xyz[:, a] - xyz[:, b], axis=-1).mean()
        assert lo < length < hi, f"{name} {length:.3f} m"
    quats = sample.skeleton[~sample.zero_frames][..., raw.ORIENTATION_WXYZ]
    norms = np.linalg.norm(quats, axis=-1)
    leaves = list(body.LEAVES)
    assert np.allclose(np.delete(norms, leaves, axis=1), 1.0, atol=1e-3)
    assert not quats[:, leaves].any()
    pixels = sample.skeleton[~sample.zero_frames][..., raw.PIXEL_XY]
    assert (pixels >= 0).all() and (pixels[..., 0] < 512).all() and (pixels[..., 1] < 424).all()
    # Breathing and sway: the head moves, but only by centimetres outside MGs.
    head = xyz[:, body.HEAD]
    assert 0.002 < head.std(axis=0).max() < 0.1


def test_tiny_has_lost_tracking_and_every_class_in_train(tiny):
    zero, train_labels = 0, []
    for path in raw.list_samples(tiny):
        sample = raw.read_sample(path)
        zero += int(sample.zero_frames.sum())
        if sample.subject <= 35:
            train_labels += (sample.segments[:, 0] - 1).tolist()
    assert zero > 0
    assert set(train_labels) == set(range(17))


# --- Determinism and the CLI -------------------------------------------------


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_deterministic_by_seed_and_subset_equals_full_run(tmp_path, tiny):
    kwargs = {"scale": "tiny", "subjects": [1, 36], "miga": False}
    a = tree_bytes(synthetic.generate(tmp_path / "a", seed=0, **kwargs))
    b = tree_bytes(synthetic.generate(tmp_path / "b", seed=0, **kwargs))
    c = tree_bytes(synthetic.generate(tmp_path / "c", seed=1, **kwargs))
    assert a == b
    skeleton = "Sample0036/Sample0036_skeleton.csv"
    assert a[skeleton] != c[skeleton]
    assert a[skeleton] == (tiny / skeleton).read_bytes()  # same subject, whole-dataset run


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--out", str(out), "--scale", "tiny", "--subjects", "1-2,36", "--quiet"]
    assert synthetic.main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] == str(out) and summary["total_clips"] > 0
    assert [p.name for p in raw.list_samples(out)] == ["Sample0001", "Sample0002", "Sample0036"]
    assert synthetic.main(args) == 2  # not empty, no --overwrite
    assert "not empty" in capsys.readouterr().err
    assert synthetic.main([*args, "--overwrite", "--frames-per-subject", "300"]) == 0
    with pytest.raises(SystemExit):
        synthetic.main(["--out", str(out), "--subjects", "one"])


def test_too_short_recordings_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot hold"):
        synthetic.generate(tmp_path, frames_per_subject=5, clips_per_subject=4, subjects=[1])
