"""The multi-device half of test_parallel.py and test_multihost.py, run in a fresh process.

JAX fixes its device count when it starts and the rest of the suite runs on
one CPU device in the same pytest workers, so these checks run here, with
``--xla_force_host_platform_device_count`` set before JAX is imported::

    python tests/parallel_worker.py SPEC.json

``SPEC`` (JSON): ``{"task": "steps" | "train", "devices": devices of this
process, "out": where to write the JSON result, ...}``.

* ``steps``: a few train steps of a tiny ST-GCN on fixed batches in every
  placement (``VARIANTS``). For each: the losses and final state of a free
  run, and, stepping from the one-device run's state before each step
  (``REFERENCE``), the largest relative difference of the new state from
  the one-device step's; also eval logits and the error for a batch that
  does not split over the devices.
* ``train``: ``loop.train_and_evaluate`` once per entry of ``"runs"``
  (``{"name", "workdir", "config": {"train.parallel": "mesh", ...}}``) on top
  of the ``"base"`` overrides; with ``"distributed": {"coordinator_address",
  "num_processes", "process_id"}`` this process is one host of a multi-host
  run over gloo CPU collectives. A run with ``"sigterm": {"process": i,
  "step": n}`` sends SIGTERM to process ``i`` as it finishes step ``n`` (a
  preempted VM); the run's entry then records the ``Preempted`` message.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# name -> (train.parallel, accum_steps, cross_replica_bn, dropout); the "none" ones run first.
VARIANTS = {
    "none": ("none", 1, True, 0.0),
    "pmap": ("pmap", 1, True, 0.0),
    "mesh": ("mesh", 1, True, 0.0),
    "pmap_local_bn": ("pmap", 1, False, 0.0),
    "none_accum2": ("none", 2, True, 0.0),
    "pmap_accum2": ("pmap", 2, True, 0.0),
    "mesh_accum2": ("mesh", 2, True, 0.0),
    "none_dropout": ("none", 1, True, 0.3),
    "mesh_dropout": ("mesh", 1, True, 0.3),
}
# Each variant's one-device counterpart: the same accumulation and dropout.
REFERENCE = {
    name: next(
        other
        for other, (mode, *rest) in VARIANTS.items()
        if mode == "none" and (rest[0], rest[2]) == (accum, dropout)
    )
    for name, (_, accum, _, dropout) in VARIANTS.items()
}
BATCH, FRAMES, JOINTS, CLASSES, STEPS = 16, 12, 25, 17, 3


def tiny_run_config(smg_tiny: dict[str, str]) -> dict[str, Any]:
    """A few steps of a tiny ST-GCN on the tiny synthetic SMG (dotted overrides of base)."""
    return {
        "model.channels": [8, 8],
        "model.strides": [1, 2],
        "model.dropout": 0.0,  # pmap draws dropout masks per device: not the one-device ones
        "data.manual_dir": smg_tiny["manual_dir"],
        "data.data_dir": smg_tiny["data_dir"],
        "data.preset": "centered",
        "data.num_frames": 12,
        "data.num_threads": 0,
        "optimizer.lr": 0.05,
        "train.epochs": 1,
        "train.max_steps": 4,
        "train.batch_size": 16,
        "train.checkpoint_every_steps": 2,
        "train.log_every_steps": 2,
        "train.progress_bar": False,
        "eval.batch_size": 24,  # 6 per device; the 30 test clips need padding
    }


def _apply(config, overrides: dict[str, Any]) -> None:
    """``{"train.parallel": "mesh"}`` -> ``config.train.parallel = "mesh"`` (lists as tuples)."""
    for dotted, value in overrides.items():
        *path, field = dotted.split(".")
        section = config
        for name in path:
            section = section[name]
        section[field] = tuple(value) if isinstance(value, list) else value


def _flat(tree) -> list[float]:
    import jax
    import numpy as np

    leaves = jax.tree_util.tree_leaves(tree)
    return np.concatenate([np.asarray(leaf, np.float64).ravel() for leaf in leaves]).tolist()


def _relative_error(tree, reference) -> float:
    """Largest ``|a - b|`` of any float leaf over that leaf's largest ``|b|``.

    Leaves at float-noise level (a conv bias that BatchNorm cancels has a
    gradient of ~1e-9) are measured against a floor of 1e-3 of the largest
    value in the tree, so that their noise does not count as a difference.
    """
    import jax
    import numpy as np

    pairs = [
        (np.asarray(a, np.float64), np.asarray(b, np.float64))
        for a, b in zip(
            jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(reference), strict=True
        )
        if np.issubdtype(np.asarray(b).dtype, np.floating)
    ]
    floor = 1e-3 * max(float(np.abs(b).max(initial=0.0)) for _, b in pairs)
    return max(
        float(np.abs(a - b).max(initial=0.0)) / max(float(np.abs(b).max(initial=0.0)), floor)
        for a, b in pairs
    )


def _tiny_config(parallel_mode: str, accum: int, cross_bn: bool, dropout: float):
    from experiments.configs import base

    config = base.get_config("stgcn")
    config.model.channels = (8, 8)
    config.model.strides = (1, 2)
    config.model.dropout = dropout
    config.train.parallel = parallel_mode
    config.train.accum_steps = accum
    config.train.cross_replica_bn = cross_bn
    config.train.batch_size = BATCH
    return config


def run_steps(spec: dict[str, Any]) -> dict[str, Any]:
    import jax
    import numpy as np

    from smg_jax.train import errors, losses, optim, parallel, setup
    from smg_jax.train import state as state_lib

    rng = np.random.default_rng(0)
    batches = [
        {
            "x": rng.normal(size=(BATCH, 1, FRAMES, JOINTS, 3)).astype(np.float32),
            "label": rng.integers(0, CLASSES, size=BATCH).astype(np.int32),
            "mask": np.ones(BATCH, bool),
        }
        for _ in range(STEPS)
    ]
    out: dict[str, Any] = {"devices": jax.device_count(), "variants": {}}
    trajectories: dict[str, list[Any]] = {}  # the one-device runs' states, step by step
    # Dropout and placement do not change the variables: initialise (and compile init) once.
    variables = state_lib.init_variables(
        setup.make_model(_tiny_config("none", 1, True, 0.0), CLASSES),
        jax.random.PRNGKey(0),
        (1, 1, FRAMES, JOINTS, 3),
    )
    for name, (mode, accum, cross_bn, dropout) in VARIANTS.items():
        config = _tiny_config(mode, accum, cross_bn, dropout)
        model = setup.make_model(config, CLASSES)
        schedule = optim.make_schedule(config, steps_per_epoch=10, total_epochs=2)
        tx = optim.make_optimizer(config, schedule)
        placement = parallel.make_placement(config)
        fresh = state_lib.create_train_state(variables, tx, jax.random.PRNGKey(1))
        state = placement.put_state(fresh)
        train_step, eval_step = parallel.make_steps(
            placement,
            parallel.training_model(model, config),
            tx=tx,
            loss_fn=losses.make_loss(config),
            schedule=schedule,
            accum_steps=accum,
        )
        step_losses, trajectory = [], [jax.tree_util.tree_map(np.asarray, fresh)]
        for batch in batches:
            state, metrics = train_step(state, placement.put_train_batch(batch))
            step_losses.append(float(metrics["loss"]))
            host = placement.checkpoint_state(state)
            trajectory.append(jax.tree_util.tree_map(np.asarray, host))
        logits = placement.host_rows(eval_step(state, placement.put_eval_batch(batches[0])))
        if mode == "none":
            trajectories[name] = trajectory
        # One step from the one-device state: only summation order may differ. (Free runs
        # drift further: a ReLU input within float noise of zero can flip.)
        reference = trajectories[REFERENCE[name]]
        step_errors = []
        for before, after, batch in zip(reference, reference[1:], batches, strict=False):
            stepped, _ = train_step(placement.put_state(before), placement.put_train_batch(batch))
            step_errors.append(_relative_error(placement.checkpoint_state(stepped), after))
        out["variants"][name] = {
            "losses": step_losses,
            "params": _flat(trajectory[-1].params),
            "batch_stats": _flat(trajectory[-1].batch_stats),
            "logits": np.asarray(logits, np.float64).ravel().tolist(),
            "step": int(trajectory[-1].step),
            "step_errors": step_errors,
        }
    config = _tiny_config("mesh", 1, True, 0.0)
    config.train.batch_size = 18
    try:
        parallel.make_placement(config)
        out["indivisible_error"] = None
    except errors.ConfigError as err:
        out["indivisible_error"] = str(err)
    return out


def run_train(spec: dict[str, Any]) -> dict[str, Any]:
    import jax

    from experiments.configs import base
    from smg_jax.train import distributed, engine, loop

    check_preemption = distributed.preemption_requested
    settings = spec.get("distributed")
    if settings:
        # XLA:CPU has no cross-process collectives of its own; gloo provides them.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    out: dict[str, Any] = {"runs": {}}
    for run in spec["runs"]:
        config = base.get_config("stgcn")
        _apply(config, spec.get("base", {}))
        _apply(config, run.get("config", {}))
        if settings:
            config.distributed.enabled = True
            _apply(config, {f"distributed.{k}": v for k, v in settings.items()})
        saved = pathlib.Path(run["workdir"]) / "checkpoints"
        steps_before = (
            [int(d.name) for d in saved.iterdir() if d.name.isdigit()] if saved.is_dir() else []
        )
        sigterm = run.get("sigterm")

        def preemption_requested(step: int, local_flag: bool, sigterm=sigterm) -> bool:
            if sigterm and (jax.process_index(), step) == (sigterm["process"], sigterm["step"]):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(2.0)  # the notice travels to the coordinator and the other host
            return check_preemption(step, local_flag)

        distributed.preemption_requested = preemption_requested
        try:
            results = loop.train_and_evaluate(config, run["workdir"])
        except engine.Preempted as stop:
            out["runs"][run["name"]] = {
                "preempted": str(stop),
                "checkpoints": sorted(int(d.name) for d in saved.iterdir() if d.name.isdigit()),
            }
            continue
        finally:
            distributed.preemption_requested = check_preemption
        out["runs"][run["name"]] = {
            "checkpoint_before": max(steps_before, default=None),
            "final": results["final"],
            "history": results["history"],
            "best_test_epoch": results["best_test_epoch"],
        }
    from smg_jax.runtime import xla as jit

    out["process_wide_options"] = jit.process_wide_options()
    out["process_index"] = jax.process_index()
    out["process_count"] = jax.process_count()
    out["device_count"] = jax.device_count()
    return out


# ---------------------------------------------------------------------------
# Launching (used by the tests, in the pytest process).
# ---------------------------------------------------------------------------


def start(spec: dict[str, Any], folder: pathlib.Path, name: str) -> subprocess.Popen:
    """Starts a worker on ``spec`` (written to ``folder/name.json``); stdout+stderr to a log."""
    spec_path = folder / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    with open(folder / f"{name}.log", "w") as log:  # the child keeps its own handle
        return subprocess.Popen(
            [sys.executable, str(pathlib.Path(__file__).resolve()), str(spec_path)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def finish(process: subprocess.Popen, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Waits for a worker; its JSON result, or an error with the end of its log (also on a hang)."""
    log_path = pathlib.Path(process.args[-1]).with_suffix(".log")
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise RuntimeError(f"worker timed out after {timeout} s:\n{_tail(log_path)}") from None
    if process.returncode != 0:
        raise RuntimeError(f"worker exited with {process.returncode}:\n{_tail(log_path)}")
    return json.loads(pathlib.Path(spec["out"]).read_text())


def run(spec: dict[str, Any], folder: pathlib.Path, name: str, timeout: float) -> dict[str, Any]:
    """``start`` then ``finish``."""
    return finish(start(spec, folder, name), spec, timeout)


def finish_all(
    processes: list[subprocess.Popen], specs: list[dict[str, Any]], timeout: float
) -> list[dict[str, Any]]:
    """Waits for workers that depend on each other (the hosts of one run).

    When one fails the others would wait for it in a collective until JAX's
    heartbeat gives up, so they are killed at once and every log is shown.
    """
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in processes):
        failed = any(p.returncode not in (None, 0) for p in processes)
        if failed or time.monotonic() > deadline:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            logs = "\n".join(
                f"--- worker {i} (exit {p.returncode}) ---\n"
                f"{_tail(pathlib.Path(p.args[-1]).with_suffix('.log'))}"
                for i, p in enumerate(processes)
            )
            reason = "failed" if failed else f"timed out after {timeout} s"
            raise RuntimeError(f"a worker {reason}:\n{logs}")
        time.sleep(0.2)
    return [finish(p, spec, 0) for p, spec in zip(processes, specs, strict=True)]


def _tail(path: pathlib.Path, lines: int = 60) -> str:
    # XLA and gloo log a line per rank at startup; keep what explains a failure.
    text = [
        line
        for line in path.read_text(errors="replace").splitlines()
        if not line.startswith(("I0000", "W0000", "[Gloo]"))
    ]
    return "\n".join(text[-lines:])


def main(argv: list[str]) -> int:
    spec = json.loads(pathlib.Path(argv[1]).read_text())
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={int(spec['devices'])}"
    )
    os.environ["JAX_PLATFORMS"] = "cpu"  # simulated devices and gloo are CPU-only
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO_ROOT))
    task = {"steps": run_steps, "train": run_train}[spec["task"]]
    result = task(spec)
    pathlib.Path(spec["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
