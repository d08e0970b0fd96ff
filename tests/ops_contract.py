"""Checks that an op's fast path and its reference agree in values and gradients."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.models import ops


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def check_fast_equals_reference(
    f: Callable[..., jax.Array],
    args: Sequence[np.ndarray],
    argnums: Sequence[int] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> None:
    """``f`` traced with the fast paths and with the references: same outputs, same VJPs.

    ``argnums``: the arguments to differentiate (all by default). A fresh
    ``jax.jit`` per path, since the switch is read while tracing.
    """
    args = [jnp.asarray(a) for a in args]
    argnums = tuple(range(len(args))) if argnums is None else tuple(argnums)

    def run() -> tuple[jax.Array, tuple[jax.Array, ...]]:
        def wrt(*diff: jax.Array) -> jax.Array:
            full = list(args)
            for i, a in zip(argnums, diff, strict=True):
                full[i] = a
            return f(*full)

        def both(*diff: jax.Array):
            out, vjp = jax.vjp(wrt, *diff)
            cotangent = jnp.asarray(rand(*out.shape, seed=7), out.dtype)
            return out, vjp(cotangent)

        return jax.jit(both)(*[args[i] for i in argnums])

    fast = run()
    with ops.reference():
        plain = run()
    np.testing.assert_allclose(fast[0], plain[0], rtol=rtol, atol=atol)
    for got, want in zip(fast[1], plain[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
