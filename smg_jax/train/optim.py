"""Optimizers and learning-rate schedules built from config sections.

The published skeleton models train with PyTorch's ``SGD(momentum=0.9,
nesterov=True, weight_decay=wd)``, which adds ``wd * param`` to the gradient
of *every* parameter (BatchNorm and biases included) before the momentum
buffer; ``make_optimizer`` reproduces that ordering with
``optax.add_decayed_weights`` in front of ``optax.sgd``. Their schedules
change the rate once per epoch (``MultiStepLR``), so the schedules here are
piecewise constant over epochs unless ``per_step`` is asked for.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("step", "cosine", "constant")
WEIGHT_DECAY_TARGETS = ("all", "kernels")


def _epoch_index(step: jax.Array, steps_per_epoch: int) -> jax.Array:
    return jnp.floor_divide(step, steps_per_epoch)


def make_schedule(config: Any, steps_per_epoch: int, total_epochs: int) -> optax.Schedule:
    """Learning rate as a function of the optimizer step.

    Config fields (section ``schedule`` plus ``optimizer.lr``): ``name`` in
    ``SCHEDULES``; ``milestones`` (epochs) and ``gamma`` for ``step``;
    ``warmup_epochs`` (linear warm-up per epoch, CTR-GCN style: epoch ``e``
    uses ``lr * (e + 1) / warmup_epochs``); ``min_lr`` for ``cosine``;
    ``per_step`` to change the rate every step instead of every epoch.

    Args:
      config: the whole experiment config (reads ``config.optimizer.lr`` and
        ``config.schedule``).
      steps_per_epoch: optimizer updates per epoch (after accumulation).
      total_epochs: length of training in epochs.
    """
    sched = config.schedule
    base_lr = float(config.optimizer.lr)
    if sched.name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {sched.name!r}; choose from {SCHEDULES}.")
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}.")
    warmup = int(sched.get("warmup_epochs", 0))
    per_step = bool(sched.get("per_step", False))

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step)
        epoch = step / steps_per_epoch if per_step else _epoch_index(step, steps_per_epoch)
        epoch = jnp.asarray(epoch, jnp.float32)
        if sched.name == "step":
            milestones = jnp.asarray(list(sched.milestones) or [total_epochs + 1], jnp.float32)
            drops = jnp.sum(epoch >= milestones)
            lr = base_lr * jnp.power(float(sched.gamma), drops)
        elif sched.name == "cosine":
            span = max(total_epochs - warmup, 1)
            progress = jnp.clip((epoch - warmup) / span, 0.0, 1.0)
            min_lr = float(sched.get("min_lr", 0.0))
            lr = min_lr + 0.5 * (base_lr - min_lr) * (1.0 + jnp.cos(jnp.pi * progress))
        else:
            lr = jnp.asarray(base_lr, jnp.float32)
        if warmup > 0:
            ramp = base_lr * (epoch + 1.0) / warmup
            lr = jnp.where(epoch < warmup, jnp.minimum(ramp, lr), lr)
        return lr

    return schedule


def _decay_mask(params: Any, target: str) -> Any:
    if target == "all":
        return jax.tree_util.tree_map(lambda _: True, params)
    # "kernels": decay only weight matrices/tensors (ndim >= 2), as modern recipes do.
    return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def make_optimizer(config: Any, schedule: optax.Schedule) -> optax.GradientTransformation:
    """An optax transformation from ``config.optimizer``.

    Fields: ``name`` in ``OPTIMIZERS``; ``momentum``, ``nesterov`` (SGD);
    ``b1``, ``b2``, ``eps`` (Adam); ``weight_decay``; ``weight_decay_on`` in
    ``WEIGHT_DECAY_TARGETS`` (``all`` is what the PyTorch originals do);
    ``grad_clip_norm`` (0 disables).
    """
    opt = config.optimizer
    if opt.name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {opt.name!r}; choose from {OPTIMIZERS}.")
    target = opt.get("weight_decay_on", "all")
    if target not in WEIGHT_DECAY_TARGETS:
        raise ValueError(
            f"Unknown optimizer.weight_decay_on {target!r}; choose from {WEIGHT_DECAY_TARGETS}."
        )
    chain = []
    clip = float(opt.get("grad_clip_norm", 0.0) or 0.0)
    if clip > 0:
        chain.append(optax.clip_by_global_norm(clip))
    weight_decay = float(opt.get("weight_decay", 0.0))
    mask = lambda params: _decay_mask(params, target)  # noqa: E731
    if opt.name == "sgd":
        if weight_decay:
            # L2 added to the gradient before momentum, exactly like torch.optim.SGD.
            chain.append(optax.add_decayed_weights(weight_decay, mask=mask))
        chain.append(
            optax.sgd(
                schedule,
                momentum=float(opt.get("momentum", 0.9)) or None,
                nesterov=bool(opt.get("nesterov", True)),
            )
        )
    elif opt.name == "adam":
        if weight_decay:
            chain.append(optax.add_decayed_weights(weight_decay, mask=mask))
        chain.append(
            optax.adam(
                schedule, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999), eps=opt.get("eps", 1e-8)
            )
        )
    else:
        chain.append(
            optax.adamw(
                schedule,
                b1=opt.get("b1", 0.9),
                b2=opt.get("b2", 0.999),
                eps=opt.get("eps", 1e-8),
                weight_decay=weight_decay,
                mask=mask,
            )
        )
    return optax.chain(*chain)
