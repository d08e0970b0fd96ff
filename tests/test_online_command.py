"""The online command end to end on a tiny synthetic SMG, resume rules, networks, callbacks."""

from __future__ import annotations

import json
import pathlib

import jax
import ml_collections
import numpy as np
import pytest

from experiments.configs import online_authors, online_tiny
from smg_jax.data.recordings import read_csv
from smg_jax.online import emission, framework, loop, training
from smg_jax.online.errors import OnlineError
from smg_jax.online.metric import score_segments
from smg_jax.train import state as state_lib
from tfds_smg import synthetic

METHODS = ("authors", "detector_threshold", "detector_hmm")


@pytest.fixture(scope="module")
def smg_tiny(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("smg")
    raw = synthetic.generate(root / "raw", scale="tiny", seed=0)
    return {"manual_dir": str(raw), "data_dir": str(root / "tfds")}


def tiny_config(smg_tiny):
    config = online_tiny.get_config()
    config.data.manual_dir = smg_tiny["manual_dir"]
    config.data.data_dir = smg_tiny["data_dir"]
    config.data.synthetic_scale = None  # already written by the fixture
    return config


@pytest.fixture(scope="module")
def finished_run(smg_tiny, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("online")
    results = loop.run(tiny_config(smg_tiny), workdir)
    return workdir, results


def test_command_writes_tables_csv_timelines_and_checkpoints(finished_run):
    workdir, results = finished_run
    assert set(results["methods"]) == set(METHODS)
    assert results["synthetic"] is True
    names = results["test_recordings"]
    assert names == [f"Sample00{n}" for n in range(36, 41)]
    text = (workdir / "results.md").read_text()
    assert "SYNTHETIC" in text and "(authors' rule)" in text and "(one-to-one)" in text
    assert "authors' HMM + mlp (faithful)" in text
    saved = json.loads((workdir / "results.json").read_text())
    for method in METHODS:
        report = saved["methods"][method]["report"]
        assert set(report["pooled"]) == {"one_to_one", "authors"}
        assert set(report["per_recording"]) == set(names)
        predicted = 0
        for name in names:
            path = workdir / "predictions" / method / f"{name}.csv"
            for line in filter(None, path.read_text().splitlines()):
                label, start, end = (int(v) for v in line.split(","))
                assert 1 <= label <= 17 and 0 <= start <= end
            predicted += len(read_csv(path))
        assert predicted == report["pooled"]["one_to_one"]["predicted"]
    for name in names:
        png = workdir / "timelines" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for part in ("authors", "detector"):
        assert any((workdir / part / "checkpoints").iterdir())
        assert any((workdir / part / "tensorboard").iterdir())
        assert (workdir / part / "hmm_counts.npz").exists()
    assert (workdir / "authors" / "standardizer.npz").exists()
    speed = results["methods"]["authors"]["speed"]
    assert speed["decoded_rows"] > 0 and speed["viterbi_rows_per_second"] > 0


def test_csv_files_rescore_to_the_report(finished_run, smg_tiny):
    workdir, results = finished_run
    from smg_jax.online import data as data_lib

    data = data_lib.load(tiny_config(smg_tiny).data)
    truth = {r.name: r.segments for r in data.test}
    for method in METHODS:
        predictions = {n: read_csv(workdir / "predictions" / method / f"{n}.csv") for n in truth}
        for rule in ("one_to_one", "authors"):
            expected = results["methods"][method]["report"]["pooled"][rule]
            assert score_segments(truth, predictions, matching=rule) == expected


def test_rerun_resumes_without_retraining(finished_run, smg_tiny):
    workdir, results = finished_run
    steps_before = sorted(p.name for p in (workdir / "authors" / "checkpoints").iterdir())
    history = (workdir / "authors" / "history.json").read_text()
    config = tiny_config(smg_tiny)
    config.recognizers = ("authors",)  # decode-only fields may change on resume
    again = loop.run(config, workdir)
    assert sorted(p.name for p in (workdir / "authors" / "checkpoints").iterdir()) == steps_before
    assert (workdir / "authors" / "history.json").read_text() == history
    first, second = results["methods"]["authors"]["report"], again["methods"]["authors"]["report"]
    assert first["pooled"] == second["pooled"]


def test_changing_a_training_field_is_refused(finished_run, smg_tiny):
    workdir, _ = finished_run
    config = tiny_config(smg_tiny)
    config.authors.mlp.hidden = (32, 32)
    with pytest.raises(OnlineError, match=r"fields differing: \['authors.mlp.hidden'\]"):
        loop.run(config, workdir)


def test_bad_configs_fail_before_reading_data(tmp_path):
    config = online_tiny.get_config()
    config.data.manual_dir = str(tmp_path / "nothing")
    config.data.synthetic_scale = None
    config.recognizers = ("authors", "sliding")
    with pytest.raises(OnlineError, match="choose one or more of"):
        loop.run(config, tmp_path / "a")
    config.recognizers = ("authors",)
    config.authors.hmm.segment_rule = "runs"
    with pytest.raises(OnlineError, match="segment_rule='runs'"):
        loop.run(config, tmp_path / "b")
    config = online_tiny.get_config()
    config.authors.network = "lstm"
    with pytest.raises(OnlineError, match=r"authors\.network='lstm'"):
        loop.run(config, tmp_path / "c")
    config = online_tiny.get_config()
    config.detector.model.name = "resnet"
    with pytest.raises(OnlineError, match=r"detector\.model\.name='resnet'"):
        loop.run(config, tmp_path / "d")
    with pytest.raises(ValueError, match="Unknown config argument"):
        online_authors.get_config("fast")
    corrected = online_authors.get_config("corrected,att_bigru")
    assert corrected.authors.hmm.frames == "zero_based" and corrected.authors.network == "att_bigru"


@pytest.mark.slow
def test_attention_bigru_on_frame_windows_runs_end_to_end(smg_tiny, tmp_path):
    config = online_authors.get_config("att_bigru,corrected")
    tiny = tiny_config(smg_tiny)
    config.data = tiny.data
    config.eval = tiny.eval
    config.eval.timelines = False
    config.authors.att_bigru.update({"units": 4, "dense": 8})
    config.authors.att_bigru_input = "frame_windows"
    config.authors.hmm.rest_samples = 300
    config.authors.train.update({"max_steps": 3, "batch_size": 16, "progress_bar": False})
    config.authors.decode_batch_size = 256
    results = loop.run(config, tmp_path)
    method = results["methods"]["authors"]
    assert method["name"].startswith("authors' HMM + att_bigru (corrected: frames=zero_based")
    assert method["speed"]["decoded_rows"] == sum(
        n - 1 for n in _test_lengths(results, smg_tiny)
    )  # zero_based decodes every frame's row


def _test_lengths(results, smg_tiny):
    from smg_jax.online import data as data_lib

    data = data_lib.load(tiny_config(smg_tiny).data)
    return [r.num_frames for r in data.test]


def test_network_inputs_and_the_keras_loss():
    table = np.arange(4 * 10, dtype=np.float32).reshape(4, 10)
    examples = np.array([[0, 1, 2], [1, 2, 3]])
    np.testing.assert_array_equal(framework.model_input(table, examples, "flat", 1), table[[1, 2]])
    chunks = framework.model_input(table, examples, "row_chunks", 5)
    np.testing.assert_array_equal(chunks, table[[1, 2]].reshape(2, 5, 2))
    windows = framework.model_input(table, examples, "frame_windows", 3)
    np.testing.assert_array_equal(windows, table[examples])
    with pytest.raises(OnlineError, match="not divisible"):
        framework.model_input(table, examples, "row_chunks", 3)
    network = emission.create("mlp", num_states=86, hidden=(16,))
    variables = state_lib.init_variables(network, jax.random.PRNGKey(0), (3, 2775))
    assert network.apply(variables, np.zeros((3, 2775), np.float32)).shape == (3, 86)
    with pytest.raises(OnlineError, match="Unknown field"):
        emission.create("mlp", num_states=86, units=3)
    # Keras divides sigmoid outputs by their sum, then clips to [1e-7, 1 - 1e-7].
    logits = np.array([[2.0, -1.0, 0.5], [30.0, -30.0, -30.0]], np.float32)
    labels = np.array([2, 0])
    y = 1 / (1 + np.exp(-logits.astype(np.float64)))
    y = np.clip(y / y.sum(1, keepdims=True), 1e-7, 1 - 1e-7)
    expected = -np.log(y[np.arange(2), labels])
    loss = emission.keras_categorical_crossentropy("sigmoid")(logits, labels)
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-5, atol=1e-7)
    softmax = emission.keras_categorical_crossentropy("softmax")(logits, labels)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p = np.clip(p / p.sum(1, keepdims=True), 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(
        np.asarray(softmax), -np.log(p[np.arange(2), labels]), rtol=1e-5, atol=1e-7
    )


# ---------------------------------------------------------------------------
# The training loop's resume and the Keras callbacks.
# ---------------------------------------------------------------------------


def _toy_fit(workdir: pathlib.Path, max_steps: int, every: int = 0):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    config = online_tiny.get_config().authors
    config.mlp.hidden = (8,)
    network = emission.create("mlp", num_states=2, hidden=(8,))
    loss_fn = emission.keras_categorical_crossentropy("softmax")
    tx, schedule = training.make_optimizer(config, steps_per_epoch=4, epochs=3)
    state = state_lib.create_train_state(
        state_lib.init_variables(network, jax.random.PRNGKey(0), (1, 12)), tx, jax.random.PRNGKey(1)
    )

    def batch_fn(step):
        picks = training.epoch_batch_indices(64, 16, 0, step, 4)
        return {"x": x[picks], "label": y[picks], "mask": np.ones(16, bool)}

    settings = training.FitSettings(
        epochs=3,
        steps_per_epoch=4,
        base_lr=1e-3,
        progress_bar=False,
        tensorboard=False,
        max_steps=max_steps,
        checkpoint_every_steps=every,
    )
    return training.fit(
        name="toy",
        workdir=workdir,
        model=network,
        tx=tx,
        schedule=schedule,
        loss_fn=loss_fn,
        state=state,
        batch_fn=batch_fn,
        settings=settings,
    )


def test_fit_resumed_mid_epoch_ends_where_an_uninterrupted_run_ends(tmp_path):
    straight, history = _toy_fit(tmp_path / "straight", max_steps=12)
    _toy_fit(tmp_path / "resumed", max_steps=5, every=5)  # stops mid-epoch 2, checkpoint at 5
    resumed, resumed_history = _toy_fit(tmp_path / "resumed", max_steps=12)
    assert int(resumed.step) == int(straight.step) == 12
    for a, b in zip(
        jax.tree_util.tree_leaves(straight.params),
        jax.tree_util.tree_leaves(resumed.params),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert [row["epoch"] for row in resumed_history] == [1, 2, 3] == [r["epoch"] for r in history]


def test_keras_early_stopping_and_plateau_rules():
    state, stop = {}, False
    for value, expect in [(0.5, False), (0.6, False), (0.6, False), (0.55, True)]:
        state, stop = training.early_stopping_update(state, value, patience=2)
        assert stop is expect
    lr, state = 1e-3, {}
    seen = []
    for loss in (1.0, 0.9, 0.89995, 0.95, 0.5, 0.6):
        state, lr = training.plateau_update(state, loss, lr, factor=0.5, patience=1, min_lr=3e-4)
        seen.append(lr)
    # 0.89995 is not better than 0.9 by min_delta 1e-4: halve; again at 0.95, floored at 3e-4.
    assert seen == [1e-3, 1e-3, 5e-4, 3e-4, 3e-4, 3e-4]


def test_recognizer_trainer_names_the_kinds():
    from smg_jax.online import recognizers

    assert callable(recognizers.trainer(ml_collections.ConfigDict(), "detector_hmm"))
    with pytest.raises(OnlineError, match="choose from"):
        recognizers.trainer(ml_collections.ConfigDict(), "lstm")


def test_emission_networks_are_looked_up_by_name():
    assert emission.output_of("att_bigru") == "sigmoid"
    with pytest.raises(OnlineError, match=r"Unknown emission model 'mpl'.*Did you mean \['mlp'\]"):
        emission.create("mpl", num_states=86)
