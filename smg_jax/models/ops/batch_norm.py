"""Training-mode BatchNorm: a written-out gradient beside autodiff of the formula."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from smg_jax.models.ops.switch import reference_enabled

Array = jax.Array


def feature_statistics(x: Array, axis_name: str | None) -> tuple[Array, Array]:
    """Mean and biased variance of ``x (..., C)`` over all axes but the last, across replicas."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    if axis_name is not None:
        mean = jax.lax.pmean(mean, axis_name)
    var = jnp.square(x - mean).mean(axes)
    if axis_name is not None:
        var = jax.lax.pmean(var, axis_name)
    return mean, var


def batch_norm_train(
    x: Array, scale: Array, bias: Array, epsilon: float, axis_name: str | None = None
) -> tuple[Array, Array, Array]:
    """Training-mode BatchNorm of float32 ``x (..., C)``: ``(y, mean, var)``, all float32.

    ``y = x a + (bias - mean a)`` with ``a = scale / sqrt(var + epsilon)``,
    PyTorch's CPU formula; ``mean`` and the biased ``var`` are per channel
    ``(C,)``, over every axis but the last and, with ``axis_name``, over the
    replicas too.

    Fast path (one replica): the gradient is written out, two reductions and
    then one pass ``dx = g a + x c1 + c0`` with per-channel ``c1``, ``c0``,
    where autodiff of the statistics passes over the activations more often.
    Reference, and always across replicas: autodiff of the same formula, so
    that the cross-replica sums stay JAX's own (a custom gradient's
    collectives would need the mapped axis bound wherever the gradient is
    taken).
    """
    if axis_name is None and not reference_enabled():
        return _local_batch_norm(x, scale, bias, epsilon)
    return _batch_norm_forward(x, scale, bias, epsilon, axis_name)[0]


def _batch_norm_forward(x: Array, scale: Array, bias: Array, epsilon: float, axis_name: str | None):
    mean, var = feature_statistics(x, axis_name)
    inv_std = jax.lax.rsqrt(var + epsilon)
    multiplier = scale * inv_std
    y = x * multiplier + (bias - mean * multiplier)
    return (y, mean, var), (x, mean, inv_std, scale)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _local_batch_norm(
    x: Array, scale: Array, bias: Array, epsilon: float
) -> tuple[Array, Array, Array]:
    return _batch_norm_forward(x, scale, bias, epsilon, None)[0]


def _local_batch_norm_fwd(x: Array, scale: Array, bias: Array, epsilon: float):
    return _batch_norm_forward(x, scale, bias, epsilon, None)


def _local_batch_norm_bwd(
    epsilon: float, residuals: tuple[Array, ...], cotangents
) -> tuple[Array, Array, Array]:
    del epsilon
    x, mean, inv_std, scale = residuals
    grad, grad_mean, grad_var = cotangents
    axes = tuple(range(x.ndim - 1))
    count = math.prod(x.shape[:-1])
    # A distinct ``mean`` keeps XLA from sharing ``x - mean`` with the forward
    # variance, which would write it out at full size to keep it until here.
    mean = jax.lax.optimization_barrier(mean)
    sum_grad = grad.sum(axes)
    sum_grad_centred = (grad * (x - mean)).sum(axes)
    multiplier = scale * inv_std
    # dx = a g - a (sum g + (x - mean) inv_std^2 sum g (x - mean)) / n
    #      + (grad_mean + 2 grad_var (x - mean)) / n
    slope = (2.0 * grad_var - multiplier * inv_std * inv_std * sum_grad_centred) / count
    offset = (grad_mean - multiplier * sum_grad) / count - mean * slope
    # Finished per-channel vectors: otherwise XLA:CPU fuses their last multiply
    # into a broadcast and writes it out at full activation size.
    multiplier, slope, offset = jax.lax.optimization_barrier((multiplier, slope, offset))
    dx = grad * multiplier + x * slope + offset
    return dx, sum_grad_centred * inv_std, sum_grad


_local_batch_norm.defvjp(_local_batch_norm_fwd, _local_batch_norm_bwd)
