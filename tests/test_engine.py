"""``smg_jax.train.engine``: stepping, the non-finite stop, cadences, SIGTERM save, records.

A toy step (a counter state, a loss read from a table) stands in for a
compiled model, so that every rule of the engine shows in a few steps.
"""

from __future__ import annotations

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smg_jax.train import checkpoint, engine, monitor
from smg_jax.train.state import TrainState


def toy_state(members: int | None = None) -> TrainState:
    shape = () if members is None else (members,)
    return TrainState(
        step=jnp.zeros(shape, jnp.int32),
        params={"w": jnp.zeros(shape)},
        batch_stats={},
        opt_state={},
        rng=jnp.zeros((*shape, 2), jnp.uint32),
    )


class Counter:
    """A data iterator whose position is the number of batches drawn."""

    def __init__(self) -> None:
        self.position = 0

    def __next__(self) -> dict:
        self.position += 1
        return {"x": np.float32(self.position)}

    def get_state(self) -> dict:
        return {"position": self.position}


def toy_step(losses: np.ndarray):
    """Step ``i`` (1-based) reports ``losses[i - 1]`` (per member when 2-D)."""

    def step(state, batch):
        del batch
        loss = np.asarray(losses[int(np.asarray(state.step).reshape(-1)[0])], np.float32)
        new = state.replace(step=state.step + 1, params={"w": state.params["w"] + 1.0})
        metrics = {
            "loss": loss,
            "finite": np.isfinite(loss),
            "lr": np.full_like(loss, 0.1),
            "grad_norm": np.ones_like(loss),
            "param_norm": np.ones_like(loss),
        }
        return new, metrics

    return step


def toy_evaluator(state, members):
    w = np.asarray(state.params["w"]).reshape(-1)
    return [
        engine.Evaluation(
            metrics={"score": float(w[m.index or 0])},
            scalars={"test/score": float(w[m.index or 0])},
            outputs=float(w[m.index or 0]),
        )
        for m in members
    ]


def make_engine(
    tmp_path, losses, *, stacked=None, total=6, checkpoint_every=2, eval_every=3, board=False
):
    count = 1 if stacked is None else stacked
    members = []
    for i in range(count):
        members.append(
            engine.Member(
                label=f"m{i} ",
                latest=checkpoint.Checkpointer(tmp_path / f"m{i}" / "checkpoints"),
                best=checkpoint.Checkpointer(tmp_path / f"m{i}" / "best", 1, "score"),
                board=monitor.TensorBoard(tmp_path / f"m{i}" / "tb", board),
                iterator=Counter(),
                index=None if stacked is None else i,
            )
        )
    cadence = engine.Cadence(
        total_steps=total,
        steps_per_epoch=3,
        batch_size=4,
        log_every=2,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
    )

    return engine.Engine(
        train_step=toy_step(np.asarray(losses)),
        next_batch=lambda: [next(m.iterator) for m in members],
        members=members,
        cadence=cadence,
        evaluator=toy_evaluator,
        checkpoint_state=jax_tree_slice,
        best_metric="score",
        progress_bar=False,
    )


def jax_tree_slice(state, member):
    if member.index is None:
        return state
    return jax.tree_util.tree_map(lambda leaf: leaf[member.index], state)


def test_record_round_trips_and_reads_metadata_that_predates_fields():
    record = engine.RunRecord()
    record.add_loss(2.0)
    record.add_loss(4.0)
    record.add_time(0.5)
    assert record.train_loss() == 3.0 and record.clips_per_second(8) == 16.0
    record.record({"step": 3, "score": 1.0})
    record.record({"step": 3, "score": 2.0})  # once per step
    assert record.history == [{"step": 3, "score": 1.0}] and record.epoch_loss == [0.0, 0]
    assert engine.RunRecord.from_meta(record.to_meta()) == record
    old = engine.RunRecord.from_meta({"history": [], "data": None, "epoch_loss": [1.0, 1]})
    assert old.train_time == [0, 0.0] and old.best is None


def test_engine_evaluates_checkpoints_and_finishes_at_the_cadence(tmp_path):
    trainer = make_engine(tmp_path, np.linspace(1.0, 0.5, 6))
    state, step = trainer.run(toy_state(), 0)
    assert step == 6 and int(state.step) == 6
    (member,) = trainer.members
    assert [row["step"] for row in member.record.history] == [3]  # step 6 is the final one
    assert member.record.train_time[0] == 5  # the first (compiling) step is not timed
    (final,) = trainer.finish(state, step)
    assert final.outputs == 6.0
    assert [row["step"] for row in member.record.history] == [3, 6]
    assert member.record.best["step"] == 6 and member.best.best_step() == 6
    assert member.latest.latest_step() == 6
    _, meta = member.latest.restore(toy_state())
    assert meta["data"] == {"position": 6} and meta["history"] == member.record.history


def test_non_finite_loss_stops_a_single_run(tmp_path):
    trainer = make_engine(tmp_path, [1.0, np.nan, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(FloatingPointError, match="Non-finite loss or gradient at step 2"):
        trainer.run(toy_state(), 0)


def test_a_non_finite_member_is_dropped_while_the_others_train_on(tmp_path):
    losses = np.ones((6, 2))
    losses[1, 0] = np.inf
    trainer = make_engine(tmp_path, losses, stacked=2)
    _, step = trainer.run(toy_state(2), 0)
    assert step == 6
    assert list(trainer.failed) == [0] and isinstance(trainer.failed[0], FloatingPointError)
    assert trainer.active() == [trainer.members[1]]
    assert trainer.members[0].latest.latest_step() is None  # dropped before its first save
    assert trainer.members[1].latest.latest_step() == 6


def test_each_stacked_member_writes_its_own_tensorboard(tmp_path):
    trainer = make_engine(tmp_path, np.ones((6, 2)), stacked=2, board=True)
    state, step = trainer.run(toy_state(2), 0)
    trainer.finish(state, step)
    for i in range(2):
        assert list((tmp_path / f"m{i}" / "tb").glob("events.out.tfevents.*"))


def test_a_hook_may_change_the_state_and_stop_the_run_after_its_checkpoint(tmp_path):
    trainer = make_engine(tmp_path, np.ones(6), checkpoint_every=100)
    seen = []

    def hook(engine_, state, step, out):
        seen.append(step)
        if step == 4:
            engine_.stop()
            return state.replace(params={"w": state.params["w"] + 100.0})
        return state

    trainer.hooks = (hook,)
    state, step = trainer.run(toy_state(), 0)
    assert seen == [1, 2, 3, 4] and step == 4
    assert float(state.params["w"]) == 104.0
    assert trainer.members[0].latest.latest_step() == 4  # checkpointed though not at the cadence


def test_sigterm_saves_then_raises_preempted(tmp_path):
    trainer = make_engine(tmp_path, np.ones(6), checkpoint_every=100)
    step_fn = trainer.train_step

    def step_then_sigterm(state, batch):
        out = step_fn(state, batch)
        if int(out[0].step) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    trainer.train_step = step_then_sigterm
    with pytest.raises(engine.Preempted, match="SIGTERM: saved checkpoint at step 2"):
        trainer.run(toy_state(), 0)
    assert trainer.members[0].latest.latest_step() == 2


def test_unknown_train_scalar_is_refused(tmp_path):
    with pytest.raises(ValueError, match="train_scalars"):
        engine.Engine(
            train_step=toy_step(np.ones(1)),
            next_batch=dict,
            members=[],
            cadence=engine.Cadence(1, 1, 1, 1, 0, 1),
            evaluator=toy_evaluator,
            checkpoint_state=lambda state, member: state,
            train_scalars=("top1",),
        )
