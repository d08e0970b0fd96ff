"""Pure train and eval steps. Bind the model, optimizer and loss with ``functools.partial``
and ``jax.jit`` the result once; the steps close over nothing mutable."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from smg_jax.train.state import TrainState, variables_of

Batch = dict[str, jax.Array]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    mask = mask.astype(values.dtype)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    loss_fn: LossFn,
    schedule: optax.Schedule | None = None,
    accum_steps: int = 1,
    axis_name: str | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer update on ``batch``.

    Args:
      state: the current state.
      batch: ``x`` ``(B, M, T, V, C)``, ``label`` ``(B,)``, ``mask`` ``(B,)``
        (rows with ``mask=False`` contribute nothing).
      model, tx, loss_fn, schedule: bound with ``functools.partial``.
      accum_steps: split the batch into this many equal micro-batches, run
        forward/backward on each in turn (BatchNorm statistics updated after
        each, as PyTorch does) and apply the mean gradient once. MS-G3D's
        recipe is batch 32 as two forward batches of 16.
      axis_name: the ``pmap``/``shard_map`` axis to average gradients over;
        each device then also draws its own dropout masks. ``batch`` is then
        this device's part, and with ``accum_steps > 1`` its micro-batch ``i``
        must be its part of the global micro-batch ``i`` (``parallel`` lays
        batches out so).

    Returns:
      ``(new_state, metrics)`` with ``loss``, ``accuracy``, ``grad_norm``,
      ``param_norm``, ``lr`` and ``finite`` (False if loss or gradients hold
      NaN/inf; the engine stops the run then).
    """
    micro = _micro_batches(batch, accum_steps)
    step_rng = _step_key(state, axis_name)
    grad_fn = jax.value_and_grad(functools.partial(_micro_loss, model, loss_fn), has_aux=True)
    grads, loss, correct, count, batch_stats = _accumulate(
        grad_fn, state, micro, step_rng, accum_steps
    )
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        loss = jax.lax.pmean(loss, axis_name)
        correct = jax.lax.psum(correct, axis_name)
        count = jax.lax.psum(count, axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    metrics = {
        "loss": loss,
        "accuracy": correct / jnp.maximum(count, 1.0),
        "grad_norm": grad_norm,
        "param_norm": optax.tree.norm(params),
        "lr": schedule(state.step) if schedule is not None else jnp.nan,
        "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm),
    }
    new_state = state.replace(
        step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
    )
    return new_state, metrics


def _micro_batches(batch: Batch, accum_steps: int) -> Batch:
    """``batch`` as ``accum_steps`` equal micro-batches along a new leading axis."""
    batch_size = batch["label"].shape[0]
    if batch_size % accum_steps:
        raise ValueError(f"batch size {batch_size} is not divisible by accum_steps {accum_steps}.")
    return jax.tree_util.tree_map(
        lambda a: a.reshape((accum_steps, batch_size // accum_steps, *a.shape[1:])), batch
    )


def _step_key(state: TrainState, axis_name: str | None) -> jax.Array:
    """The step's dropout key: a function of the run's key and the step (and the device)."""
    step_rng = jax.random.fold_in(jnp.asarray(state.rng, jnp.uint32), state.step)
    if axis_name is not None:
        # One key per device: the same key everywhere would repeat one dropout pattern
        # in every device's part of the batch.
        step_rng = jax.random.fold_in(step_rng, jax.lax.axis_index(axis_name))
    return step_rng


def _micro_loss(model: nn.Module, loss_fn: LossFn, params, batch_stats, micro_batch, rng):
    """Masked mean loss of one micro-batch, with its logits and updated BatchNorm statistics."""
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    logits, updates = model.apply(
        variables,
        micro_batch["x"],
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": rng},
    )
    losses = loss_fn(logits, micro_batch["label"])
    loss = _masked_mean(losses, micro_batch["mask"])
    return loss, (logits, updates.get("batch_stats", batch_stats))


def _accumulate(grad_fn, state: TrainState, micro: Batch, step_rng: jax.Array, accum_steps: int):
    """Forward/backward over the micro-batches in turn: mean gradient and loss, hits, count.

    BatchNorm statistics are updated after each micro-batch, as PyTorch does.
    Returns ``(grads, loss, correct, count, batch_stats)``.
    """
    grads_sum = jax.tree_util.tree_map(jnp.zeros_like, state.params)
    loss_sum, correct, count, batch_stats = 0.0, 0.0, 0.0, state.batch_stats
    # A Python loop (unrolled: accum_steps is small), not lax.scan: XLA's CPU
    # backend ran the graph convolutions' backward pass much slower inside a
    # scan body than at the top level.
    for index in range(accum_steps):
        micro_batch = jax.tree_util.tree_map(lambda a, i=index: a[i], micro)
        (loss, (logits, batch_stats)), grads = grad_fn(
            state.params, batch_stats, micro_batch, jax.random.fold_in(step_rng, index)
        )
        mask = micro_batch["mask"].astype(jnp.float32)
        hits = (jnp.argmax(logits, -1) == micro_batch["label"]).astype(jnp.float32)
        grads_sum = jax.tree_util.tree_map(jnp.add, grads_sum, grads)
        loss_sum = loss_sum + loss
        correct = correct + jnp.sum(hits * mask)
        count = count + jnp.sum(mask)
    grads = jax.tree_util.tree_map(lambda g: g / accum_steps, grads_sum)
    return grads, loss_sum / accum_steps, correct, count, batch_stats


def eval_step(state: TrainState, batch: Batch, *, model: nn.Module) -> jax.Array:
    """Eval-mode logits ``(B, K)`` float32 for ``batch["x"]`` ``(B, M, T, V, C)``.

    Padded rows are computed too; the caller drops them with ``batch["mask"]``
    so that each example counts exactly once.
    """
    logits = model.apply(variables_of(state), batch["x"], train=False)
    return logits.astype(jnp.float32)


def loss_value(state: TrainState, batch: Batch, *, model: nn.Module, loss_fn: LossFn) -> Any:
    """Eval-mode masked mean loss on ``batch`` (a probe for tests and debugging)."""
    logits = eval_step(state, batch, model=model)
    return _masked_mean(loss_fn(logits, batch["label"]), batch["mask"])
