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

Both run on ``engine.Engine``: each seed has the loop's TensorBoard events
and a SIGTERM saves every seed before exiting (a group killed otherwise
resumes from its last common checkpoint). A seed whose loss or gradient
turns non-finite is dropped from the group with the loop's
``FloatingPointError`` while the others train on.
"""

from __future__ import annotations

import copy
import functools
import logging
import pathlib
import shutil
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from smg_jax import metrics
from smg_jax.data import pipeline
from smg_jax.runtime import xla
from smg_jax.train import engine, loop, parallel, setup, steps
from smg_jax.train import state as state_lib
from smg_jax.train.errors import ConfigError

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
      ConfigError: a workdir holds a run of another config.
      Preempted: after a SIGTERM, once every seed's checkpoint is saved.
      Anything that stops every seed (data, model, config errors).
    """
    seeds = [int(s) for s in workdirs]
    if not seeds:
        return {}
    if parallel.parallel_mode(config) != "none":
        raise ConfigError(
            f"train.parallel={config.train.parallel!r}: vmapped seeds train on one device; "
            "set train.parallel='none', or train the seeds one by one (loop.train_and_evaluate)."
        )
    dirs = {s: pathlib.Path(workdirs[s]) for s in seeds}
    configs = {s: seed_config(config, s) for s in seeds}
    for s in seeds:
        dirs[s].mkdir(parents=True, exist_ok=True)
        setup.check_resume_config(dirs[s], configs[s])

    # The same setup as loop.train_and_evaluate; nothing here depends on the seed.
    data = loop.load_data(config)
    recipe = loop.make_recipe(config, data)
    members, stacked = _restore_members(configs, dirs, recipe, data)
    num_params = state_lib.count_params(unstack(stacked.params, 0))
    log.info(
        "%s: %d train / %d test clips; model %s (%s parameters) x %d seeds %s in one "
        "program; %d steps of batch %d",
        *(data.description, len(data.train), len(data.test), config.model.name),
        *(f"{num_params:,}", len(seeds), seeds, recipe.cadence.total_steps),
        recipe.cadence.batch_size,
    )
    train_step, eval_fn = _vmapped_steps(config, recipe)
    trainer = engine.Engine(
        train_step=train_step,
        # Every seed's iterator advances, failed ones too, so the stacked batch stays whole.
        next_batch=lambda: stack_batches([next(m.iterator) for m in members]),
        members=members,
        cadence=recipe.cadence,
        evaluator=loop.test_evaluator(config, data, recipe.preset, eval_fn),
        checkpoint_state=lambda state, member: unstack(state, member.index),
        best_metric=config.eval.best_metric,
        description=f"train {config.model.name} x{len(seeds)} seeds",
        progress_bar=bool(config.train.progress_bar),
    )
    stacked, step = trainer.run(stacked, int(stacked.step[0]))
    finals = trainer.finish(stacked, step)
    outcome: dict[int, dict[str, Any] | Exception] = {
        seeds[position]: error for position, error in trainer.failed.items()
    }
    for member, final in zip(trainer.active(), finals, strict=True):
        s = seeds[member.index]
        results = loop.write_results(
            configs[s], dirs[s], data, final.outputs, member.record, num_params, recipe.preset
        )
        results["vmapped_seeds"] = len(seeds)
        metrics.write_json(results, dirs[s] / "results.json")
        outcome[s] = results
    return {s: outcome[s] for s in seeds}


def _restore_members(
    configs: dict[int, ml_collections.ConfigDict],
    dirs: dict[int, pathlib.Path],
    recipe: loop.Recipe,
    data: loop.Data,
) -> tuple[list[engine.Member], state_lib.TrainState]:
    """One member per seed, each fresh or restored at the group's common step (its data
    iterator at the saved position); the stacked state."""
    resume_step = common_resume_step(list(dirs.values()))
    members, states = [], []
    for index, (s, config) in enumerate(configs.items()):
        for folder in ("checkpoints", "best"):
            _drop_checkpoints_after(dirs[s] / folder, resume_step)
        fresh = setup.fresh_state(
            config, recipe.model, recipe.num_classes, recipe.input_shape, s, recipe.tx
        )
        member = setup.make_member(config, dirs[s], config.eval.best_metric, label=f"seed {s} ")
        member.index = index
        if resume_step is not None:
            fresh = member.restore(fresh, resume_step)
        member.iterator = pipeline.train_iterator(
            data.train,
            recipe.preset,
            batch_size=recipe.cadence.batch_size,
            seed=s,
            num_threads=int(config.data.num_threads),
            state=member.record.data,
        )
        members.append(member)
        states.append(fresh)
    if resume_step is not None:
        log.info("Resumed seeds %s at step %d", list(configs), resume_step)
    return members, stack(states)


def _vmapped_steps(config: ml_collections.ConfigDict, recipe: loop.Recipe):
    """The train step over stacked states and batches, and the eval step ``-> (B, S, K)``."""
    train_step = xla.jit(
        jax.vmap(
            functools.partial(
                steps.train_step,
                model=recipe.model,
                tx=recipe.tx,
                loss_fn=recipe.loss_fn,
                schedule=recipe.schedule,
                accum_steps=int(config.train.accum_steps),
            )
        ),
        donate_argnums=(0,),
    )
    seed_eval = jax.vmap(functools.partial(steps.eval_step, model=recipe.model), in_axes=(0, None))

    @functools.partial(xla.jit, inference=True, model_name=config.model.name)
    def eval_fn(train_state, batch):
        # (S, B, K) -> (B, S, K): setup.predict keeps rows by batch position, so
        # it returns (N, S, K), every seed's logits for each test example.
        return jnp.swapaxes(seed_eval(train_state, batch), 0, 1)

    return train_step, eval_fn
