"""Emotional-state recognition: folds, MG features, the classifier, windows, the command."""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
import types

import numpy as np
import pytest

from experiments.configs import emotion_authors90, emotion_mg_gt, emotion_mg_recognized
from smg_jax.data import sources
from smg_jax.emotion import (
    end_to_end,
    features,
    logreg,
    mg_method,
    protocols,
    report,
    run,
    scores,
)
from smg_jax.emotion.data import EmotionError, Instance
from tfds_smg import synthetic

# SMG's shape: 31 participants with four instances, 9 with two.
SMG_COUNTS = {s: (2 if s % 4 == 0 and s <= 36 else 4) for s in range(1, 41)}


# ---------------------------------------------------------------------------
# Protocols.
# ---------------------------------------------------------------------------


def test_subject_folds_are_disjoint_cover_everyone_and_balance_instances():
    folds = protocols.subject_folds(SMG_COUNTS, num_folds=5, seed=0)
    assert len(folds) == 5
    protocols.check_folds(folds)
    tested = [s for fold in folds for s in fold.test_subjects]
    assert sorted(tested) == list(range(1, 41))  # each participant tested exactly once
    for fold in folds:
        assert not set(fold.train_subjects) & set(fold.test_subjects)
        assert set(fold.train_subjects) | set(fold.test_subjects) == set(SMG_COUNTS)
    sizes = [sum(SMG_COUNTS[s] for s in fold.test_subjects) for fold in folds]
    assert sum(sizes) == sum(SMG_COUNTS.values())
    assert max(sizes) - min(sizes) <= max(SMG_COUNTS.values())


def test_subject_folds_are_deterministic():
    first = protocols.subject_folds(SMG_COUNTS, 5, seed=0)
    shuffled = dict(reversed(list(SMG_COUNTS.items())))  # input order must not matter
    assert protocols.subject_folds(shuffled, 5, seed=0) == first
    assert protocols.subject_folds(SMG_COUNTS, 5, seed=1) != first  # the seed does
    # Pinned: a change to the fold rule must be deliberate (results are compared across runs).
    assert first[0].test_subjects == (1, 2, 5, 13, 26, 29, 32, 34)


def test_cross_subject_and_config_errors():
    (fold,) = protocols.make_folds(
        {"name": "cross_subject", "train_subjects": "1-35"}, list(range(1, 41))
    )
    assert fold.train_subjects == tuple(range(1, 36))
    assert fold.test_subjects == (36, 37, 38, 39, 40)
    assert protocols.parse_subjects("3, 1-2,40") == (1, 2, 3, 40)
    with pytest.raises(EmotionError, match="outside participants"):
        protocols.parse_subjects("0-3")
    with pytest.raises(EmotionError, match="no test participant"):
        protocols.cross_subject(range(1, 36), range(1, 36))
    with pytest.raises(EmotionError, match="only 3 participants"):
        protocols.subject_folds({1: 2, 2: 2, 3: 4}, num_folds=5)
    with pytest.raises(EmotionError, match="choose from"):
        protocols.make_folds({"name": "loso"}, [1, 2])
    bad = [protocols.Fold(0, (1, 2), (3,)), protocols.Fold(1, (1, 3), (2, 3))]
    with pytest.raises(EmotionError, match="train and test"):
        protocols.check_folds(bad)


# ---------------------------------------------------------------------------
# MG features.
# ---------------------------------------------------------------------------


def test_mg_features_of_a_hand_made_instance():
    # One minute at 30 fps: two 1-s MGs of class 4, one 2-s MG of class 7.
    segments = [(4, 0, 30), (7, 100, 160), (4, 600, 630)]
    kinds = ("count", "rate", "mean_duration")
    x = features.mg_features(segments, 1800, fps=30.0, kinds=kinds)
    names = features.feature_names(kinds)
    assert x.shape == (len(names),) == (2 * 18 + 1,)
    value = dict(zip(names, x, strict=True))
    assert value["count mg05"] == 2 and value["count mg08"] == 1 and value["count all"] == 3
    assert sum(v for k, v in value.items() if k.startswith("count mg")) == 3
    assert value["rate mg05"] == pytest.approx(2.0)  # per minute
    assert value["mean duration (s)"] == pytest.approx(4 / 3)
    # Twice as long, same MGs: the counts stay, the rates halve.
    y = dict(zip(names, features.mg_features(segments, 3600, kinds=kinds), strict=True))
    assert y["count mg05"] == 2 and y["rate mg05"] == pytest.approx(1.0)
    assert y["rate all"] == pytest.approx(1.5)
    # No MG at all: zeros, not NaN.
    assert not features.mg_features([], 900, kinds=kinds).any()
    with pytest.raises(EmotionError, match="Sample0036_01: MG row 1"):
        features.mg_features([(1, 0, 5), (2, 10, 5000)], 900, where="Sample0036_01")


def test_clip_to_instance_follows_the_builders_rule():
    recording = [(1, 0, 50), (2, 90, 130), (3, 150, 180), (4, 290, 320), (5, 300, 400)]
    # Instance [100, 300): (2) straddles its start, (4) its end, (5) starts at its end (out).
    assert features.clip_to_instance(recording, 100, 300) == [
        (2, 0, 30),
        (3, 50, 80),
        (4, 190, 200),
    ]


# ---------------------------------------------------------------------------
# Metrics and the classifier.
# ---------------------------------------------------------------------------


def test_binary_scores_and_aggregate():
    labels = np.array([0, 0, 0, 0, 1, 1])
    predictions = np.array([0, 0, 0, 1, 1, 0])
    got = scores.binary_scores(predictions, labels)
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    f1_relaxed, f1_stressed = 2 * 3 / (4 + 4), 2 * 1 / (2 + 2)
    assert got["macro_f1"] == pytest.approx((f1_relaxed + f1_stressed) / 2)
    assert got["confusion_matrix"] == [[3, 1], [1, 1]]
    summary = scores.aggregate([{"accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.4}] * 1)
    assert np.isnan(summary["accuracy"]["std"])  # one fold: no spread
    two = scores.aggregate(
        [
            {"accuracy": 0.6, "balanced_accuracy": 0.6, "macro_f1": 0.6},
            {"accuracy": 0.8, "balanced_accuracy": 0.8, "macro_f1": 0.8},
        ]
    )
    assert two["accuracy"]["mean"] == pytest.approx(0.7)
    assert two["accuracy"]["std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert scores.binomial_p_value(10, 10) == pytest.approx(0.5**10)
    assert scores.binomial_p_value(0, 10) == pytest.approx(1.0)


def test_logistic_regression_learns_the_informative_feature():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)) * np.array([1.0, 10.0, 0.1, 1.0])
    x[:, 3] = 7.0  # constant: must not break the standardisation
    y = (x[:, 1] / 10 - x[:, 2] / 0.1 + 0.3 * rng.normal(size=200) > 0).astype(int)
    model = logreg.fit_logistic(x, y, c=1.0)
    assert model.grad_norm < 1e-4
    assert model.coef[1] > 1 and model.coef[2] < -1 and abs(model.coef[3]) < 1e-6
    assert np.mean((model.decision_function(x) > 0) == y) > 0.9
    with pytest.raises(EmotionError, match="all relaxed"):
        logreg.fit_logistic(x, np.zeros(200))


def test_logistic_regression_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model", reason="scikit-learn is optional")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 6))
    y = (x[:, 0] + x[:, 1] + rng.normal(size=120) > 0).astype(int)
    ours = logreg.fit_logistic(x, y, c=0.5)
    theirs = sklearn.LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000)
    theirs.fit((x - ours.mean) / ours.scale, y)
    np.testing.assert_allclose(ours.coef, theirs.coef_[0], atol=1e-4)
    assert ours.intercept == pytest.approx(theirs.intercept_[0], abs=1e-4)


def test_class_weights_sum_count_and_rate_per_class():
    kinds = ("count", "rate", "mean_duration")
    names = [f"c{i}" for i in range(17)]
    dim = len(features.feature_names(kinds, names))
    coefs = np.zeros((2, dim))
    coefs[:, 3] = [0.5, 0.7]  # count c3
    coefs[:, 18 + 3] = [0.5, 0.3]  # rate c3
    coefs[:, 18 + 5] = [-0.2, -0.2]  # rate c5
    rows = mg_method.class_weights(coefs, kinds, names)
    assert rows[0]["class"] == "c3" and rows[0]["mean"] == pytest.approx(1.0)
    assert rows[0]["leans"] == "stressed"
    assert rows[1]["class"] == "c5" and rows[1]["leans"] == "relaxed"
    assert {r["class"] for r in rows} == {*names, "all", "mean duration"}


# ---------------------------------------------------------------------------
# End-to-end windows.
# ---------------------------------------------------------------------------


def _instance(num_frames: int, state: int = 1, subject: int = 36) -> Instance:
    joints = np.random.default_rng(num_frames).normal(size=(num_frames, 25, 3)).astype(np.float32)
    return Instance(
        key=f"Sample{subject:04d}_00",
        subject=subject,
        sample_id=f"Sample{subject:04d}",
        index=0,
        start=1000,
        end=1000 + num_frames,
        state=state,
        state_code=10 * state + 1,
        joints=joints,
        segments=[],
    )


def test_windows_cover_the_instance():
    assert end_to_end.window_starts(200, 90, 45, "cover").tolist() == [0, 45, 90, 110]
    assert end_to_end.window_starts(180, 90, 45, "cover").tolist() == [0, 45, 90]
    assert end_to_end.window_starts(60, 90, 45, "cover").tolist() == [0]
    assert end_to_end.window_starts(500, 90, 45, "first").tolist() == [0]
    source = end_to_end.WindowSource([_instance(200), _instance(60, state=0)], 90, 45, "cover")
    assert len(source) == 5 and source.instance_of.tolist() == [0, 0, 0, 0, 1]
    last = source[3]
    assert last["joints"].shape == (90, 25, 3) and (last["start"], last["end"]) == (1110, 1200)
    assert source[4]["joints"].shape == (60, 25, 3) and source[4]["label"] == 0
    logits = np.array([[0.0, 1.0], [0.0, 3.0], [1.0, 1.0], [1.0, 3.0], [5.0, 0.0]])
    mean = end_to_end.aggregate_windows(logits, source.instance_of, 2)
    np.testing.assert_allclose(mean, [[0.5, 2.0], [5.0, 0.0]])


def test_the_authors90_preset_is_their_first_90_frames_unchanged():
    """``smg_gendata_emotion.py``: rows [start, start + min(T, 90)), zero-padded to 90."""
    config = emotion_authors90.get_config()
    preset = end_to_end.make_preset(config)
    for length in (250, 40):
        inst = _instance(length)
        window = end_to_end.WindowSource([inst], 90, 45, "first")[0]["joints"]
        expected = np.zeros((90, 25, 3), np.float32)
        expected[: min(length, 90)] = inst.joints[:90]
        x = preset.apply(window)
        assert x.dtype == np.float32 and x.shape == (90, 25, 3)
        np.testing.assert_array_equal(x, expected)  # bit for bit
    config.data.preset = "authors"  # the classification preset would cut the window again
    with pytest.raises(EmotionError, match="would cut the window"):
        end_to_end.make_preset(config)


# ---------------------------------------------------------------------------
# The command end to end on a tiny synthetic SMG.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smg_tiny(tmp_path_factory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("smg_emotion")
    raw = synthetic.generate(root / "raw", scale="tiny", seed=0)
    return {"raw": pathlib.Path(raw), "tfds": root / "tfds", "root": root}


def _point_at(config, smg_tiny):
    config.data.manual_dir = str(smg_tiny["raw"])
    config.data.data_dir = str(smg_tiny["tfds"])
    config.data.synthetic_scale = None
    return config


@pytest.fixture(scope="module")
def mg_gt_run(smg_tiny):
    workdir = smg_tiny["root"] / "mg_gt_cv"
    config = _point_at(emotion_mg_gt.get_config("tiny"), smg_tiny)
    return workdir, run.run(config, workdir), config


@pytest.fixture(scope="module")
def mg_gt_cross_subject(smg_tiny):
    config = _point_at(emotion_mg_gt.get_config("tiny"), smg_tiny)
    config.protocol.name = "cross_subject"
    workdir = smg_tiny["root"] / "mg_gt_cs"
    return workdir, run.run(config, workdir)


def test_mg_features_from_ground_truth_beat_chance(mg_gt_run):
    workdir, results, _ = mg_gt_run
    assert results["synthetic"] and "SYNTHETIC" in results["data"]
    assert len(results["folds"]) == 5 and results["pooled"]["num_instances"] == 142
    # The generator gives stressed instances more MGs and another class mix.
    assert results["pooled"]["accuracy"] > 0.6
    assert results["pooled"]["p_value_vs_chance"] < 0.01
    assert results["summary"]["balanced_accuracy"]["mean"] > 0.6
    assert results["majority_baseline"]["pooled"]["balanced_accuracy"] == pytest.approx(0.5)
    text = (workdir / "results.md").read_text()
    assert "SYNTHETIC data: these are not SMG results" in text
    assert "| **mean ± std** |" in text and "Which MG classes weigh most" in text
    for name in ("confusion_matrix.png", "class_weights.png", "folds.json", "config.json"):
        assert (workdir / name).stat().st_size > 0
    lines = (workdir / "predictions.csv").read_text().splitlines()
    assert len(lines) == 1 + 142
    # More MGs in all lean stressed in the synthetic SMG: the classifier must have found it.
    weights = {row["class"]: row["mean"] for row in results["class_weights"]}
    assert weights["all"] > 0


def test_rerun_resumes_from_the_finished_folds(mg_gt_run):
    workdir, results, config = mg_gt_run
    stamps = {p: p.stat().st_mtime_ns for p in (workdir / "folds").glob("*/outcome.json")}
    again = run.run(config, workdir)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # read back, not recomputed
    assert again["pooled"] == results["pooled"]
    changed = config.copy_and_resolve_references()
    changed.mg.c = 0.01
    with pytest.raises(EmotionError, match="another config"):
        run.run(changed, workdir)


def test_predictions_dir_with_the_true_mgs_reproduces_the_ground_truth_method(
    smg_tiny, mg_gt_cross_subject
):
    """The adapter for the online command's CSV files, checked against the ground truth.

    The raw ``_finelabels.csv`` files are in the online command's output layout
    (``label 1-17,start,end`` per recording), so a folder of them is a
    "recognizer" that finds every MG exactly.
    """
    folder = smg_tiny["root"] / "perfect_predictions"
    folder.mkdir(exist_ok=True)
    for labels in smg_tiny["raw"].glob("Sample*/Sample*_finelabels.csv"):
        shutil.copy(labels, folder / f"{labels.parent.name}.csv")
    _, gt = mg_gt_cross_subject
    config = _point_at(emotion_mg_gt.get_config("tiny"), smg_tiny)
    config.protocol.name = "cross_subject"
    config.mg.source = "predictions_dir"
    config.mg.predictions_dir = str(folder)
    config.mg.train_on = "ground_truth"
    from_csv = run.run(config, smg_tiny["root"] / "mg_csv_cs")
    assert from_csv["pooled"] == gt["pooled"]
    np.testing.assert_allclose(
        from_csv["coefficients_per_fold"], gt["coefficients_per_fold"], atol=1e-6
    )
    # The online command's recognizer saw participants 1-35: CV would test on them.
    config.protocol.name = "cv"
    with pytest.raises(EmotionError, match="on whom the recognizer"):
        run.run(config, smg_tiny["root"] / "mg_csv_cv")
    (folder / "Sample0037.csv").unlink()
    config.protocol.name = "cross_subject"
    with pytest.raises(EmotionError, match=r"Sample0037\.csv is missing"):
        run.run(config, smg_tiny["root"] / "mg_csv_missing")


def _finelabels(raw: pathlib.Path) -> dict[str, types.SimpleNamespace]:
    """Stand-ins for ``smg_jax.online.Recording``: name, subject, ground-truth MGs."""
    out = {}
    for path in sorted(raw.glob("Sample*/Sample*_finelabels.csv")):
        rows = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
        name = path.parent.name
        segments = [(int(a) - 1, int(b), int(c)) for a, b, c in rows]
        out[name] = types.SimpleNamespace(name=name, subject=int(name[-4:]), segments=segments)
    return out


def test_recognized_mgs_are_cross_fitted(smg_tiny, tmp_path):
    """Out-of-fold: no recognizer ever decodes a participant it was trained on, each trains once.

    Training the real recognizer takes minutes; this replaces it by one that
    "finds" the annotated MGs and records whom it was trained on. The real
    one runs in the command (docs/emotion.md has its synthetic figures).
    """
    recordings = _finelabels(smg_tiny["raw"])
    trained_on: list[frozenset[int]] = []
    decoded: list[tuple[frozenset[int], int]] = []  # (trained on, decoded participant)

    def fake_train(training, folder):
        subjects = frozenset(r.subject for r in training)
        trained_on.append(subjects)

        def decode(recording):
            decoded.append((subjects, recording.subject))
            return recording.segments

        return decode

    config = _point_at(emotion_mg_recognized.get_config("tiny"), smg_tiny)
    config.mg.inner_folds = 2
    data = run.data_lib.load(config.data)
    source = mg_method.make_source(config, data, tmp_path, lambda: recordings, fake_train)
    folds = protocols.make_folds(config.protocol, [i.subject for i in data.instances])
    result = mg_method.run_fold(
        config,
        data,
        folds[0],
        run._positions(data, folds[0].train_subjects),
        run._positions(data, folds[0].test_subjects),
        source,
    )
    # 1 recognizer for the test side + 2 inner ones for the training side, all blind to
    # the participants they decoded (fake_train's decode asserts it).
    assert len(trained_on) == 3 and len(set(trained_on)) == 3
    assert decoded and all(subject not in seen for seen, subject in decoded)
    assert frozenset(folds[0].train_subjects) in trained_on
    assert all(s <= frozenset(folds[0].train_subjects) for s in trained_on)
    truth = np.mean([len(data.instances[i].segments) for i in run._positions(data, (36,))])
    assert result["mean_mgs_test"] > 0 and truth > 0
    # Decoded recordings are cached as CSV files: a second pass trains nothing.
    again = mg_method.make_source(config, data, tmp_path, lambda: recordings, fake_train)
    mg_method.run_fold(
        config,
        data,
        folds[0],
        run._positions(data, folds[0].train_subjects),
        run._positions(data, folds[0].test_subjects),
        again,
    )
    assert len(trained_on) == 3
    csvs = list((tmp_path / "recognizers" / "authors").glob("train_*/predictions/authors/*.csv"))
    assert len(csvs) == len({i.sample_id for i in data.instances})
    # Without a recognizer to train, the source says which callable to pass.
    with pytest.raises(EmotionError, match="pass train_recognizer"):
        mg_method.make_source(config, data, tmp_path, lambda: recordings)
    # A recognizer asked to decode its own training participants refuses (it would leak).
    with pytest.raises(EmotionError, match="would leak"):
        source.recognizer.segments(
            folds[0].train_subjects, [f"Sample{folds[0].train_subjects[0]:04d}"]
        )


def test_end_to_end_command_trains_resumes_and_scores(smg_tiny, caplog):
    workdir = smg_tiny["root"] / "authors90_cs"
    config = _point_at(emotion_authors90.get_config("tiny"), smg_tiny)
    config.protocol.name = "cross_subject"
    config.window.length = config.data.num_frames = 16  # the identity preset, smaller
    config.model.channels, config.model.strides = (8,), (1,)  # one block: compiles in half
    config.train.batch_size = 8
    config.eval.batch_size = 20
    config.train.max_steps = 2
    config.train.checkpoint_every_steps = 1
    first = run.run(config, workdir)
    assert first["training"][0]["steps"] == 2
    # Asking for more steps resumes the fold from its step-2 checkpoint.
    config.train.max_steps = 3
    with caplog.at_level(logging.INFO, logger="smg_jax.emotion.end_to_end"):
        resumed = run.run(config, workdir)
    assert "fold 0: resumed at step 2" in caplog.text
    assert resumed["training"][0]["steps"] == 3
    outcome = json.loads((workdir / "folds" / "fold0" / "outcome.json").read_text())
    assert len(outcome["logits"]) == 20 and outcome["test_keys"][0].startswith("Sample0036")
    assert resumed["method"].startswith("end-to-end stgcn, first 16 frames")
    assert (workdir / "confusion_matrix.png").is_file()


def test_collect_compares_runs(mg_gt_run, mg_gt_cross_subject, tmp_path):
    text, data = report.collect([mg_gt_run[0], mg_gt_cross_subject[0]])
    assert "SYNTHETIC data" in text and "majority class (chance)" in text
    assert len(data["runs"]) == 2  # two protocols
    _, twice = report.collect([mg_gt_run[0], mg_gt_run[0]])
    (rows,) = twice["runs"].values()
    assert len(rows) == 3  # the same method from two runs is not merged, + the baseline
    with pytest.raises(EmotionError, match="missing"):
        report.collect([tmp_path])


def test_open_smg_leaves_out_missing_splits_on_request(smg_tiny):
    config = _point_at(emotion_mg_gt.get_config("tiny"), smg_tiny)
    opened = sources.open_smg(config.data, "emotion", ("validation", "test"), missing_ok=True)
    assert opened.split_names == ["test"] and len(opened.sources) == 1
    assert opened.synthetic and opened.description == "SYNTHETIC SMG (tiny scale)"
    test = opened.sources[0]
    assert {int(test[i]["subject"]) for i in range(len(test))} <= set(range(36, 41))
    with pytest.raises(ValueError, match="validation"):
        sources.open_smg(config.data, "emotion", ("validation",))
