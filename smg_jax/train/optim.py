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

import re
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
            lr = jnp.where(epoch < warmup, ramp, lr)
        return lr

    return schedule


def parse_weight_decay_rules(rules: str) -> list[tuple[re.Pattern, float]]:
    """Parses ``"pattern=rate,pattern=rate"`` into compiled regexes and rates.

    Some originals give parameter groups their own weight decay (Shift-GCN:
    1e-3 on its shift-conv weights, 0 on its feature mask); a rule's regex is
    searched in the parameter's path (``"block_1/gcn/linear_weight"``) and
    the first rule that matches sets that parameter's rate.
    """
    parsed = []
    for item in filter(None, (part.strip() for part in rules.split(","))):
        pattern, sep, rate = item.rpartition("=")
        if not sep or not pattern:
            raise ValueError(
                f"Bad optimizer.weight_decay_rules entry {item!r}: write 'regex=rate', "
                "e.g. 'linear_weight=1e-3,feature_mask=0'."
            )
        try:
            parsed.append((re.compile(pattern), float(rate)))
        except (re.error, ValueError) as err:
            raise ValueError(f"Bad optimizer.weight_decay_rules entry {item!r}: {err}.") from None
    return parsed


def weight_decay_rates(params: Any, config: Any) -> Any:
    """The weight decay of every parameter, a tree shaped like ``params``.

    ``optimizer.weight_decay`` by default; ``weight_decay_on="kernels"``
    exempts tensors of fewer than two dimensions (biases, BatchNorm);
    ``weight_decay_rules`` overrides by parameter path.
    """
    opt = config.optimizer
    base = float(opt.get("weight_decay", 0.0))
    target = opt.get("weight_decay_on", "all")
    rules = parse_weight_decay_rules(opt.get("weight_decay_rules", "") or "")

    def rate(path: tuple, leaf: Any) -> float:
        name = "/".join(str(getattr(key, "key", key)) for key in path)
        for pattern, value in rules:
            if pattern.search(name):
                return value
        if target == "kernels" and leaf.ndim < 2:
            return 0.0
        return base

    return jax.tree_util.tree_map_with_path(rate, params)


def _decay_transforms(config: Any) -> list[optax.GradientTransformation]:
    """One ``add_decayed_weights`` per distinct rate, each masked to its parameters."""
    transforms = []
    candidate_rates = {float(config.optimizer.get("weight_decay", 0.0))}
    candidate_rates.update(
        rate
        for _, rate in parse_weight_decay_rules(
            config.optimizer.get("weight_decay_rules", "") or ""
        )
    )
    for rate in sorted(candidate_rates):
        if rate == 0.0:
            continue

        def mask(params: Any, rate: float = rate) -> Any:
            return jax.tree_util.tree_map(lambda r: r == rate, weight_decay_rates(params, config))

        transforms.append(optax.add_decayed_weights(rate, mask=mask))
    return transforms


def make_optimizer(config: Any, schedule: optax.Schedule) -> optax.GradientTransformation:
    """An optax transformation from ``config.optimizer``.

    Fields: ``name`` in ``OPTIMIZERS``; ``momentum``, ``nesterov`` (SGD);
    ``b1``, ``b2``, ``eps`` (Adam); ``weight_decay``; ``weight_decay_on`` in
    ``WEIGHT_DECAY_TARGETS`` (``all`` is what the PyTorch originals do);
    ``weight_decay_rules`` (per-parameter rates, see
    ``parse_weight_decay_rules``); ``grad_clip_norm`` (0 disables).
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
    if opt.name in ("sgd", "adam"):
        # L2 added to the gradient before momentum / moments, exactly like torch.optim.
        chain.extend(_decay_transforms(config))
    if opt.name == "sgd":
        chain.append(
            optax.sgd(
                schedule,
                momentum=float(opt.get("momentum", 0.9)) or None,
                nesterov=bool(opt.get("nesterov", True)),
            )
        )
    elif opt.name == "adam":
        chain.append(
            optax.adam(
                schedule, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999), eps=opt.get("eps", 1e-8)
            )
        )
    else:
        # Decoupled decay scaled by the learning rate (AdamW); rules and targets as above.
        weight_decay = float(opt.get("weight_decay", 0.0))
        chain.append(
            optax.adamw(
                schedule,
                b1=opt.get("b1", 0.9),
                b2=opt.get("b2", 0.999),
                eps=opt.get("eps", 1e-8),
                weight_decay=weight_decay,
                mask=lambda params: jax.tree_util.tree_map(
                    lambda r: r > 0, weight_decay_rates(params, config)
                ),
            )
        )
    return optax.chain(*chain)
