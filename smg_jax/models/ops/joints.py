"""Products over joints: aggregation by an adjacency, projection, embedding scores.

The fast paths put every operand in matmul order (rows of a flattened
activation, a materialised transposed adjacency behind an optimisation
barrier, written-out gradients in matmul order), where an ``einsum`` made
XLA:CPU transpose activations and gradients. The references are those
``einsum``\\ s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from smg_jax.models.ops.switch import reference_enabled

Array = jax.Array


def rows_matmul(x: Array, kernel: Array) -> Array:
    """``x @ kernel`` for ``x (..., C)`` and ``kernel (C, O)``, with ``x`` flattened to rows.

    The same product; the flattening makes the weight gradient one matmul that
    contracts a single ``(rows,)`` axis, where autodiff of ``(B, V, T, C)``
    contracts three.
    """
    if reference_enabled():
        return x @ kernel
    rows = x.reshape(-1, x.shape[-1]) @ kernel
    return rows.reshape(*x.shape[:-1], kernel.shape[-1])


def _per_clip(a: Array, clips: int) -> Array:
    return a if a.ndim == 3 else jnp.broadcast_to(a, (clips, *a.shape))


def aggregate_joints(adjacency: Array, features: Array) -> Array:
    """``out[b, w] = sum_v A[v, w] x[b, v]``: ``(V, W) | (B, V, W), (B, V, F) -> (B, W, F)``.

    Fast path: one batched matmul over clips with ``A^T`` as a materialised
    ``(B, W, V)`` operand (behind an optimisation barrier, so that XLA cannot
    fold the transpose back into the product), and a written-out gradient
    whose products are in matmul order too: ``dx = A g`` and ``dA = x g^T``
    (summed over clips for a shared ``A``).
    """
    if reference_enabled():
        spec = "vw,bvf->bwf" if adjacency.ndim == 2 else "bvw,bvf->bwf"
        return jnp.einsum(spec, adjacency, features)
    return _aggregate_joints(adjacency, features)


@jax.custom_vjp
def _aggregate_joints(adjacency: Array, features: Array) -> Array:
    clips = features.shape[0]
    transposed = jax.lax.optimization_barrier(_per_clip(jnp.swapaxes(adjacency, -1, -2), clips))
    return jax.lax.dot_general(transposed, features, (((2,), (1,)), ((0,), (0,))))


def _aggregate_joints_fwd(adjacency: Array, features: Array):
    return _aggregate_joints(adjacency, features), (adjacency, features)


def _aggregate_joints_bwd(residuals: tuple[Array, Array], grad: Array) -> tuple[Array, Array]:
    adjacency, features = residuals
    per_clip = _per_clip(adjacency, features.shape[0])
    d_features = jax.lax.dot_general(per_clip, grad, (((2,), (1,)), ((0,), (0,))))
    d_adjacency = jax.lax.dot_general(features, grad, (((2,), (2,)), ((0,), (0,))))
    if adjacency.ndim == 2:
        d_adjacency = d_adjacency.sum(0)
    return d_adjacency.astype(adjacency.dtype), d_features


_aggregate_joints.defvjp(_aggregate_joints_fwd, _aggregate_joints_bwd)


def graph_project(
    x: Array, adjacency: Array, kernel: Array, subset_bias: Array | None = None
) -> Array:
    """``sum_k (x @ A_k) W_k``: ``(B, V, T, C), (K|B K, V, W), (K, C, O) -> (B, W, T, O)``.

    Output joint ``w`` gathers joints ``v`` weighted by ``A_k[v, w]`` (the
    published ``einsum('nkctv,kvw->nctw')`` and ``torch.matmul(x, A)``); the
    adjacency may differ per clip (``(B, K, V, W)``, the adaptive graphs).
    ``subset_bias`` ``(K, O)`` is added to each ``x W_k`` before aggregation,
    the published project-then-aggregate order.

    Fast path: each subset is one batched matmul over clips (``aggregate_joints``)
    and one plain matmul with ``W_k`` (``rows_matmul``), summed over ``k``;
    the cheaper side goes first: aggregate then project when ``C <= O``,
    project then aggregate otherwise (same sum up to float rounding; a bias
    then moves through the graph as ``sum_k b_k colsum(A_k)``).
    """
    if reference_enabled():
        return _reference_graph_project(x, adjacency, kernel, subset_bias)
    b, v, t, c = x.shape
    k, _, o = kernel.shape
    per_clip = adjacency.ndim == 4
    w = adjacency.shape[-1]

    def gather(a: Array, features: Array) -> Array:  # (V, W) or (B, V, W), (B, V, T, F)
        out = aggregate_joints(a, features.reshape(b, v, -1))
        return out.reshape(b, w, t, features.shape[-1])

    def subset(i: int) -> Array:
        return adjacency[:, i] if per_clip else adjacency[i]

    out = None
    for i in range(k):
        if c <= o:
            term = rows_matmul(gather(subset(i), x), kernel[i])
        else:
            projected = rows_matmul(x, kernel[i])
            if subset_bias is not None:
                projected = projected + subset_bias[i]
            term = gather(subset(i), projected)
        out = term if out is None else out + term
    if subset_bias is not None and c <= o:
        # sum_v A_k[v, w] b_k: the bias of every gathered joint, summed per subset.
        through = jnp.einsum("...kvw,ko->...wo", adjacency, subset_bias)
        out = out + (through[:, :, None] if per_clip else through[None, :, None])
    return out


def _reference_graph_project(
    x: Array, adjacency: Array, kernel: Array, subset_bias: Array | None
) -> Array:
    projected = jnp.einsum("bvtc,kco->kbvto", x, kernel)
    if subset_bias is not None:
        projected = projected + subset_bias[:, None, None, None, :]
    spec = "kvw,kbvto->bwto" if adjacency.ndim == 3 else "bkvw,kbvto->bwto"
    return jnp.einsum(spec, adjacency, projected)


def subsets_major(embedding: Array) -> Array:
    """``(B, V, T, K, C_e) -> (B, K, V, T * C_e)``: each subset's embedding as one row per joint.

    The copy moves whole ``C_e``-channel blocks, where the ``einsum`` over
    ``(t, i)`` laid the operands out with frames and joints innermost
    (element-wise transposes) for the forward and again for the gradient.
    """
    b, v, t, k, i = embedding.shape
    return jnp.transpose(embedding, (0, 3, 1, 2, 4)).reshape(b, k, v, t * i)


def embedding_scores(theta: Array, phi: Array) -> Array:
    """``s[b, k, v, w] = sum_{t, i} theta[b, v, t, k, i] phi[b, w, t, k, i]``.

    ``(B, V, T, K, C_e)`` twice -> ``(B, K, V, W)``: the unnormalised
    data-dependent graph of each subset. Fast path: ``subsets_major`` rows.
    """
    if reference_enabled():
        return jnp.einsum("bvtki,bwtki->bkvw", theta, phi)
    return jnp.einsum("bkvf,bkwf->bkvw", subsets_major(theta), subsets_major(phi))
