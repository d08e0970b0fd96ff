"""Two hosts on this machine give the numbers of one host with the same 4 devices.

Two worker processes (``parallel_worker.py``) with 2 simulated CPU devices
each form one 4-device run: ``jax.distributed`` with a coordinator on
loopback, gloo for the cross-process collectives. Each runs
``loop.train_and_evaluate`` (mesh, pmap, a mesh run cut after 2 steps
and resumed from its checkpoint, and a mesh run in which host 1 alone gets
SIGTERM, resumed by a second two-host job); a third process runs the same
config on one host with 4 devices.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import parallel_worker
import pytest

HOSTS, DEVICES_PER_HOST = 2, 2
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def smg_tiny(tmp_path_factory) -> dict[str, str]:
    from tfds_smg import synthetic

    root = tmp_path_factory.mktemp("smg")
    raw = synthetic.generate(root / "raw", scale="tiny", seed=0)
    # No TFDS build here: process 0 of the two-host run builds it while process 1 waits.
    return {"manual_dir": str(raw), "data_dir": str(root / "tfds")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_hosts(smg_tiny, tmp_path, runs, name: str) -> list[dict]:
    """Runs ``runs`` as one two-host job (a fresh coordinator); each host's result."""
    port = _free_port()
    specs = [
        {
            "task": "train",
            "devices": DEVICES_PER_HOST,
            "out": str(tmp_path / f"{name}{h}_out.json"),
            "base": parallel_worker.tiny_run_config(smg_tiny),
            "runs": runs,
            "distributed": {
                "coordinator_address": f"127.0.0.1:{port}",
                "num_processes": HOSTS,
                "process_id": h,
            },
        }
        for h in range(HOSTS)
    ]
    processes = [
        parallel_worker.start(spec, tmp_path, f"{name}{h}") for h, spec in enumerate(specs)
    ]
    return parallel_worker.finish_all(processes, specs, TIMEOUT_S)


@pytest.mark.slow
def test_two_hosts_match_one_host(smg_tiny, tmp_path):
    def run(name, parallel_mode, workdir=None, **extra):
        config = {"train.parallel": parallel_mode, **extra}
        return {"name": name, "workdir": str(tmp_path / (workdir or name)), "config": config}

    runs = [
        run("mesh", "mesh"),
        run("pmap", "pmap"),
        run("cut", "mesh", workdir="resumed", **{"train.max_steps": 2}),
        run("resumed", "mesh"),
    ]
    hosts = _two_hosts(smg_tiny, tmp_path, runs, "host")
    # Its own job: JAX's preemption sync manager counts steps per process, and a
    # second run in the same process starts again from step 1.
    preempted_run = {
        **run("preempted", "mesh", workdir="after_preemption"),
        "sigterm": {"process": 1, "step": 1},
    }
    preempted_hosts = _two_hosts(smg_tiny, tmp_path, [preempted_run], "preempted")
    again = _two_hosts(smg_tiny, tmp_path, [run("after_preemption", "mesh")], "again")
    hosts_after_preemption = again[0]["runs"]
    one_host = parallel_worker.run(
        {
            "task": "train",
            "devices": HOSTS * DEVICES_PER_HOST,
            "out": str(tmp_path / "one_host_out.json"),
            "base": parallel_worker.tiny_run_config(smg_tiny),
            "runs": [run("reference", "mesh")],
        },
        tmp_path,
        "one_host",
        TIMEOUT_S,
    )

    assert [(h["process_index"], h["process_count"]) for h in hosts] == [(0, 2), (1, 2)]
    # Both hosts compiled their pmap steps with the XLA options, through XLA_FLAGS.
    from smg_jax.runtime import xla as jit

    expected = {**jit.CPU_OPTIONS, **jit.GPU_OPTIONS}
    assert all(h["process_wide_options"] == expected for h in hosts)
    assert one_host["process_wide_options"] == {}  # one host: per-call options
    assert all(h["device_count"] == 4 for h in hosts) and one_host["device_count"] == 4
    reference = one_host["runs"]["reference"]
    ref_logits = np.load(tmp_path / "reference" / "test_logits.npz")["logits"]
    for name in ("mesh", "pmap", "resumed"):
        # Every host ends with the whole report (the logits were gathered from both).
        assert hosts[0]["runs"][name]["final"] == hosts[1]["runs"][name]["final"], name
        final = hosts[0]["runs"][name]["final"]
        # Each test clip counted once: the hosts evaluated disjoint halves.
        assert final["num_examples"] == len(ref_logits) == sum(final["support"])
        assert final["confusion_matrix"] == reference["final"]["confusion_matrix"], name
        assert final["top1"] == reference["final"]["top1"], name
        logits = np.load(tmp_path / name / "test_logits.npz")["logits"]
        np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4, err_msg=name)
    for name in ("mesh", "pmap"):
        np.testing.assert_allclose(
            hosts[0]["runs"][name]["history"][-1]["train_loss"],
            reference["history"][-1]["train_loss"],
            rtol=1e-5,
            err_msg=name,
        )
    # The resumed run restored the two-host checkpoint of step 2 (its history holds the
    # cut run's evaluation) and went on to step 4.
    assert [row["step"] for row in hosts[0]["runs"]["resumed"]["history"]] == [2, 4]
    assert (tmp_path / "resumed" / "checkpoints" / "4").is_dir()
    # SIGTERM on host 1 alone: JAX's preemption service stops both hosts at the same
    # step with one checkpoint of it; the next invocation resumes from there to the
    # uninterrupted run's numbers.
    preempted = [h["runs"]["preempted"] for h in preempted_hosts]
    assert all("SIGTERM: saved checkpoint at step" in p["preempted"] for p in preempted)
    assert preempted[0]["checkpoints"] == preempted[1]["checkpoints"]
    stop_step = preempted[0]["checkpoints"][-1]
    assert 1 <= stop_step < 4, preempted
    after = hosts_after_preemption["after_preemption"]
    assert after["checkpoint_before"] == stop_step
    assert after["final"]["confusion_matrix"] == reference["final"]["confusion_matrix"]
    assert after["final"]["top1"] == reference["final"]["top1"]
    np.testing.assert_allclose(
        np.load(tmp_path / "after_preemption" / "test_logits.npz")["logits"], ref_logits,
        rtol=1e-4, atol=1e-4,
    )  # fmt: skip
    # Only process 0 writes reports and TensorBoard.
    for name in ("mesh", "pmap"):
        assert len(list((tmp_path / name / "tensorboard").glob("events.out.tfevents.*"))) == 1
        saved = json.loads((tmp_path / name / "results.json").read_text())
        assert saved["final"]["top1"] == reference["final"]["top1"]
