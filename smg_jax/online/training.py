"""Training the online recognizers' networks with our optax training code.

``fit`` runs ``smg_jax.train.steps.train_step`` on the training engine
(``smg_jax.train.engine``) over batches that are a pure function of the step
(``batch_fn(step)``), so a resumed run replays exactly the same batches. Its
engine hooks add what the classification loop does not need but the
authors' Keras recipe does: a validation split at every epoch end
(``EpochSummary``), early stopping (``EarlyStopping``) and a learning rate
halved on plateaus (``ReduceLROnPlateau``), Keras 2 semantics, with their
state kept in the checkpoint (``FitRecord``). It checkpoints at every epoch
end (and every ``checkpoint_every_steps``) and on SIGTERM, logs to
TensorBoard and shows a tqdm progress bar.

Layout under ``workdir``: ``checkpoints/<step>/{state,meta}``,
``tensorboard/``, ``history.json``.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import itertools
import logging
import math
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from smg_jax import metrics
from smg_jax.online.errors import OnlineError
from smg_jax.train import checkpoint, engine, monitor, optim, parallel
from smg_jax.train import state as state_lib

log = logging.getLogger(__name__)

Batch = dict[str, np.ndarray]


# ---------------------------------------------------------------------------
# Optimizer with an adjustable learning-rate factor.
# ---------------------------------------------------------------------------


def make_optimizer(
    config: ml_collections.ConfigDict, steps_per_epoch: int, epochs: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer of a network section (``optimizer`` + ``schedule`` fields) and its schedule.

    ``optimizer.name``: ``rmsprop`` (Keras' RMSprop: ``rho``, ``eps`` added
    outside the square root, no momentum; what the authors' emission network
    uses) or any name of ``smg_jax.train.optim.OPTIMIZERS``. A final
    ``scale`` stage with an injected ``step_size`` (1.0) lets the plateau
    rule lower the rate without touching the schedule; it lives in the
    optimizer state, so it is checkpointed.
    """
    schedule = optim.make_schedule(config, steps_per_epoch, epochs)
    opt = config.optimizer
    if opt.name == "rmsprop":
        base = optax.rmsprop(schedule, decay=float(opt.rho), eps=float(opt.eps), eps_in_sqrt=False)
    elif opt.name in optim.OPTIMIZERS:
        base = optim.make_optimizer(config, schedule)
    else:
        raise OnlineError(
            f"Unknown optimizer {opt.name!r}; choose from ['rmsprop', *{list(optim.OPTIMIZERS)}]."
        )
    factor = optax.inject_hyperparams(optax.scale)(step_size=1.0)
    return optax.chain(base, factor), schedule


def _lr_factor(state: state_lib.TrainState) -> float:
    return float(state.opt_state[1].hyperparams["step_size"])


def _set_lr_factor(state: state_lib.TrainState, value: float) -> state_lib.TrainState:
    inner = state.opt_state[1]
    hyper = dict(inner.hyperparams)
    hyper["step_size"] = jnp.asarray(value, jnp.asarray(hyper["step_size"]).dtype)
    return state.replace(opt_state=(state.opt_state[0], inner._replace(hyperparams=hyper)))


# ---------------------------------------------------------------------------
# Keras callbacks, as pure state updates.
# ---------------------------------------------------------------------------


def early_stopping_update(
    callback: dict[str, Any], value: float, patience: int
) -> tuple[dict[str, Any], bool]:
    """Keras ``EarlyStopping(mode="max", min_delta=0)`` after one epoch: ``(state, stop)``."""
    best, wait = callback.get("best"), int(callback.get("wait", 0))
    if best is None or value > best:
        best, wait = value, 0
    else:
        wait += 1
    return {"best": best, "wait": wait}, wait >= patience


def plateau_update(
    callback: dict[str, Any],
    value: float,
    lr: float,
    *,
    factor: float,
    patience: int,
    min_lr: float,
    min_delta: float = 1e-4,
) -> tuple[dict[str, Any], float]:
    """Keras ``ReduceLROnPlateau(mode="min")`` after one epoch: ``(state, new learning rate)``."""
    best, wait = callback.get("best"), int(callback.get("wait", 0))
    if best is None or value < best - min_delta:
        return {"best": value, "wait": 0}, lr
    wait += 1
    if wait >= patience:
        if lr > min_lr:
            lr = max(lr * factor, min_lr)
        wait = 0
    return {"best": best, "wait": wait}, lr


# ---------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class FitSettings:
    """How long and how watched a network trains (from a config ``train`` section).

    ``early_stopping_patience`` / ``plateau_patience`` of 0 disable the rule;
    both need ``validate``. ``max_steps`` cuts the run short (smoke tests).
    """

    epochs: int
    steps_per_epoch: int
    base_lr: float
    log_every_steps: int = 50
    checkpoint_every_steps: int = 0  # 0: epoch ends only
    keep_checkpoints: int = 2
    progress_bar: bool = True
    tensorboard: bool = True
    max_steps: int | None = None
    early_stopping_patience: int = 0
    plateau_patience: int = 0
    plateau_factor: float = 0.5
    plateau_min_lr: float = 0.0

    def total_steps(self) -> int:
        """``epochs`` of ``steps_per_epoch``, or ``max_steps`` if fewer."""
        total = self.epochs * self.steps_per_epoch
        return total if self.max_steps is None else min(total, self.max_steps)

    def cadence(self) -> engine.Cadence:
        """Logging every ``log_every_steps``; checkpoints at epoch ends and every
        ``checkpoint_every_steps``; evaluation is the epoch-end hooks' (none by the engine)."""
        return engine.Cadence(
            total_steps=self.total_steps(),
            steps_per_epoch=self.steps_per_epoch,
            batch_size=1,
            log_every=max(self.log_every_steps, 1),
            eval_every=0,
            checkpoint_every=self.checkpoint_every_steps,
            checkpoint_epochs=True,
        )

    @classmethod
    def from_config(cls, train: ml_collections.ConfigDict, steps_per_epoch: int, base_lr: float):
        return cls(
            epochs=int(train.epochs),
            steps_per_epoch=int(steps_per_epoch),
            base_lr=float(base_lr),
            log_every_steps=int(train.log_every_steps),
            checkpoint_every_steps=int(train.checkpoint_every_steps),
            keep_checkpoints=int(train.keep_checkpoints),
            progress_bar=bool(train.progress_bar),
            tensorboard=bool(train.tensorboard),
            max_steps=None if train.max_steps is None else int(train.max_steps),
            early_stopping_patience=int(train.get("early_stopping_patience", 0)),
            plateau_patience=int(train.get("plateau_patience", 0)),
            plateau_factor=float(train.get("plateau_factor", 0.5)),
            plateau_min_lr=float(train.get("plateau_min_lr", 0.0)),
        )


def epoch_batch_indices(
    num_examples: int, batch_size: int, seed: int, step: int, steps_per_epoch: int
) -> np.ndarray:
    """Example indices of batch ``step``: a fresh permutation per epoch, the remainder skipped.

    Drops the remainder instead of padding so that every BatchNorm batch is
    real data (Keras would run one smaller last batch); a different
    remainder is skipped each epoch.
    """
    epoch, position = divmod(step, steps_per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    picks = (position * batch_size + np.arange(batch_size)) % num_examples
    return order[picks]


@dataclasses.dataclass
class FitRecord(engine.RunRecord):
    """The engine's record plus the Keras callbacks' state: ``fit``'s checkpoint metadata.

    ``epoch_sums`` is ``[loss sum, accuracy sum, steps]`` of the current epoch.
    """

    epoch_sums: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0, 0])
    early_stopping: dict[str, Any] = dataclasses.field(default_factory=dict)
    plateau: dict[str, Any] = dataclasses.field(default_factory=dict)
    stopped_early: bool = False


def fit(
    *,
    name: str,
    workdir: pathlib.Path,
    model: Any,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
    state: state_lib.TrainState,
    batch_fn: Callable[[int], Batch],
    settings: FitSettings,
    validate: Callable[[state_lib.TrainState], dict[str, float]] | None = None,
) -> tuple[state_lib.TrainState, list[dict[str, Any]]]:
    """Trains ``state`` on the engine, or resumes it from ``workdir/checkpoints``.

    A run is done when it reached ``epochs`` (or ``max_steps``) or stopped early; calling
    ``fit`` again then only restores the final state (a larger ``max_steps`` continues it).

    Args:
      name: shown on the progress bar and in logs.
      workdir: this network's folder.
      model, tx, schedule, loss_fn: bound into ``steps.train_step``.
      state: the fresh state (the restore target).
      batch_fn: ``step -> {"x", "label", "mask"}``, a pure function of the step.
      settings: durations and the Keras callbacks.
      validate: ``state -> {"loss", "accuracy"}`` on held-out rows, run at
        every epoch end (needed by early stopping and the plateau rule).

    Returns:
      ``(state, history)``; ``history`` has one row per finished epoch.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if (settings.early_stopping_patience or settings.plateau_patience) and validate is None:
        raise OnlineError(f"{name}: early stopping and the plateau rule need a validation split.")
    member = engine.Member(
        label=f"{name}: ",
        latest=checkpoint.Checkpointer(
            workdir / "checkpoints", max_to_keep=max(int(settings.keep_checkpoints), 1)
        ),
        board=monitor.TensorBoard(workdir / "tensorboard", settings.tensorboard),
        record=FitRecord(),
    )
    restored = member.restore(state)
    if restored is not None:
        state = restored
        log.info("%s: resumed from %s at step %d", name, member.latest.directory, int(state.step))
    step = int(state.step)
    if member.record.stopped_early or step >= settings.total_steps():
        member.latest.close()
        return state, list(member.record.history)
    train_step, _ = parallel.make_steps(
        parallel.SINGLE_DEVICE, model, tx=tx, loss_fn=loss_fn, schedule=schedule, accum_steps=1
    )
    positions = itertools.count(step)
    trainer = engine.Engine(
        train_step=train_step,
        next_batch=lambda: batch_fn(next(positions)),
        members=[member],
        cadence=settings.cadence(),
        evaluator=None,
        checkpoint_state=lambda state, _: state,
        train_scalars=("accuracy", "lr", "grad_norm", "steps_per_second"),
        lr_scale=_lr_factor,
        hooks=_callbacks(name, settings, validate),
        description=f"train {name}",
        progress_bar=settings.progress_bar,
    )
    state, _ = trainer.run(state, step)
    trainer.close()
    member.latest.close()
    metrics.write_json({"history": member.record.history}, workdir / "history.json")
    return state, list(member.record.history)


def _callbacks(name: str, settings: FitSettings, validate) -> list[engine.Hook]:
    """The epoch summary (validation, history row), then the Keras rules the settings enable."""
    hooks: list[engine.Hook] = [EpochSummary(name, settings.steps_per_epoch, validate)]
    if validate is not None and settings.early_stopping_patience:
        patience = settings.early_stopping_patience
        hooks.append(EarlyStopping(name, settings.steps_per_epoch, patience=patience))
    if validate is not None and settings.plateau_patience:
        hooks.append(
            ReduceLROnPlateau(
                name,
                settings.steps_per_epoch,
                factor=settings.plateau_factor,
                patience=settings.plateau_patience,
                min_lr=settings.plateau_min_lr,
            )
        )
    return hooks


@dataclasses.dataclass
class EpochSummary:
    """Engine hook: sums each step's loss and accuracy; at an epoch end validates and appends
    the epoch's history row (``epoch``, ``step``, ``train_loss``, ``train_accuracy``, ``lr``,
    ``val_loss``, ``val_accuracy``)."""

    name: str
    steps_per_epoch: int
    validate: Callable[[state_lib.TrainState], dict[str, float]] | None

    def __call__(self, trainer: engine.Engine, state, step: int, out) -> state_lib.TrainState:
        (member,) = trainer.members
        record = member.record
        sums = record.epoch_sums
        loss, accuracy = float(out["loss"]), float(out["accuracy"])
        record.epoch_sums = [sums[0] + loss, sums[1] + accuracy, sums[2] + 1]
        if step % self.steps_per_epoch:
            return state
        count = max(record.epoch_sums[2], 1)
        row: dict[str, Any] = {
            "epoch": step // self.steps_per_epoch,
            "step": step,
            "train_loss": record.epoch_sums[0] / count,
            "train_accuracy": record.epoch_sums[1] / count,
            "lr": float(out["lr"]) * _lr_factor(state),
        }
        record.epoch_sums = [0.0, 0.0, 0]
        if self.validate is not None:
            scores = self.validate(state)
            row["val_loss"], row["val_accuracy"] = float(scores["loss"]), float(scores["accuracy"])
            scalars = {"val/loss": row["val_loss"], "val/accuracy": row["val_accuracy"]}
            member.board.scalars(step, scalars)
        record.history.append(row)
        text = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "step"))
        tqdm.write(f"{self.name} epoch {row['epoch']}: {text}", file=sys.stderr)
        return state


@dataclasses.dataclass
class _EpochRule(abc.ABC):
    """An engine hook that acts on the newest history row at epoch ends (after ``EpochSummary``)."""

    name: str
    steps_per_epoch: int

    def __call__(self, trainer: engine.Engine, state, step: int, out) -> state_lib.TrainState:
        if step % self.steps_per_epoch:
            return state
        record = trainer.members[0].record
        return self.after_epoch(trainer, state, record, record.history[-1])

    @abc.abstractmethod
    def after_epoch(self, trainer, state, record: FitRecord, row: dict[str, Any]):
        """Applies the rule to the epoch's ``row``; returns the state to train on."""


@dataclasses.dataclass
class EarlyStopping(_EpochRule):
    """Engine hook: Keras ``EarlyStopping(mode="max")`` on ``val_accuracy`` at epoch ends."""

    patience: int = 0

    def after_epoch(self, trainer, state, record: FitRecord, row: dict[str, Any]):
        record.early_stopping, stop = early_stopping_update(
            record.early_stopping, row["val_accuracy"], self.patience
        )
        if stop:
            record.stopped_early = True
            trainer.stop()
            tqdm.write(f"{self.name}: early stopping after epoch {row['epoch']}", file=sys.stderr)
        return state


@dataclasses.dataclass
class ReduceLROnPlateau(_EpochRule):
    """Engine hook: Keras ``ReduceLROnPlateau(mode="min")`` on ``val_loss`` at epoch ends; it
    scales the optimizer's injected learning-rate factor (checkpointed with the state)."""

    factor: float = 0.5
    patience: int = 0
    min_lr: float = 0.0

    def after_epoch(self, trainer, state, record: FitRecord, row: dict[str, Any]):
        lr = row["lr"]
        record.plateau, new_lr = plateau_update(
            record.plateau,
            row["val_loss"],
            lr,
            factor=self.factor,
            patience=self.patience,
            min_lr=self.min_lr,
        )
        if new_lr != lr and lr > 0:
            state = _set_lr_factor(state, _lr_factor(state) * new_lr / lr)
            tqdm.write(f"{self.name}: learning rate {lr:.3g} -> {new_lr:.3g}", file=sys.stderr)
        return state


def fit_network(
    section: ml_collections.ConfigDict,
    *,
    name: str,
    workdir: pathlib.Path,
    model: Any,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
    input_shape: tuple[int, ...],
    steps_per_epoch: int,
    batch_fn: Callable[[int], Batch],
    validate: Callable[[state_lib.TrainState], dict[str, float]] | None = None,
) -> tuple[state_lib.TrainState, list[dict[str, Any]]]:
    """``fit`` of a network section: its optimizer, a state seeded ``train.seed``, its settings.

    ``PRNGKey(train.seed)`` splits into the init key and the dropout key;
    ``input_shape`` is the model input's, batch axis first.
    """
    tc = section.train
    tx, schedule = make_optimizer(section, steps_per_epoch, int(tc.epochs))
    init_rng, state_rng = jax.random.split(jax.random.PRNGKey(int(tc.seed)))
    variables = state_lib.init_variables(model, init_rng, input_shape)
    state = state_lib.create_train_state(variables, tx, state_rng)
    bound = functools.partial(fit, model=model, tx=tx, schedule=schedule, loss_fn=loss_fn)
    return bound(
        name=name,
        workdir=workdir,
        state=state,
        settings=FitSettings.from_config(tc, steps_per_epoch, float(section.optimizer.lr)),
        batch_fn=batch_fn,
        validate=validate,
    )


def evaluate_rows(
    eval_fn: Callable[[state_lib.TrainState, Batch], jax.Array],
    state: state_lib.TrainState,
    batches: Any,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
) -> dict[str, float]:
    """Mean loss and accuracy over ``batches`` of ``{"x", "label", "mask"}`` (padding masked)."""
    loss_sum = correct = count = 0.0
    for batch in batches:
        logits = eval_fn(state, {"x": batch["x"]})
        mask = np.asarray(batch["mask"], bool)
        losses = np.asarray(loss_fn(logits, jnp.asarray(batch["label"])))
        hits = np.asarray(jnp.argmax(logits, -1)) == np.asarray(batch["label"])
        loss_sum += float(losses[mask].sum())
        correct += float(hits[mask].sum())
        count += float(mask.sum())
    if count == 0:
        return {"loss": math.nan, "accuracy": math.nan}
    return {"loss": loss_sum / count, "accuracy": correct / count}
