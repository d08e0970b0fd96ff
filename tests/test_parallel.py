"""Data parallelism (smg_jax.train.parallel): pmap and mesh give the one-device numbers.

The multi-device runs happen in a subprocess with 4 simulated CPU devices
(``parallel_worker.py``): JAX fixes its device count at start-up and this
pytest process runs the rest of the suite on one device.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import parallel_worker
import pytest

from experiments.configs import base
from smg_jax import graph
from smg_jax.data import pipeline, transforms
from smg_jax.train import parallel, setup
from smg_jax.train.errors import ConfigError

DEVICES = 4
TIMEOUT_S = 600  # generous: a loaded 2-core machine; a hang still ends with the worker's log


# ---------------------------------------------------------------------------
# Config errors (no devices needed).
# ---------------------------------------------------------------------------


def test_unknown_parallel_mode_names_the_field_and_the_choices():
    config = base.get_config("stgcn")
    config.train.parallel = "ddp"
    with pytest.raises(ConfigError, match=r"train\.parallel='ddp'.*'none', 'pmap', 'mesh'"):
        parallel.make_placement(config)


def test_mesh_refuses_per_device_batch_norm():
    config = base.get_config("stgcn")
    config.train.parallel = "mesh"
    config.train.cross_replica_bn = False
    with pytest.raises(ConfigError, match=r"cross_replica_bn=False.*train\.parallel='pmap'"):
        parallel.make_placement(config)


def test_batch_that_does_not_split_over_the_devices_is_refused():
    with pytest.raises(ConfigError, match=r"train\.batch_size=18 .* 4 devices .* multiple of 8"):
        parallel.check_batch_size(18, accum_steps=2, num_devices=4)
    parallel.check_batch_size(16, accum_steps=2, num_devices=4)


def test_default_is_todays_single_device_run():
    config = base.get_config("stgcn")
    assert (config.train.parallel, config.train.cross_replica_bn) == ("none", True)
    assert config.distributed.enabled is False
    assert parallel.make_placement(config) is parallel.SINGLE_DEVICE
    model = setup.make_model(config, num_classes=17)
    assert parallel.training_model(model, config) is model


def test_pmap_with_cross_replica_bn_names_the_batch_norm_axis():
    config = base.get_config("stgcn")
    config.train.parallel = "pmap"
    model = setup.make_model(config, num_classes=17)
    assert parallel.training_model(model, config).bn_axis_name == parallel.AXIS
    config.train.cross_replica_bn = False
    assert parallel.training_model(model, config).bn_axis_name is None


# ---------------------------------------------------------------------------
# Data layout (no devices needed).
# ---------------------------------------------------------------------------


def _source(num_examples: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "joints": rng.normal(
                0.0, 0.3, size=(int(rng.integers(8, 30)), graph.NUM_JOINTS, 3)
            ).astype(np.float32),
            "label": i % 17,
        }
        for i in range(num_examples)
    ]


@pytest.mark.parametrize(("hosts", "micro_batches"), [(2, 1), (2, 2), (4, 2)])
def test_host_slices_rebuild_the_one_host_batches(hosts, micro_batches):
    source = _source(37)
    preset = transforms.get_preset("centered", num_frames=8, augment=True)
    common = {"batch_size": 16, "seed": 3, "num_threads": 0}
    whole = pipeline.train_iterator(source, preset, **common)
    sliced = [
        pipeline.train_iterator(
            source, preset, slice_index=h, slice_count=hosts, micro_batches=micro_batches, **common
        )
        for h in range(hosts)
    ]
    for _ in range(5):  # crosses an epoch end (37 examples, 16 per batch)
        expected = next(whole)
        parts = [next(it) for it in sliced]
        for key in ("x", "label"):
            # Host h holds its part of each micro-batch, in micro-batch order.
            blocks = [p[key].reshape((micro_batches, -1, *p[key].shape[1:])) for p in parts]
            rebuilt = np.concatenate(blocks, axis=1).reshape(expected[key].shape)
            np.testing.assert_array_equal(rebuilt, expected[key])
    # The saved position is the global stream's, the same on every host.
    states = [it.get_state() for it in sliced]
    assert all(state == whole.get_state() for state in states)
    resumed = pipeline.train_iterator(
        source, preset, slice_index=1, slice_count=hosts, micro_batches=micro_batches,
        state=json.loads(json.dumps(states[0])), **common,
    )  # fmt: skip
    np.testing.assert_array_equal(next(resumed)["x"], next(sliced[1])["x"])


def test_slices_refuse_a_batch_that_does_not_split():
    with pytest.raises(transforms.DataError, match="micro_batches=2 x slice_count=3"):
        pipeline.train_dataset(
            _source(8),
            transforms.get_preset("centered", num_frames=8),
            batch_size=8,
            seed=0,
            slice_count=3,
            micro_batches=2,
        )


def test_split_for_devices_gives_each_device_its_part_of_every_micro_batch():
    rows = np.arange(16)  # one host's rows: micro-batch 0 = 0..7, micro-batch 1 = 8..15
    split = parallel.split_for_devices({"r": rows}, num_devices=4, micro_batches=2)["r"]
    np.testing.assert_array_equal(
        split, [[0, 1, 8, 9], [2, 3, 10, 11], [4, 5, 12, 13], [6, 7, 14, 15]]
    )
    plain = parallel.split_for_devices({"r": rows}, num_devices=4)["r"]
    np.testing.assert_array_equal(plain, rows.reshape(4, 4))


# ---------------------------------------------------------------------------
# On 4 simulated devices.
# ---------------------------------------------------------------------------


def _relative(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_pmap_and_mesh_steps_match_one_device(tmp_path):
    spec = {"task": "steps", "devices": DEVICES, "out": str(tmp_path / "steps_out.json")}
    out = parallel_worker.run(spec, tmp_path, "steps", TIMEOUT_S)
    assert out["devices"] == DEVICES
    runs = out["variants"]
    reference = parallel_worker.REFERENCE
    for name in ("pmap", "mesh", "pmap_accum2", "mesh_accum2", "mesh_dropout"):
        ref = runs[reference[name]]
        # The same loss at every step of a free run, and from the same state the same
        # new state (params, BatchNorm statistics, optimizer state) up to float rounding.
        np.testing.assert_allclose(runs[name]["losses"], ref["losses"], rtol=1e-5, err_msg=name)
        assert max(runs[name]["step_errors"]) < 1e-4, (name, runs[name]["step_errors"])
        assert _relative(runs[name]["params"], ref["params"]) < 1e-4, name
        assert _relative(runs[name]["batch_stats"], ref["batch_stats"]) < 1e-4, name
        assert _relative(runs[name]["logits"], ref["logits"]) < 1e-4, name
        assert runs[name]["step"] == parallel_worker.STEPS
    # Per-device BatchNorm statistics (4 rows each, not 16) are another computation:
    # PyTorch DataParallel/DDP semantics, not the one-device numbers.
    local = runs["pmap_local_bn"]
    assert _relative(local["losses"], runs["none"]["losses"]) > 1e-5
    assert min(local["step_errors"]) > 1e-2
    # Accumulation and dropout change the computation, so the checks above are not vacuous.
    assert _relative(runs["none_accum2"]["losses"], runs["none"]["losses"]) > 1e-5
    assert _relative(runs["none_dropout"]["losses"], runs["none"]["losses"]) > 1e-5
    assert "train.batch_size=18" in out["indivisible_error"]
    assert "4 devices" in out["indivisible_error"]


@pytest.fixture(scope="module")
def smg_tiny(tmp_path_factory) -> dict[str, str]:
    from tfds_smg import synthetic

    root = tmp_path_factory.mktemp("smg")
    raw = synthetic.generate(root / "raw", scale="tiny", seed=0)
    return {"manual_dir": str(raw), "data_dir": str(root / "tfds")}


def test_train_and_evaluate_on_4_devices_matches_one_device(smg_tiny, tmp_path):
    def run(name, parallel_mode, workdir=None, **extra):
        config = {"train.parallel": parallel_mode, **extra}
        return {"name": name, "workdir": str(tmp_path / (workdir or name)), "config": config}

    spec = {
        "task": "train",
        "devices": DEVICES,
        "out": str(tmp_path / "train_out.json"),
        "base": parallel_worker.tiny_run_config(smg_tiny),
        "runs": [
            run("none", "none"),
            run("mesh", "mesh"),
            run("pmap", "pmap"),
            # Stop after 2 steps, then resume from that checkpoint to step 4.
            run("pmap_cut", "pmap", workdir="pmap_resumed", **{"train.max_steps": 2}),
            run("pmap_resumed", "pmap"),
            # Cut here on 4 devices, resumed below on 2 devices and on one.
            run("mesh_cut", "mesh", workdir="on_2_devices", **{"train.max_steps": 2}),
            run("pmap_cut_2", "pmap", workdir="on_1_device", **{"train.max_steps": 2}),
        ],
    }
    out = parallel_worker.run(spec, tmp_path, "train", TIMEOUT_S)
    assert out["device_count"] == DEVICES
    fewer = {
        "task": "train",
        "devices": 2,
        "out": str(tmp_path / "fewer_out.json"),
        "base": spec["base"],
        "runs": [run("on_2_devices", "mesh"), run("on_1_device", "none")],
    }
    fewer_out = parallel_worker.run(fewer, tmp_path, "fewer", TIMEOUT_S)
    assert fewer_out["device_count"] == 2
    runs = {**out["runs"], **fewer_out["runs"]}
    ref = runs["none"]["final"]
    ref_logits = np.load(tmp_path / "none" / "test_logits.npz")["logits"]
    for name in ("mesh", "pmap", "pmap_resumed", "on_2_devices", "on_1_device"):
        final = runs[name]["final"]
        assert final["num_examples"] == ref["num_examples"] == len(ref_logits)  # each clip once
        assert final["confusion_matrix"] == ref["confusion_matrix"], name
        assert (final["top1"], final["top5"]) == (ref["top1"], ref["top5"]), name
        logits = np.load(tmp_path / name / "test_logits.npz")["logits"]
        np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4, err_msg=name)
    for name in ("mesh", "pmap"):
        np.testing.assert_allclose(
            runs[name]["history"][-1]["train_loss"], runs["none"]["history"][-1]["train_loss"],
            rtol=1e-5,
        )  # fmt: skip
    saved = json.loads((tmp_path / "mesh" / "results.json").read_text())
    assert saved["final"]["top1"] == ref["top1"]
    assert saved["train_clips_per_second"] > 0
    config = json.loads((tmp_path / "mesh" / "config.json").read_text())
    assert config["train"]["parallel"] == "mesh"
    for name in ("pmap_resumed", "on_2_devices", "on_1_device"):
        assert pathlib.Path(tmp_path / name / "checkpoints" / "4").is_dir(), name
        assert runs[name]["checkpoint_before"] == 2, name  # it resumed the cut run
