"""Inverted dropout with a hash mask: one fused elementwise pass.

The keep mask of element ``i`` (row-major index) is a hash of ``i`` and two
32-bit seeds: the golden-ratio increment, then MurmurHash3's 32-bit
finaliser twice. A Threefry bit per element (Flax's mask) costs far more on
XLA:CPU; the masks differ per module, step and RNG key like Flax's, but are
not the same bits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.models.ops.switch import reference_enabled

Array = jax.Array

_GOLDEN, _MIX1, _MIX2 = 0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35


def _mix32(h: Array) -> Array:
    h = h ^ (h >> 16)
    h = h * jnp.uint32(_MIX1)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(_MIX2)
    return h ^ (h >> 16)


def threshold(rate: float) -> int:
    """Hashes at or above this 32-bit value keep their element."""
    return min(int(rate * 2.0**32), 2**32 - 1)


def dropout(x: Array, rate: float, seeds: Array) -> Array:
    """``x`` with each element zeroed with probability ``rate``, the rest scaled by ``1/(1-rate)``.

    ``seeds``: ``(2,)`` uint32. ``0 < rate < 1``.
    """
    if reference_enabled():
        return reference_dropout(x, rate, seeds)
    index = jax.lax.iota(jnp.uint32, x.size).reshape(x.shape)
    h = _mix32(index * jnp.uint32(_GOLDEN) + seeds[0])
    h = _mix32(h ^ seeds[1])
    keep = h >= jnp.uint32(threshold(rate))
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros((), x.dtype))


def keep_mask(shape: tuple[int, ...], rate: float, seeds: Array) -> Array:
    """The boolean keep mask, element by element in row-major order (the reference's)."""
    index = jnp.arange(int(np.prod(shape)), dtype=jnp.uint32)
    h = _mix32(_mix32(index * jnp.uint32(_GOLDEN) + seeds[0]) ^ seeds[1])
    return (h >= jnp.uint32(threshold(rate))).reshape(shape)


def reference_dropout(x: Array, rate: float, seeds: Array) -> Array:
    """``mask * x / (1 - rate)`` with the same mask."""
    scale = jnp.asarray(1.0 - rate, x.dtype)
    return keep_mask(x.shape, rate, seeds).astype(x.dtype) * (x / scale)
