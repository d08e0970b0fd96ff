"""Several seeds of one config trained together: one compiled program, ``jax.vmap`` over seeds.

A small model leaves most of an accelerator idle; stacking ``S`` seeds'
train states along a leading axis and mapping ``steps.train_step`` over it
trains all ``S`` in the time of about one. Everything that depends on the
seed stays per seed, exactly as ``loop.train_and_evaluate`` makes it:

* the initial variables and the dropout key (``PRNGKey(seed)`` split the same way),
* the data order and augmentation draws (one ``TrainIterator`` per seed,
  whose batches are stacked along the seed axis),
* evaluation, history, best and latest checkpoints and the report files,
  written into each seed's own workdir in the loop's format.

So a seed trained here ends with the loop's numbers up to float round-off
(a vmapped convolution sums in another order), and its workdir is
interchangeable with a loop run's: either can resume the other's checkpoints.

Differences from the loop: no TensorBoard events and no SIGTERM handler (a
killed group resumes from its last common checkpoint). A seed whose loss or
gradient turns non-finite is dropped from the group with the loop's
``FloatingPointError`` while the others train on.
"""

from __future__ import annotations

import copy
import functools
import logging
import pathlib
import shutil
import sys
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from smg_jax import metrics
from smg_jax.data import pipeline
from smg_jax.runtime import xla
from smg_jax.train import checkpoint, loop, losses, optim, parallel, steps
from smg_jax.train import state as state_lib

log = logging.getLogger(__name__)


def seed_config(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``train.seed = seed``."""
    copied = copy.deepcopy(config)
    copied.train.seed = int(seed)
    return copied


def stack(trees: list[Any]) -> Any:
    """Stacks same-shaped trees (device arrays) along a new leading (seed) axis."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def stack_batches(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stacks host batches along a new leading (seed) axis, on the host."""
    return {key: np.stack([b[key] for b in batches]) for key in batches[0]}


def unstack(tree: Any, index: int) -> Any:
    """Slice ``index`` of a stacked tree."""
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


def _saved_steps(directory: pathlib.Path) -> set[int]:
    """Steps of the finished checkpoints in ``directory`` (orbax renames a step folder into
    its final, all-digit name only when it is complete)."""
    if not directory.is_dir():
        return set()
    return {int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit()}


def _drop_checkpoints_after(directory: pathlib.Path, step: int | None) -> None:
    """Deletes checkpoints newer than ``step`` (all of them for ``None``)."""
    for saved in _saved_steps(directory):
        if step is None or saved > step:
            log.warning(
                "Deleting %s: not every seed of the group reached it", directory / str(saved)
            )
            shutil.rmtree(directory / str(saved))


def common_resume_step(workdirs: list[pathlib.Path]) -> int | None:
    """The newest step every seed has a checkpoint of (``None``: start all afresh).

    Seeds are saved one after another, so a group killed mid-save has some
    seeds one checkpoint ahead; they go back to the common step.
    """
    shared = set.intersection(*(_saved_steps(w / "checkpoints") for w in workdirs))
    return max(shared) if shared else None


def train_and_evaluate_seeds(
    config: ml_collections.ConfigDict, workdirs: Mapping[int, str | pathlib.Path]
) -> dict[int, dict[str, Any] | Exception]:
    """Trains ``config`` once per seed, all seeds in one vmapped program.

    Args:
      config: the experiment config; its ``train.seed`` is replaced by each seed.
      workdirs: ``{seed: workdir}``, one loop-style workdir per seed (resumed
        when it holds checkpoints of the same config).

    Returns:
      ``{seed: results}`` with each seed's ``results.json`` dict (as the loop
      returns it, plus ``vmapped_seeds``), or the exception that stopped
      that seed (a non-finite loss).

    Raises:
      loop.ConfigError: a workdir holds a run of another config.
      Anything that stops every seed (data, model, config errors).
    """
    seeds = [int(s) for s in workdirs]
    if not seeds:
        return {}
    if parallel.parallel_mode(config) != "none":
        raise loop.ConfigError(
            f"train.parallel={config.train.parallel!r}: vmapped seeds train on one device; "
            "set train.parallel='none', or train the seeds one by one (loop.train_and_evaluate)."
        )
    dirs = {s: pathlib.Path(workdirs[s]) for s in seeds}
    configs = {s: seed_config(config, s) for s in seeds}
    for s in seeds:
        dirs[s].mkdir(parents=True, exist_ok=True)
        loop.check_resume_config(dirs[s], configs[s])

    # The same setup as loop.train_and_evaluate; nothing here depends on the seed.
    data = loop.load_data(config)
    num_classes = len(data.class_names)
    preset = loop.make_preset(config)
    model = loop.make_model(config, num_classes)
    tc = config.train
    batch_size = int(tc.batch_size)
    steps_per_epoch = max(1, len(data.train) // batch_size)
    total_steps = int(tc.epochs) * steps_per_epoch
    if tc.max_steps is not None:
        total_steps = min(total_steps, int(tc.max_steps))
    schedule = optim.make_schedule(config, steps_per_epoch, int(tc.epochs))
    tx = optim.make_optimizer(config, schedule)
    class_counts = np.bincount(data.train_labels, minlength=num_classes)
    loss_fn = losses.make_loss(config, class_counts=class_counts)
    num_joints = len(preset.layout.joint_names)
    input_shape = (1, int(config.model.get("num_persons", 1)), *preset.output_shape(num_joints))

    resume_step = common_resume_step(list(dirs.values()))
    states, metas, latest, best = [], {}, {}, {}
    for s in seeds:
        for folder in ("checkpoints", "best"):
            _drop_checkpoints_after(dirs[s] / folder, resume_step)
        init_rng, state_rng = jax.random.split(jax.random.PRNGKey(s))
        variables = loop.initial_variables(configs[s], model, num_classes, input_shape, init_rng)
        fresh = state_lib.create_train_state(variables, tx, state_rng)
        latest[s] = checkpoint.Checkpointer(
            dirs[s] / "checkpoints", max_to_keep=int(tc.keep_checkpoints)
        )
        best[s] = checkpoint.Checkpointer(
            dirs[s] / "best", max_to_keep=1, best_metric=config.eval.best_metric
        )
        metas[s] = {
            "history": [],
            "best": None,
            "data": None,
            "epoch_loss": [0.0, 0],
            "train_time": [0, 0.0],
        }
        if resume_step is not None:
            fresh, metas[s] = latest[s].restore(fresh, resume_step)
            metas[s].setdefault("train_time", [0, 0.0])
        states.append(fresh)
    if resume_step is not None:
        log.info("Resumed seeds %s at step %d", seeds, resume_step)
    num_params = state_lib.count_params(states[0].params)
    stacked = stack(states)
    del states

    train_step = xla.jit(
        jax.vmap(
            functools.partial(
                steps.train_step,
                model=model,
                tx=tx,
                loss_fn=loss_fn,
                schedule=schedule,
                accum_steps=int(tc.accum_steps),
            )
        ),
        donate_argnums=(0,),
    )
    seed_eval = jax.vmap(functools.partial(steps.eval_step, model=model), in_axes=(0, None))

    @functools.partial(xla.jit, inference=True, model_name=config.model.name)
    def eval_fn(train_state, batch):
        # (S, B, K) -> (B, S, K): loop.predict keeps rows by batch position, so
        # it returns (N, S, K), every seed's logits for each test example.
        return jnp.swapaxes(seed_eval(train_state, batch), 0, 1)

    threads = int(config.data.num_threads)
    iterators = {
        s: pipeline.train_iterator(
            data.train,
            preset,
            batch_size=batch_size,
            seed=s,
            num_threads=threads,
            state=metas[s].get("data"),
        )
        for s in seeds
    }
    log.info(
        "%s: %d train / %d test clips; model %s (%s parameters) x %d seeds %s in one "
        "program; %d steps of batch %d",
        data.description,
        len(data.train),
        len(data.test),
        config.model.name,
        f"{num_params:,}",
        len(seeds),
        seeds,
        total_steps,
        batch_size,
    )
    failed: dict[int, Exception] = {}

    def active() -> list[tuple[int, int]]:
        return [(i, s) for i, s in enumerate(seeds) if s not in failed]

    def evaluate_and_record(step: int) -> dict[int, dict[str, Any]]:
        logits = loop.predict(
            eval_fn, stacked, data.test, preset, int(config.eval.batch_size), threads
        )
        finals = {}
        for i, s in active():
            meta = metas[s]
            report = metrics.classification_report(logits[:, i], data.test_labels, data.class_names)
            loss_sum, loss_count = meta["epoch_loss"]
            row = {
                "step": step,
                "epoch": round(step / steps_per_epoch, 3),
                "train_loss": loss_sum / max(loss_count, 1),
                "top1": report["top1"],
                "top5": report["top5"],
                "mean_class_accuracy": report["mean_class_accuracy"],
            }
            if not meta["history"] or meta["history"][-1]["step"] != step:
                meta["history"].append(row)
                meta["epoch_loss"] = [0.0, 0]
            metric = config.eval.best_metric
            if meta["best"] is None or row[metric] > meta["best"][metric]:
                meta["best"] = row
                best[s].save(step, unstack(stacked, i), {"metrics": row})
            finals[s] = {"logits": logits[:, i], "report": report}
        tops = ", ".join(f"seed {s} {100 * f['report']['top1']:.2f}" for s, f in finals.items())
        tqdm.write(f"epoch {step / steps_per_epoch:.1f}: test top-1 % {tops}", file=sys.stderr)
        return finals

    def save_latest(step: int) -> None:
        for i, s in active():
            metas[s]["data"] = iterators[s].get_state()
            latest[s].save(step, unstack(stacked, i), metas[s])

    step = int(stacked.step[0])
    eval_every = max(1, int(config.eval.every_epochs)) * steps_per_epoch
    checkpoint_every = int(tc.checkpoint_every_steps) or steps_per_epoch
    bar = tqdm(
        total=total_steps,
        initial=step,
        desc=f"train {config.model.name} x{len(seeds)} seeds",
        unit="step",
        dynamic_ncols=True,
        disable=not tc.progress_bar,
        file=sys.stderr,
    )
    compiled = False  # the first step compiles: not timed
    while step < total_steps and len(failed) < len(seeds):
        step_start = time.perf_counter()
        # Every seed's iterator advances, failed ones too, so the stacked batch stays whole.
        batch = stack_batches([next(iterators[s]) for s in seeds])
        stacked, step_metrics = train_step(stacked, batch)
        step += 1
        step_losses = np.asarray(step_metrics["loss"])  # waits for the step to finish
        finite = np.asarray(step_metrics["finite"])
        seconds = time.perf_counter() - step_start
        for i, s in active():
            meta = metas[s]
            if compiled:
                meta["train_time"] = [meta["train_time"][0] + 1, meta["train_time"][1] + seconds]
            meta["epoch_loss"] = [
                meta["epoch_loss"][0] + float(step_losses[i]),
                meta["epoch_loss"][1] + 1,
            ]
            if not bool(finite[i]):
                failed[s] = FloatingPointError(
                    f"Non-finite loss or gradient at step {step} (loss {float(step_losses[i])}); "
                    "lower optimizer.lr or check the data."
                )
                log.error("Seed %d stopped: %s", s, failed[s])
        compiled = True
        bar.update(1)
        if not active():
            break
        if step % eval_every == 0 and step < total_steps:
            evaluate_and_record(step)
        if step % checkpoint_every == 0 or step == total_steps:
            save_latest(step)
    bar.close()

    outcome: dict[int, dict[str, Any] | Exception] = dict(failed)
    if active():
        finals = evaluate_and_record(step)
        for i, s in active():
            metas[s]["data"] = iterators[s].get_state()
            if latest[s].latest_step() == step:
                latest[s].overwrite_meta(step, unstack(stacked, i), metas[s])
            else:
                latest[s].save(step, unstack(stacked, i), metas[s])
            results = loop.write_results(
                configs[s], dirs[s], data, finals[s], metas[s], num_params, preset
            )
            results["vmapped_seeds"] = len(seeds)
            metrics.write_json(results, dirs[s] / "results.json")
            outcome[s] = results
    return {s: outcome[s] for s in seeds}
