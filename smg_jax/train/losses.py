"""Classification losses, including the long-tail options SMG calls for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

LOSSES = ("cross_entropy", "label_smoothing", "class_balanced")


def class_balanced_weights(class_counts: Sequence[int], beta: float = 0.9999) -> np.ndarray:
    """Per-class weights from the "effective number of samples" (Cui et al., CVPR 2019).

    ``w_c = (1 - beta) / (1 - beta ** n_c)``, rescaled so the weights of the
    classes present sum to the number of those classes. Classes with no
    training example get weight 0 (they never appear as a target anyway).

    Args:
      class_counts: ``(K,)`` training examples per class.
      beta: in ``[0, 1)``; 0 gives uniform weights, values near 1 approach
        inverse-frequency weighting.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"class-balanced beta must lie in [0, 1), got {beta}.")
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = (1.0 - beta) / (1.0 - np.power(beta, counts[present]))
    weights *= present.sum() / weights.sum()
    return weights.astype(np.float32)


def make_loss(config: Any, class_counts: Sequence[int] | None = None):
    """Returns ``loss_fn(logits (N, K), labels (N,)) -> (N,)`` per-example losses.

    ``config.loss.name`` in ``LOSSES``; ``config.loss.smoothing`` for
    ``label_smoothing``; ``config.loss.beta`` for ``class_balanced`` (needs
    the training set's ``class_counts``).
    """
    name = config.loss.name
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; choose from {LOSSES}.")
    smoothing = float(config.loss.get("smoothing", 0.0)) if name == "label_smoothing" else 0.0
    weights = None
    if name == "class_balanced":
        if class_counts is None:
            raise ValueError("loss.name='class_balanced' needs the training class counts.")
        weights = jnp.asarray(class_balanced_weights(class_counts, float(config.loss.beta)))

    def loss_fn(logits: jax.Array, labels: jax.Array) -> jax.Array:
        num_classes = logits.shape[-1]
        targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
        if smoothing:
            targets = optax.smooth_labels(targets, smoothing)
        losses = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
        if weights is not None:
            losses = losses * weights[labels]
        return losses

    return loss_fn
