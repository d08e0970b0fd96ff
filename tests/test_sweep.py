"""Ablation sweeps on a tiny synthetic SMG: table and plot, rerun skips, failures recorded,
vmapped seeds equal separate runs, mistyped fields stop everything, the ready studies check."""

from __future__ import annotations

import csv
import json
import pathlib
import shutil
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

from experiments.configs import base
from experiments.configs import stgcn as stgcn_config
from smg_jax import ensemble, metrics, models, sweep
from smg_jax.train import loop, multiseed, setup
from tfds_smg import synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]
STUDIES = sorted(p for p in (REPO / "experiments" / "studies").glob("*.py") if p.stem != "__init__")
# Both the grid and the vmapped sweep train this variant; its runs are compared seed by seed.
SHARED = "preset=centered"


@pytest.fixture(scope="module", autouse=True)
def persistent_compilation_cache(tmp_path_factory):
    """Seeds of a variant compile identical programs; compile each once, as the CLI does."""
    saved = {
        name: getattr(jax.config, name)
        for name in ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    }
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def smg_tiny(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("smg")
    raw = synthetic.generate(root / "raw", scale="tiny", seed=0)
    return {"manual_dir": str(raw), "data_dir": str(root / "tfds")}


def tiny_config(smg_tiny):
    """A one-block ST-GCN, 4 steps: compilation is most of a run."""
    config = base.get_config("stgcn")
    config.model.channels = (8,)
    config.model.strides = (1,)
    config.data.manual_dir = smg_tiny["manual_dir"]
    config.data.data_dir = smg_tiny["data_dir"]
    config.data.preset = "centered"
    config.data.num_frames = 16
    config.data.num_threads = 0
    config.optimizer.lr = 0.05
    config.train.epochs = 1
    config.train.max_steps = 4
    config.train.batch_size = 16
    config.train.checkpoint_every_steps = 2
    config.train.progress_bar = False
    config.train.tensorboard = False
    config.eval.batch_size = 32
    return config


# A grid of 2 x 1 x 3: `resample` shares `centered`'s programs (only the data differ);
# `nosuch` is not a preset, so its runs fail; `model.partition` is the alias of model.strategy.
GRID = ("data.preset=centered,resample,nosuch", "model.partition=spatial")


@pytest.fixture(scope="module")
def grid_sweep(smg_tiny, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("grid")
    plan = sweep.make_plan(tiny_config(smg_tiny), workdir, sweeps=GRID, seeds=2)
    return plan, sweep.run_sweep(plan)


@pytest.fixture(scope="module")
def vmap_sweep(smg_tiny, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vmap")
    sweeps = ("data.preset=centered,nosuch",)
    plan = sweep.make_plan(tiny_config(smg_tiny), workdir, sweeps=sweeps, seeds=2)
    return plan, sweep.run_sweep(plan, vmap_seeds=True)


def _rows(summary):
    return {row["name"]: row for row in summary["rows"]}


def test_sweep_writes_table_and_plot(grid_sweep):
    plan, summary = grid_sweep
    names = [v.name for v in plan.variants]
    assert names == [
        "preset=centered,strategy=spatial",
        "preset=resample,strategy=spatial",
        "preset=nosuch,strategy=spatial",
    ]
    assert plan.baseline == names[0]  # the config's own values
    rows = _rows(summary)
    for name in names[:2]:
        row = rows[name]
        assert row["finished"] == [0, 1] and not row["failed"]
        results = [
            json.loads((plan.run_dir(plan.variant(name), s) / "results.json").read_text())
            for s in (0, 1)
        ]
        top1 = [r["final"]["top1"] for r in results]
        assert row["top1"]["mean"] == pytest.approx(np.mean(top1))
        assert row["top1"]["std"] == pytest.approx(np.std(top1, ddof=1))
        assert row["num_params"] == results[0]["num_params"] > 0
        assert all(r["train_clips_per_second"] > 0 for r in results)
        assert results[0]["synthetic"] is True
    resample = rows[names[1]]
    assert resample["delta"]["top1"] == pytest.approx(
        resample["top1"]["mean"] - rows[names[0]]["top1"]["mean"]
    )
    table = (plan.workdir / "ablation.md").read_text()
    assert "SYNTHETIC" in table and "(baseline)" in table and "Failed runs" in table
    assert "preset=resample,strategy=spatial | 2/2 |" in table
    with (plan.workdir / "ablation.csv").open() as handle:
        records = list(csv.DictReader(handle))
    assert [r["variant"] for r in records] == names
    assert float(records[1]["top1_mean_pct"]) == pytest.approx(100 * resample["top1"]["mean"])
    assert records[0]["synthetic"] == "True" and records[2]["seeds_finished"] == "0"
    assert (plan.workdir / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((plan.workdir / "sweep.json").read_text())
    assert saved["variants"][0]["overrides"] == {
        "data.preset": "centered",
        "model.strategy": "spatial",
    }


def test_failed_variant_is_recorded_and_the_rest_complete(grid_sweep):
    plan, summary = grid_sweep
    failed = plan.variant("preset=nosuch,strategy=spatial")
    row = _rows(summary)[failed.name]
    assert row["finished"] == [] and set(row["failed"]) == {"0", "1"}
    assert "Unknown preset 'nosuch'" in row["failed"]["0"]
    error = (plan.run_dir(failed, 0) / "error.txt").read_text()
    assert error.startswith("DataError: Unknown preset 'nosuch'") and "Traceback" in error
    assert "Unknown preset 'nosuch'" in (plan.workdir / "ablation.md").read_text()


def test_rerun_skips_finished_runs_and_retries_failed_ones(grid_sweep, smg_tiny):
    plan, summary = grid_sweep
    calls = []

    def counting_train(config, workdir):
        calls.append(pathlib.Path(workdir).parent.name)
        return loop.train_and_evaluate(config, workdir)

    finished = plan.run_dir(plan.variants[0], 0) / "results.json"
    stamp = finished.stat().st_mtime_ns
    again = sweep.make_plan(tiny_config(smg_tiny), plan.workdir, sweeps=GRID, seeds=2)
    rerun = sweep.run_sweep(again, train_fn=counting_train)
    assert calls == ["preset=nosuch,strategy=spatial"] * 2
    assert finished.stat().st_mtime_ns == stamp
    for name in ("preset=centered,strategy=spatial", "preset=resample,strategy=spatial"):
        assert _rows(rerun)[name]["top1"] == _rows(summary)[name]["top1"]


def test_sweep_refuses_a_workdir_with_runs_of_another_config(grid_sweep, smg_tiny):
    plan, _ = grid_sweep
    config = tiny_config(smg_tiny)
    config.optimizer.lr = 0.5
    changed = sweep.make_plan(config, plan.workdir, sweeps=GRID, seeds=2)
    with pytest.raises(sweep.SweepError, match=r"another config.*optimizer\.lr"):
        sweep.run_sweep(changed, train_fn=pytest.fail)


def test_study_fusions_fuse_each_seed(grid_sweep, smg_tiny):
    plan, _ = grid_sweep
    centered, resample = "preset=centered,strategy=spatial", "preset=resample,strategy=spatial"
    study = sweep.Study(
        "fusion",
        # Named like the grid's variants, so the study reads the grid's finished runs.
        variants={
            centered: {"data.preset": "centered", "model.strategy": "spatial"},
            resample: {"data.preset": "resample", "model.strategy": "spatial"},
        },
        fusions=(sweep.Fusion("sum", (centered, resample), weights=(1.0, 2.0)),),
    )
    fused_plan = sweep.make_plan(tiny_config(smg_tiny), plan.workdir, study=study, seeds=2)
    assert sweep.pending_jobs(fused_plan, vmap_seeds=False) == []
    row = _rows(sweep.summarize(fused_plan))["sum"]
    assert row["kind"] == "fusion" and row["finished"] == [0, 1]
    assert row["overrides"] == f"1 x {centered} + 2 x {resample}"
    for seed in (0, 1):
        runs = [
            ensemble.load_scores(plan.run_dir(plan.variant(name), seed))
            for name in (centered, resample)
        ]
        expected = metrics.classification_report(
            runs[0]["logits"] + 2.0 * runs[1]["logits"].astype(np.float64), runs[0]["labels"]
        )
        assert row["top1"]["values"][seed] == expected["top1"]
        saved = json.loads((plan.workdir / "sum" / f"seed_{seed}" / "fusion.json").read_text())
        assert saved["final"]["top1"] == expected["top1"]
    single = json.loads((plan.run_dir(plan.variants[0], 0) / "results.json").read_text())
    assert row["num_params"] == 2 * single["num_params"]


def test_vmapped_seeds_equal_separate_runs(grid_sweep, vmap_sweep):
    grid_plan, _ = grid_sweep
    plan, summary = vmap_sweep
    rows = _rows(summary)
    assert rows[SHARED]["finished"] == [0, 1] and rows[SHARED]["vmapped_seeds"] == 2
    assert set(rows["preset=nosuch"]["failed"]) == {"0", "1"}  # a failing group is recorded too
    separate_variant = grid_plan.variant("preset=centered,strategy=spatial")
    logits = {}
    for seed in (0, 1):
        vmapped_dir = plan.run_dir(plan.variant(SHARED), seed)
        separate_dir = grid_plan.run_dir(separate_variant, seed)
        vmapped = json.loads((vmapped_dir / "results.json").read_text())
        separate = json.loads((separate_dir / "results.json").read_text())
        assert vmapped["vmapped_seeds"] == 2
        logits[seed] = np.load(vmapped_dir / "test_logits.npz")["logits"]
        np.testing.assert_allclose(
            logits[seed], np.load(separate_dir / "test_logits.npz")["logits"], rtol=1e-4, atol=1e-5
        )
        assert vmapped["final"]["confusion_matrix"] == separate["final"]["confusion_matrix"]
        for key in ("train_loss", "top1", "mean_class_accuracy"):
            assert vmapped["history"][-1][key] == pytest.approx(separate["history"][-1][key])
    assert np.abs(logits[0] - logits[1]).max() > 1e-3  # the seeds did differ


def test_interrupted_vmapped_group_resumes_from_the_common_checkpoint(
    vmap_sweep, smg_tiny, tmp_path
):
    plan, _ = vmap_sweep
    config = tiny_config(smg_tiny)
    config.train.checkpoint_every_steps = 1
    dirs = {s: tmp_path / f"seed_{s}" for s in (0, 1)}
    cut = multiseed.seed_config(config, 0)
    cut.train.max_steps = 2
    multiseed.train_and_evaluate_seeds(cut, dirs)
    # Killed while saving step 2: seed 1 never wrote it, so both go back to step 1.
    shutil.rmtree(dirs[1] / "checkpoints" / "2")
    for seed in dirs:
        (dirs[seed] / "results.json").unlink()
    assert multiseed.common_resume_step(list(dirs.values())) == 1
    resumed = multiseed.train_and_evaluate_seeds(config, dirs)
    for seed in dirs:
        assert resumed[seed]["history"][-1]["step"] == 4
        uninterrupted = plan.run_dir(plan.variant(SHARED), seed) / "test_logits.npz"
        np.testing.assert_array_equal(
            np.load(dirs[seed] / "test_logits.npz")["logits"], np.load(uninterrupted)["logits"]
        )


def test_values_are_parsed_with_the_field_type():
    config = stgcn_config.get_config()
    assert sweep.parse_sweep(config, "model.channels=(32,64),(8, 16)") == (
        "model.channels",
        [(32, 64), (8, 16)],
    )
    assert sweep.parse_sweep(config, "optimizer.lr=0.1,1e-3,1") == (
        "optimizer.lr",
        [0.1, 1e-3, 1.0],
    )
    assert sweep.parse_sweep(config, "model.edge_importance=true,False,0")[1] == [
        True,
        False,
        False,
    ]
    assert sweep.parse_sweep(config, "data.num_frames=None,32")[1] == [None, 32]
    assert sweep.parse_sweep(config, "schedule.milestones=(5,10),7")[1] == [(5, 10), (7,)]
    assert sweep.parse_sweep(config, "loss.name='label_smoothing',cross_entropy")[1] == [
        "label_smoothing",
        "cross_entropy",
    ]
    with pytest.raises(sweep.SweepError, match="not of type int"):
        sweep.parse_sweep(config, "train.epochs=3.5")
    with pytest.raises(sweep.SweepError, match="FIELD=VALUE1"):
        sweep.parse_sweep(config, "train.epochs")
    assert sweep.folder_name("channels=(8,16),strides=(1,2)") == "channels=8-16,strides=1-2"
    assert sweep.folder_name("../spatial, no edges") == "spatial,no_edges"


def test_mistyped_field_stops_the_sweep_before_any_run(tmp_path):
    config = stgcn_config.get_config()
    for typo, closest in [
        ("model.stratgy", "model.strategy"),
        ("model.partiton", "model.partition (alias of model.strategy)"),
        ("optimiser.lr", "optimizer.lr"),
        ("train.epoch", "train.epochs"),
    ]:
        with pytest.raises(sweep.SweepError, match="Closest real fields") as err:
            sweep.make_plan(config, tmp_path / "w", sweeps=[f"{typo}=1,2"])
        assert closest in str(err.value)
    with pytest.raises(sweep.SweepError, match="is a config section"):
        sweep.make_plan(config, tmp_path / "w", sweeps=["model=1"])
    assert not (tmp_path / "w").exists()  # nothing was run, nothing written


def test_command_line_stops_on_a_mistyped_field_and_lists_a_grid(tmp_path):
    command = [sys.executable, "-m", "experiments.sweep", "--config=experiments/configs/stgcn.py"]
    workdir = f"--workdir={tmp_path / 'w'}"
    typo = subprocess.run(
        [*command, "--sweep=model.stratgy=uniform,spatial", workdir, "--config.train.epochs=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert typo.returncode == 2, typo.stderr
    assert "Closest real fields: ['model.strategy'" in typo.stderr
    listed = subprocess.run(
        [
            *command,
            "--sweep=model.partition=uniform,distance,spatial",
            "--sweep=data.preset=authors,resample",
            "--seeds=2",
            "--dry_run",
            workdir,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("to run") == 12
    assert "baseline: strategy=spatial,preset=authors" in listed.stdout


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_ready_studies_check_against_their_config(path, tmp_path):
    study = sweep.load_study(path)
    config = stgcn_config.get_config()
    for smoke in (False, True):
        plan = sweep.make_plan(config, tmp_path, study=study, seeds=2, smoke=smoke)
        assert len(plan.variants) >= 3 and plan.baseline in {v.name for v in plan.variants}
        assert len({v.folder for v in plan.variants}) == len(plan.variants)
    # The smoke form: tiny data in the workdir and a tiny model, unless set on the command line.
    assert plan.config.data.synthetic_scale == "tiny"
    assert plan.config.model.channels == (8, 16) and plan.config.train.epochs == 2
    kept = sweep.make_plan(config, tmp_path, study=study, smoke=True, keep=["model.channels"])
    assert kept.config.model.channels == config.model.channels


def test_streams_study_fuses_the_streams(tmp_path):
    study = sweep.load_study(REPO / "experiments" / "studies" / "streams.py")
    assert [f.name for f in study.fusions] == ["2s_joint+bone", "4s_all_streams"]
    with pytest.raises(sweep.SweepError, match="Fusion 'bad'"):
        sweep.make_plan(
            stgcn_config.get_config(),
            tmp_path,
            study=sweep.Study("s", variants={"a": {}}, fusions=[sweep.Fusion("bad", ("a", "b"))]),
        )


def test_jobs_run_one_per_device_at_a_time():
    device = jax.devices()[0]
    barrier = threading.Barrier(2, timeout=30)
    seen = []

    def run(job):
        barrier.wait()  # returns only if both jobs run at the same time
        seen.append((job.seeds, jax.config.jax_default_device))

    jobs = [sweep.Job(sweep.Variant(f"v{i}", {}), (i,), False) for i in range(2)]
    sweep.execute(jobs, run, devices=[device, device])
    assert sorted(seen, key=lambda item: item[0]) == [((0,), device), ((1,), device)]


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_smoke_form_builds_every_model(name, tmp_path):
    config = base.get_config(name)
    plan = sweep.make_plan(config, tmp_path, smoke=True)
    run_config = plan.run_config(plan.variants[0], 0)
    model = setup.make_model(run_config, 17)
    x = jnp.zeros((2, 1, run_config.data.num_frames, 25, 3))
    rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    variables = jax.eval_shape(lambda x: model.init(rngs, x, train=False), x)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    assert logits.shape == (2, 17)
