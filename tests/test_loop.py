"""The training loop end to end on a tiny synthetic SMG: train, evaluate, resume, fuse."""

from __future__ import annotations

import json
import pathlib
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments import ensemble as ensemble_cli
from experiments.configs import base
from smg_jax import ensemble
from smg_jax.train import loop, setup
from tfds_smg import synthetic


@pytest.fixture(scope="module")
def smg_tiny(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("smg")
    raw = synthetic.generate(root / "raw", scale="tiny", seed=0)
    return {"manual_dir": str(raw), "data_dir": str(root / "tfds")}


def tiny_config(smg_tiny, **train):
    config = base.get_config("stgcn")
    config.model.channels = (8, 16)
    config.model.strides = (1, 2)
    config.model.dropout = 0.1
    config.data.manual_dir = smg_tiny["manual_dir"]
    config.data.data_dir = smg_tiny["data_dir"]
    config.data.preset = "centered"
    config.data.num_frames = 16
    config.data.num_threads = 0
    config.optimizer.lr = 0.05
    config.schedule.milestones = (2,)
    config.train.epochs = 3
    config.train.batch_size = 16
    config.train.checkpoint_every_steps = 3
    config.train.log_every_steps = 2
    config.train.progress_bar = False
    config.eval.batch_size = 32  # tiny test split is not a multiple: padding is exercised
    config.eval.every_epochs = 1
    config.train.update(train)
    return config


@pytest.fixture(scope="module")
def finished_run(smg_tiny, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    results = loop.train_and_evaluate(tiny_config(smg_tiny), workdir)
    return workdir, results


def test_run_writes_a_readable_report(finished_run, smg_tiny):
    workdir, results = finished_run
    import tensorflow_datasets as tfds

    test_size = tfds.builder("smg/clips", data_dir=smg_tiny["data_dir"]).info.splits["test"]
    assert results["synthetic"] is True
    assert results["final"]["num_examples"] == test_size.num_examples  # each example once
    assert sum(results["final"]["support"]) == test_size.num_examples
    table = (workdir / "results.md").read_text()
    assert "SYNTHETIC" in table and "majority class" in table
    assert (workdir / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["final"]["top1"] == results["final"]["top1"]
    history = saved["history"]
    assert [round(row["epoch"]) for row in history] == [1, 2, 3]
    # Training lowers the loss.
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_interrupted_run_resumes_to_identical_metrics(finished_run, smg_tiny, tmp_path):
    _, uninterrupted = finished_run
    workdir = tmp_path / "run"
    # First invocation stops after 5 steps (mid-epoch: an epoch has more than 5 steps).
    first = loop.train_and_evaluate(tiny_config(smg_tiny, max_steps=5), workdir)
    steps_per_epoch = first["history"][-1]["step"] / first["history"][-1]["epoch"]
    assert steps_per_epoch > 5
    # As after kill -9: whatever came after the step-3 checkpoint is lost.
    checkpoints = workdir / "checkpoints"
    for folder in checkpoints.iterdir():
        if folder.name.isdigit() and int(folder.name) > 3:
            shutil.rmtree(folder)
    assert sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()) == [3]
    resumed = loop.train_and_evaluate(tiny_config(smg_tiny), workdir)
    assert resumed["final"]["top1"] == uninterrupted["final"]["top1"]
    assert resumed["final"]["confusion_matrix"] == uninterrupted["final"]["confusion_matrix"]
    logits_a = np.load(finished_run[0] / "test_logits.npz")["logits"]
    logits_b = np.load(workdir / "test_logits.npz")["logits"]
    np.testing.assert_array_equal(logits_a, logits_b)


def test_resume_with_another_config_is_refused(finished_run, smg_tiny):
    workdir, _ = finished_run
    config = tiny_config(smg_tiny)
    config.optimizer.lr = 0.5
    with pytest.raises(loop.ConfigError, match=r"optimizer\.lr"):
        loop.train_and_evaluate(config, workdir)


def test_a_run_older_than_new_config_fields_still_resumes(finished_run, smg_tiny, tmp_path, caplog):
    workdir, _ = finished_run
    saved = json.loads((workdir / "config.json").read_text())
    del saved["train"]["parallel"]  # as written before that field existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert setup.config_changes(tmp_path, tiny_config(smg_tiny)) == []
    assert "predates the config fields ['train.parallel']" in caplog.text
    saved["train"]["removed_field"] = 1  # a field this version does not know is still a change
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert setup.config_changes(tmp_path, tiny_config(smg_tiny)) == ["train.removed_field"]


def test_parallel_mode_may_change_on_resume_but_not_the_batch_norm_scope(finished_run, smg_tiny):
    workdir, _ = finished_run  # a run with train.parallel = "none"
    for mode in ("mesh", "pmap"):
        config = tiny_config(smg_tiny)
        config.train.parallel = mode
        assert setup.config_changes(workdir, config) == [], mode
    config = tiny_config(smg_tiny)
    config.train.parallel, config.train.cross_replica_bn = "pmap", False  # per-device BatchNorm
    assert setup.config_changes(workdir, config) == ["train.batch_norm_scope"]
    config.train.parallel = "none"  # the flag alone means nothing without pmap
    assert setup.config_changes(workdir, config) == []


def test_ensemble_of_identical_streams_equals_the_stream(finished_run, tmp_path, capsys):
    workdir, results = finished_run
    run = ensemble.load_scores(workdir)
    fused = ensemble.fuse([run, run], weights=[1.0, 1.0])
    assert fused["fusion"]["top1"] == results["final"]["top1"]
    assert fused["fusion"]["confusion_matrix"] == results["final"]["confusion_matrix"]
    assert ensemble_cli.main([str(workdir), str(workdir), "--out", str(tmp_path / "f")]) == 0
    assert "fusion (1 + 1)" in capsys.readouterr().out
    assert json.loads((tmp_path / "f" / "fusion.json").read_text())["weights"] == [1.0, 1.0]


def test_ensemble_refuses_mismatched_runs(finished_run, tmp_path):
    workdir, _ = finished_run
    run = ensemble.load_scores(workdir)
    other = dict(run, names=run["names"][::-1].copy(), path="other")
    with pytest.raises(ensemble.EnsembleError, match="different test examples"):
        ensemble.fuse([run, other])
    with pytest.raises(ensemble.EnsembleError, match="does not exist"):
        ensemble.load_scores(pathlib.Path(tmp_path) / "nothing")


def test_bfloat16_compute_keeps_float32_parameters_and_optimizer_state(smg_tiny, tmp_path):
    results = loop.train_and_evaluate(
        tiny_config(smg_tiny, compute_dtype="bfloat16", epochs=1), tmp_path
    )
    assert np.isfinite(results["final"]["top1"])
    logits = np.load(tmp_path / "test_logits.npz")["logits"]
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
    step_dir = max((tmp_path / "checkpoints").iterdir(), key=lambda p: int(p.name))
    stored = ocp.PyTreeCheckpointer().restore(step_dir / "state")
    dtypes = {leaf.dtype for leaf in jax.tree.leaves(stored["params"])}
    dtypes |= {leaf.dtype for leaf in jax.tree.leaves(stored["opt_state"]) if leaf.ndim > 0}
    assert dtypes == {np.dtype(np.float32)}
