"""Training the online recognizers' networks with our optax training code.

``fit`` runs ``smg_jax.train.steps.train_step`` over batches that are a pure
function of the step (``batch_fn(step)``), so a resumed run replays exactly
the same batches. It adds what the classification loop does not need but
the authors' Keras recipe does: a validation split, early stopping and a
learning rate halved on plateaus (Keras 2 semantics), with their state kept
in the checkpoint. It checkpoints with ``smg_jax.train.checkpoint`` at every
epoch end (and every ``checkpoint_every_steps``), logs to TensorBoard and
shows a tqdm progress bar.

Layout under ``workdir``: ``checkpoints/<step>/{state,meta}``,
``tensorboard/``, ``history.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from smg_jax import metrics
from smg_jax.online.segments import OnlineError
from smg_jax.train import checkpoint, optim, parallel, runtime
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
    """Trains ``state``, or resumes it from ``workdir/checkpoints``; returns it and the history.

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
    saver = checkpoint.Checkpointer(
        workdir / "checkpoints", max_to_keep=max(int(settings.keep_checkpoints), 1)
    )
    state, meta = _restore(saver, state, name)
    total_steps = settings.total_steps()
    step = int(state.step)
    if meta["stopped_early"] or step >= total_steps:
        saver.close()
        return state, list(meta["history"])
    train_step, _ = parallel.make_steps(
        parallel.SINGLE_DEVICE, model, tx=tx, loss_fn=loss_fn, schedule=schedule, accum_steps=1
    )
    board = runtime.TensorBoard(workdir / "tensorboard", settings.tensorboard)
    bar = _progress_bar(total_steps, step, name, settings.progress_bar)
    window = [0.0, 0.0, 0, time.perf_counter()]  # loss sum, accuracy sum, steps, start time
    while step < total_steps and not meta["stopped_early"]:
        state, out = train_step(state, batch_fn(step))
        step += 1
        loss, accuracy = float(out["loss"]), float(out["accuracy"])
        if not bool(out["finite"]):
            bar.close()
            board.close()
            raise FloatingPointError(_non_finite_message(name, step, loss))
        sums = meta["epoch_sums"]
        meta["epoch_sums"] = [sums[0] + loss, sums[1] + accuracy, sums[2] + 1]
        window = [window[0] + loss, window[1] + accuracy, window[2] + 1, window[3]]
        bar.update(1)
        if step % max(settings.log_every_steps, 1) == 0 or step == total_steps:
            _log_window(step, out, state, window, board, bar, settings.steps_per_epoch)
            window = [0.0, 0.0, 0, time.perf_counter()]
        epoch_end = step % settings.steps_per_epoch == 0
        if epoch_end:
            state, meta["stopped_early"] = _end_epoch(
                name, state, step, out, meta, settings, validate, board
            )
        every = settings.checkpoint_every_steps
        if epoch_end or step == total_steps or (every and step % every == 0):
            saver.save(step, state, meta)
    bar.close()
    board.close()
    saver.close()
    metrics.write_json({"history": meta["history"]}, workdir / "history.json")
    return state, list(meta["history"])


def _progress_bar(total: int, step: int, name: str, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        initial=step,
        desc=f"train {name}",
        unit="step",
        dynamic_ncols=True,
        disable=not enabled,
        file=sys.stderr,
    )


def _non_finite_message(name: str, step: int, loss: float) -> str:
    return (
        f"{name}: non-finite loss or gradient at step {step} (loss {loss}); lower the "
        "learning rate or check the features."
    )


def _restore(saver: checkpoint.Checkpointer, state, name: str):
    """``(state, meta)`` of the latest checkpoint, or ``state`` and a fresh meta."""
    meta: dict[str, Any] = {
        "history": [],
        "early_stopping": {},
        "plateau": {},
        "epoch_sums": [0.0, 0.0, 0],
        "stopped_early": False,
    }
    restored = saver.restore(state)
    if restored is not None:
        state, meta = restored
        log.info("%s: resumed from %s at step %d", name, saver.directory, int(state.step))
    return state, meta


def _log_window(step, out, state, window, board, bar, steps_per_epoch: int) -> None:
    """TensorBoard scalars of the steps since the last log line, and the bar's postfix."""
    lr = float(out["lr"]) * _lr_factor(state)
    elapsed = max(time.perf_counter() - window[3], 1e-9)
    scalars = {
        "train/loss": window[0] / window[2],
        "train/accuracy": window[1] / window[2],
        "train/lr": lr,
        "train/grad_norm": float(out["grad_norm"]),
        "train/steps_per_second": window[2] / elapsed,
    }
    board.scalars(step, scalars)
    bar.set_postfix(
        epoch=f"{step / steps_per_epoch:.1f}",
        loss=f"{scalars['train/loss']:.3f}",
        acc=f"{scalars['train/accuracy']:.3f}",
        lr=f"{lr:.2g}",
    )


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


def _end_epoch(name, state, step, out, meta, settings: FitSettings, validate, board):
    """Validation, history row, Keras callbacks; returns ``(state, stop)``."""
    sums = meta["epoch_sums"]
    count = max(sums[2], 1)
    lr = float(out["lr"]) * _lr_factor(state)
    row: dict[str, Any] = {
        "epoch": step // settings.steps_per_epoch,
        "step": step,
        "train_loss": sums[0] / count,
        "train_accuracy": sums[1] / count,
        "lr": lr,
    }
    meta["epoch_sums"] = [0.0, 0.0, 0]
    stop = False
    if validate is not None:
        scores = validate(state)
        row["val_loss"], row["val_accuracy"] = float(scores["loss"]), float(scores["accuracy"])
        board.scalars(step, {"val/loss": row["val_loss"], "val/accuracy": row["val_accuracy"]})
        if settings.early_stopping_patience:
            meta["early_stopping"], stop = early_stopping_update(
                meta["early_stopping"], row["val_accuracy"], settings.early_stopping_patience
            )
        if settings.plateau_patience:
            meta["plateau"], new_lr = plateau_update(
                meta["plateau"],
                row["val_loss"],
                lr,
                factor=settings.plateau_factor,
                patience=settings.plateau_patience,
                min_lr=settings.plateau_min_lr,
            )
            if new_lr != lr and lr > 0:
                state = _set_lr_factor(state, _lr_factor(state) * new_lr / lr)
                tqdm.write(f"{name}: learning rate {lr:.3g} -> {new_lr:.3g}", file=sys.stderr)
    meta["history"].append(row)
    text = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "step"))
    tqdm.write(f"{name} epoch {row['epoch']}: {text}", file=sys.stderr)
    if stop:
        tqdm.write(f"{name}: early stopping after epoch {row['epoch']}", file=sys.stderr)
    return state, stop


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
