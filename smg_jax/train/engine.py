"""The training engine: the one loop every task configures.

A task hands the engine a jitted ``train_step(state, batch) -> (state,
metrics)``, a way to draw the next batch, the runs (``Member``) it trains and
a ``Cadence``; the engine steps, times the steps, stops on a non-finite loss
or gradient, shows a tqdm bar, writes TensorBoard scalars, checkpoints at the
cadence, saves and exits on SIGTERM, and calls the task's evaluator at the
evaluation cadence (an evaluator, as in big_vision, is a callable that
returns metrics; the engine keeps the history and the best checkpoint).
Hooks run after every step and may change the state or stop the run: the
online networks' epoch-end validation, early stopping and learning rate on
plateau are hooks (``smg_jax.online.training``).

One state may carry several runs stacked along a leading axis (the vmapped
seeds): each ``Member`` then owns slice ``index`` of the state and of every
per-step metric, its own record, checkpoints and TensorBoard folder, and a
member whose loss turns non-finite is dropped while the others train on.

Everything besides the state that a resumed run needs to continue
identically is the member's ``RunRecord``, saved as the checkpoint's
metadata; since the data order, dropout keys and augmentation draws are
functions of the seed and the step, a resumed run ends with the numbers of
an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import numpy as np
from tqdm.auto import tqdm

from smg_jax.train import checkpoint, distributed, monitor
from smg_jax.train.state import TrainState

log = logging.getLogger(__name__)

Batch = dict[str, Any]
StepFn = Callable[[Any, Batch], tuple[Any, dict[str, jax.Array]]]
# The TensorBoard scalars a run may log after its train steps, besides ``train/loss``.
TRAIN_SCALARS = (
    "accuracy", "lr", "grad_norm", "param_norm", "clips_per_second", "steps_per_second"
)  # fmt: skip


class Preempted(SystemExit):
    """Raised after a SIGTERM once the checkpoint is safely written."""


# ---------------------------------------------------------------------------
# What a run carries besides its state.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class RunRecord:
    """A run's history and counters: the checkpoint metadata of exact resume.

    ``epoch_loss`` is ``[sum, count]`` of the train losses since the last
    evaluation; ``train_time`` is ``[steps timed, seconds]`` of the train
    steps alone (no evaluation, checkpoint or compilation), summed over the
    invocations of a resumed run: the throughput. ``data`` is the data
    iterator's position at the last save.
    """

    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best: dict[str, Any] | None = None
    data: Any = None
    epoch_loss: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0])
    train_time: list[float] = dataclasses.field(default_factory=lambda: [0, 0.0])

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> RunRecord:
        """The record saved as ``meta`` (fields it predates keep their defaults)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in meta.items() if key in names})

    def to_meta(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def add_loss(self, loss: float) -> None:
        self.epoch_loss = [self.epoch_loss[0] + loss, self.epoch_loss[1] + 1]

    def add_time(self, seconds: float) -> None:
        self.train_time = [self.train_time[0] + 1, self.train_time[1] + seconds]

    def clips_per_second(self, batch_size: int) -> float | None:
        """Training clips per second of train-step time (``None`` when no step was timed)."""
        steps, seconds = self.train_time
        return steps * batch_size / seconds if steps and seconds > 0 else None

    def record(self, row: dict[str, Any]) -> None:
        """Appends an evaluation row (once per step) and starts a new epoch-loss sum."""
        if not self.history or self.history[-1]["step"] != row["step"]:
            self.history.append(row)
            self.epoch_loss = [0.0, 0]

    def train_loss(self) -> float:
        loss_sum, loss_count = self.epoch_loss
        return loss_sum / max(loss_count, 1)


@dataclasses.dataclass
class Member:
    """One run the engine trains: slice ``index`` of a stacked state (``None``: the whole state).

    ``label`` prefixes its messages (``""``, ``"seed 3 "``, ``"fold 2 "``);
    ``iterator`` is its data iterator (whose ``get_state`` is checkpointed).
    """

    label: str
    latest: checkpoint.Checkpointer
    board: monitor.TensorBoard
    iterator: Any = None
    best: checkpoint.Checkpointer | None = None
    index: int | None = None
    record: RunRecord = dataclasses.field(default_factory=RunRecord)

    def restore(self, target: TrainState, step: int | None = None) -> TrainState | None:
        """Restores checkpoint ``step`` (default: latest) and its record; ``None``: none saved."""
        restored = self.latest.restore(target, step)
        if restored is None:
            return None
        state, meta = restored
        self.record = type(self.record).from_meta(meta)
        return state


# ---------------------------------------------------------------------------
# Evaluation.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Evaluation:
    """What an evaluator found for one member.

    ``metrics`` go into the history row (after ``step``, ``epoch`` and
    ``train_loss``), ``scalars`` to TensorBoard, ``summary`` (if any) to the
    console after ``"epoch E: "``; ``outputs`` (logits, reports) come back
    from the final evaluation.
    """

    metrics: dict[str, float]
    scalars: dict[str, float]
    summary: str | None = None
    outputs: Any = None


class Evaluator(Protocol):
    """Scores ``state`` for ``members``: one ``Evaluation`` each, in their order."""

    def __call__(self, state: Any, members: Sequence[Member]) -> list[Evaluation]: ...


class Hook(Protocol):
    """Runs after every train step (after logging, before evaluation and checkpointing).

    Returns the state to train on (a hook may change it, e.g. the learning
    rate); ``engine.stop()`` ends the run after this step's checkpoint.
    """

    def __call__(self, engine: Engine, state: Any, step: int, out: dict[str, Any]) -> Any: ...


# ---------------------------------------------------------------------------
# The engine.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cadence:
    """How long a run trains and how often it logs, evaluates and checkpoints, in steps.

    ``eval_every = 0`` evaluates only after the last step; ``checkpoint_epochs``
    also checkpoints at every epoch end.
    """

    total_steps: int
    steps_per_epoch: int
    batch_size: int
    log_every: int
    eval_every: int
    checkpoint_every: int
    checkpoint_epochs: bool = False

    def checkpoints_at(self, step: int) -> bool:
        epoch_end = self.checkpoint_epochs and step % self.steps_per_epoch == 0
        every = self.checkpoint_every
        return epoch_end or step == self.total_steps or bool(every and step % every == 0)


@dataclasses.dataclass
class _Window:
    """Train losses since the last log line, per member position, and when the window began."""

    losses: list[float]
    accuracies: list[float]
    count: int = 0
    start: float = dataclasses.field(default_factory=time.perf_counter)


class Engine:
    """Trains ``members`` with ``train_step`` at ``cadence`` (see the module docstring).

    Args:
      train_step: the jitted step; with members that have an ``index``, every
        metric has a leading member axis.
      next_batch: the next global batch, placed as ``train_step`` wants it.
      members: the runs; their ``iterator`` positions and records are saved.
      cadence: durations and intervals.
      evaluator: scores a state for the members still training (``None``: the
        task evaluates in its hooks and does not call ``finish``).
      checkpoint_state: ``state, member -> TrainState`` to save (a host copy,
        or the member's slice of a stacked state).
      best_metric: the history field whose maximum is kept in ``member.best``.
      train_scalars: which of ``TRAIN_SCALARS`` to log besides ``train/loss``.
      lr_scale: ``state -> factor`` of the logged learning rate (an injected
        scale the schedule does not know of).
      hooks: run after every step, in order (``Hook``).
      description: the progress bar's.
      progress_bar: show it (process 0 only); ``primary`` prints evaluations.
    """

    def __init__(
        self,
        *,
        train_step: StepFn,
        next_batch: Callable[[], Batch],
        members: Sequence[Member],
        cadence: Cadence,
        evaluator: Evaluator | None,
        checkpoint_state: Callable[[Any, Member], TrainState],
        best_metric: str | None = None,
        train_scalars: Sequence[str] = ("lr", "grad_norm", "param_norm", "clips_per_second"),
        lr_scale: Callable[[Any], float] | None = None,
        hooks: Sequence[Hook] = (),
        description: str = "train",
        progress_bar: bool = True,
        primary: bool = True,
    ) -> None:
        unknown = sorted(set(train_scalars) - set(TRAIN_SCALARS))
        if unknown:
            raise ValueError(f"train_scalars {unknown}: choose from {list(TRAIN_SCALARS)}.")
        self.train_step, self.next_batch = train_step, next_batch
        self.members, self.cadence, self.evaluator = list(members), cadence, evaluator
        self.checkpoint_state, self.best_metric = checkpoint_state, best_metric
        self.train_scalars = tuple(train_scalars)
        self.description, self.progress_bar, self.primary = description, progress_bar, primary
        self.lr_scale, self.hooks = lr_scale, tuple(hooks)
        self.failed: dict[int, Exception] = {}
        self.stopped = False

    def stop(self) -> None:
        """Ends the run after the current step, which is checkpointed."""
        self.stopped = True

    def active(self) -> list[Member]:
        """The members still training (none of them stopped by a non-finite loss)."""
        return [m for position, m in enumerate(self.members) if position not in self.failed]

    def _positions(self) -> list[tuple[int, Member]]:
        return [(p, m) for p, m in enumerate(self.members) if p not in self.failed]

    def run(self, state: Any, step: int) -> tuple[Any, int]:
        """Trains from ``step`` to ``cadence.total_steps``; returns the state and the last step.

        Raises ``FloatingPointError`` when the only run turns non-finite and
        ``Preempted`` after a SIGTERM (checkpoint saved).
        """
        total = self.cadence.total_steps
        with monitor.Preemption() as preemption:
            bar = tqdm(
                total=total,
                initial=step,
                desc=self.description,
                unit="step",
                dynamic_ncols=True,
                disable=not (self.progress_bar and self.primary),
                file=sys.stderr,
            )
            window = self._new_window()
            compiled = False  # the first step of each invocation compiles: not timed
            while step < total and self.active() and not self.stopped:
                step_start = time.perf_counter()
                state, out = self.train_step(state, self.next_batch())
                step += 1
                losses = np.asarray(out["loss"]).reshape(-1)  # waits for the step to finish
                seconds = time.perf_counter() - step_start if compiled else None
                compiled = True
                self._account(step, out, losses, seconds, window)
                if not self.active():
                    break
                if step % self.cadence.log_every == 0 or step == total:
                    self._log(step, state, out, window, bar)
                    window = self._new_window()
                bar.update(1)
                for hook in self.hooks:
                    state = hook(self, state, step, out)
                every = self.cadence.eval_every
                if every and step % every == 0 and step < total:
                    self.evaluate(state, step)
                preempted = distributed.preemption_requested(step, preemption.requested)
                if self.cadence.checkpoints_at(step) or preempted or self.stopped:
                    self.save(state, step)
                if preempted:
                    self._stop(bar, step)
            bar.close()
        return state, step

    def _new_window(self) -> _Window:
        return _Window(losses=[0.0] * len(self.members), accuracies=[0.0] * len(self.members))

    def _account(self, step: int, out, losses: np.ndarray, seconds, window: _Window) -> None:
        """Adds a step's losses and time to each member; drops (or raises for) a non-finite one."""
        finite = np.asarray(out["finite"]).reshape(-1)
        accuracies = None
        if "accuracy" in self.train_scalars:  # read only when logged: one transfer less a step
            accuracies = np.asarray(out["accuracy"]).reshape(-1)
        window.count += 1
        for position, member in self._positions():
            row = member.index or 0
            loss = float(losses[row])
            if seconds is not None:
                member.record.add_time(seconds)
            window.losses[position] += loss
            if accuracies is not None:
                window.accuracies[position] += float(accuracies[row])
            member.record.add_loss(loss)
            if not bool(finite[row]):
                error = FloatingPointError(
                    f"{member.label}Non-finite loss or gradient at step {step} (loss {loss}); "
                    "lower optimizer.lr or check the data."
                )
                if member.index is None:
                    raise error
                self.failed[position] = error
                log.error("%sstopped: %s", member.label, error)

    def _log(self, step: int, state, out, window: _Window, bar) -> None:
        """TensorBoard scalars of the steps since the last log line, and the bar's postfix."""
        elapsed = max(time.perf_counter() - window.start, 1e-9)
        rates = {
            "clips_per_second": window.count * self.cadence.batch_size / elapsed,
            "steps_per_second": window.count / elapsed,
        }
        scale = 1.0 if self.lr_scale is None else self.lr_scale(state)
        for position, member in self._positions():
            row = member.index or 0
            scalars = {"train/loss": window.losses[position] / window.count}
            for name in self.train_scalars:
                if name in rates:
                    value = rates[name]
                elif name == "accuracy":
                    value = window.accuracies[position] / window.count
                else:
                    value = float(np.asarray(out[name]).reshape(-1)[row])
                scalars[f"train/{name}"] = value * scale if name == "lr" else value
            member.board.scalars(step, scalars)
        rate = (
            "clips_per_second" if "clips_per_second" in self.train_scalars else "steps_per_second"
        )
        bar.set_postfix(
            epoch=f"{step / self.cadence.steps_per_epoch:.1f}",
            loss=f"{scalars['train/loss']:.3f}",
            lr=f"{float(np.asarray(out['lr']).reshape(-1)[0]) * scale:.2g}",
            **{rate.replace("_per_second", "_s"): f"{rates[rate]:.1f}"},
        )

    def evaluate(self, state: Any, step: int) -> list[Evaluation]:
        """Runs the evaluator; records each active member's row, scalars and best checkpoint.

        Returns the evaluations in the order of ``active()``.
        """
        members = self.active()
        evaluations = self.evaluator(state, members)
        epoch = round(step / self.cadence.steps_per_epoch, 3)
        for member, found in zip(members, evaluations, strict=True):
            row = {"step": step, "epoch": epoch, "train_loss": member.record.train_loss()}
            row.update(found.metrics)
            member.record.record(row)
            member.board.scalars(step, found.scalars)
            if found.summary is not None and self.primary:
                text = f"{member.label}epoch {row['epoch']:.1f}: {found.summary}"
                tqdm.write(text, file=sys.stderr)
            if self.best_metric is not None and member.best is not None:
                best = member.record.best
                if best is None or row[self.best_metric] > best[self.best_metric]:
                    member.record.best = row
                    member.best.save(step, self.checkpoint_state(state, member), {"metrics": row})
        return evaluations

    def save(self, state: Any, step: int) -> None:
        """Saves each active member's latest checkpoint at ``step`` with its data position."""
        for member in self.active():
            if member.iterator is not None:
                member.record.data = member.iterator.get_state()
            member.latest.save(step, self.checkpoint_state(state, member), member.record.to_meta())

    def _stop(self, bar, step: int) -> None:
        bar.close()
        for member in self.members:
            member.board.close()
        where = ", ".join(str(m.latest.directory) for m in self.active())
        raise Preempted(
            f"SIGTERM: saved checkpoint at step {step} in {where}; run the same command "
            "again to resume."
        )

    def finish(self, state: Any, step: int) -> list[Evaluation]:
        """The final evaluation and checkpoint of every active member; closes TensorBoard.

        Returns the evaluations in the order of ``active()``.
        """
        evaluations = self.evaluate(state, step) if self.active() else []
        for member in self.active():
            member.record.data = member.iterator.get_state()
            saved = self.checkpoint_state(state, member)
            if member.latest.latest_step() == step:
                member.latest.overwrite_meta(step, saved, member.record.to_meta())
            else:
                member.latest.save(step, saved, member.record.to_meta())
        self.close()
        return evaluations

    def close(self) -> None:
        """Flushes and closes every member's TensorBoard writer."""
        for member in self.members:
            member.board.close()
