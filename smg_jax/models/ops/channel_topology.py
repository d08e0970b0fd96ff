"""CTR-GCN's channel-wise topology aggregation: per-channel graphs times per-subset features.

For subset ``k`` and channel ``o``, joint ``u`` gathers
``sum_v (alpha (R_k[u, v] W4_k + b4_k)[o] + A_k[u, v]) (x W3_k + b3_k)[v, t, o]``,
summed over subsets (the published ``einsum('ncuv,nctv->nctu')`` per CTRGC).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from smg_jax.models.ops.switch import reference_enabled

Array = jax.Array


def refine_and_aggregate(
    x: Array,
    relation: Array,
    kernel3: Array,
    bias3: Array,
    kernel4: Array,
    bias4: Array,
    alpha: Array,
    topology: Array,
    dtype: jnp.dtype,
) -> Array:
    """Refines each subset's topology per channel and aggregates the projected features.

    Shapes: ``x (B, V, T, C)``, ``relation (B, U, V, K, R)`` (``tanh`` of the
    embedding differences), ``kernel3 (C, K O)``, ``bias3 (K O,)``,
    ``kernel4 (K, R, O)``, ``bias4 (K, O)``, ``alpha (1,)``, ``topology
    (K, U, V)``; result ``(B, U, T, O)`` in ``dtype``.

    Fast path: channel-major per subset, ``(O, B, ...)``, so the per-channel
    graphs multiply the features as one batched matmul over ``(O, B)`` per
    subset, with no transposes or slices of the ``(B, V, T, K, O)``
    activations. The kernels enter as ``(O, C)`` and ``(O, R)`` copies behind
    an optimisation barrier, so each product has its weights in matmul order
    (XLA would otherwise fold the transpose back, and XLA:CPU runs the
    transposed-weight product in Eigen, off its fast path).
    """
    if reference_enabled():
        return _reference(x, relation, kernel3, bias3, kernel4, bias4, alpha, topology, dtype)
    b, v, t, c = x.shape
    k, _, o = kernel4.shape
    rows = x.reshape(b * v * t, c).astype(dtype)
    kernel3_t, kernel4_t = jax.lax.optimization_barrier(
        (kernel3.T.astype(dtype), jnp.swapaxes(kernel4, 1, 2).astype(dtype))
    )
    y = None
    for i in range(k):
        window = slice(i * o, (i + 1) * o)
        # (O, C) x (B V T, C) -> (O, B, V, T)
        x3 = jax.lax.dot_general(kernel3_t[window], rows, (((1,), (1,)), ((), ())))
        x3 = (x3 + bias3[window].astype(dtype)[:, None]).reshape(o, b, v, t)
        # (O, R) x (B, U, V, R) -> (O, B, U, V)
        refined = jax.lax.dot_general(
            kernel4_t[i], relation[:, :, :, i].astype(dtype), (((1,), (3,)), ((), ()))
        )
        refined = (refined + bias4[i].astype(dtype)[:, None, None, None]) * alpha.astype(
            dtype
        ) + topology[i].astype(dtype)
        # (O, B, U, V) @ (O, B, V, T) -> (O, B, U, T), summed over subsets
        term = jax.lax.dot_general(refined, x3, (((3,), (2,)), ((0, 1), (0, 1))))
        y = term if y is None else y + term
    return y.transpose(1, 2, 3, 0)  # (B, U, T, O)


def _reference(x, relation, kernel3, bias3, kernel4, bias4, alpha, topology, dtype) -> Array:
    k, _, o = kernel4.shape
    kernel3 = kernel3.reshape(kernel3.shape[0], k, o).astype(dtype)
    x3 = jnp.einsum("bvtc,cko->bkvto", x.astype(dtype), kernel3)
    x3 = x3 + bias3.reshape(k, o).astype(dtype)[None, :, None, None]
    refined = jnp.einsum("buvkr,kro->bkuvo", relation.astype(dtype), kernel4.astype(dtype))
    refined = (refined + bias4.astype(dtype)[None, :, None, None]) * alpha.astype(dtype)
    refined = refined + topology.astype(dtype)[None, :, :, :, None]
    return jnp.einsum("bkuvo,bkvto->buto", refined, x3)
