"""The shared pieces of the graph-convolution models against PyTorch's conventions, in NumPy."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smg_jax.models import layers, stgcn
from smg_jax.models.ops import batch_norm, joints, temporal_conv


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_batch_norm_follows_pytorch_in_training_and_eval():
    x = rand(4, 5, 6, 3) * 2 + 1
    bn = layers.BatchNorm()
    variables = bn.init(jax.random.key(0), x, train=False)
    y, updated = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    flat = x.reshape(-1, 3).astype(np.float64)
    mean, var = flat.mean(0), flat.var(0)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)
    # momentum 0.1 in PyTorch's convention, unbiased variance in the running average
    stats = updated["batch_stats"]
    np.testing.assert_allclose(stats["mean"], 0.1 * mean, rtol=1e-5)
    n = flat.shape[0]
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    evaluated = bn.apply({**variables, "batch_stats": stats}, x, train=False)
    np.testing.assert_allclose(
        evaluated, (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5), atol=1e-5
    )


def test_batch_norm_axis_name_averages_statistics_across_replicas():
    x = rand(4, 7, 2, seed=1)
    whole = layers.BatchNorm()
    variables = whole.init(jax.random.key(0), x, train=False)
    expected, expected_stats = whole.apply(variables, x, train=True, mutable=["batch_stats"])

    shared = layers.BatchNorm(axis_name="replicas")

    def per_replica(shard):
        return shared.apply(variables, shard, train=True, mutable=["batch_stats"])

    out, stats = jax.vmap(per_replica, axis_name="replicas")(x.reshape(2, 2, 7, 2))
    np.testing.assert_allclose(out.reshape(x.shape), expected, atol=1e-5)
    for key in ("mean", "var"):
        np.testing.assert_allclose(
            stats["batch_stats"][key][0], expected_stats["batch_stats"][key], rtol=1e-5
        )


def _reference_batch_norm(x, scale, bias, axis_name=None):
    """The textbook formula, differentiated by JAX: what ``batch_norm_train`` must equal."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    if axis_name:
        mean = jax.lax.pmean(mean, axis_name)
    var = jnp.square(x - mean).mean(axes)
    if axis_name:
        var = jax.lax.pmean(var, axis_name)
    return (x - mean) / jnp.sqrt(var + 1e-5) * scale + bias, mean, var


def _batch_norm_loss(norm, weights):
    # Every output gets a cotangent, the statistics too (the model's loss never
    # reads them, but the gradient must stay right if one does).
    def loss(x, scale, bias):
        y, mean, var = norm(x, scale, bias)
        return (y * weights[0]).sum() + (mean * weights[1]).sum() + (var * weights[2]).sum()

    return loss


def test_batch_norm_train_gradient_matches_autodiff_of_the_formula():
    x = rand(4, 5, 6, 3, seed=2) * 3 + 2
    scale, bias = rand(3, seed=3), rand(3, seed=4)
    weights = (rand(4, 5, 6, 3, seed=5), rand(3, seed=6), rand(3, seed=7))
    ours = jax.jit(lambda x, s, b: batch_norm.batch_norm_train(x, s, b, 1e-5, None))
    for got, want in zip(ours(x, scale, bias), _reference_batch_norm(x, scale, bias), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    grads = jax.grad(_batch_norm_loss(ours, weights), (0, 1, 2))(x, scale, bias)
    expected = jax.grad(_batch_norm_loss(_reference_batch_norm, weights), (0, 1, 2))(x, scale, bias)
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_batch_norm_train_gradient_across_replicas_matches_one_device():
    # As under pmap: each replica takes its gradient inside the mapped axis.
    x = rand(4, 3, 7, 4, seed=8) * 2 - 1
    scale, bias = rand(4, seed=9), rand(4, seed=10)
    weights = rand(4, 3, 7, 4, seed=11)

    def loss(axis_name):
        def value(x, scale, bias):
            y, _, _ = batch_norm.batch_norm_train(x, scale, bias, 1e-5, axis_name)
            return (y * weights).sum()

        return value

    def per_replica(shard, w):
        def value(shard, scale, bias):
            y, _, _ = batch_norm.batch_norm_train(shard, scale, bias, 1e-5, "replicas")
            return (y * w).sum()

        dx, dscale, dbias = jax.grad(value, (0, 1, 2))(shard, scale, bias)
        return dx, jax.lax.psum(dscale, "replicas"), jax.lax.psum(dbias, "replicas")

    dx, dscale, dbias = jax.vmap(per_replica, axis_name="replicas")(
        x.reshape(2, 2, 3, 7, 4), weights.reshape(2, 2, 3, 7, 4)
    )
    expected = jax.grad(loss(None), (0, 1, 2))(x, scale, bias)
    np.testing.assert_allclose(dx.reshape(x.shape), expected[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dscale[0], expected[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dbias[0], expected[2], rtol=1e-4, atol=1e-5)


def test_batch_norm_in_bfloat16_keeps_float32_statistics_and_gradients():
    x = rand(4, 5, 6, 3, seed=14) * 2 + 1
    bn = layers.BatchNorm(dtype=jnp.bfloat16)
    variables = bn.init(jax.random.key(0), x, train=False)

    def loss(params, x):
        y, _ = bn.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        assert y.dtype == jnp.bfloat16
        return (y.astype(jnp.float32) * np.arange(3)).sum()

    grads = jax.grad(loss)(variables["params"], x.astype(jnp.bfloat16))
    assert grads["scale"].dtype == jnp.float32
    expected = jax.grad(loss)(variables["params"], x)
    np.testing.assert_allclose(grads["bias"], expected["bias"], rtol=1e-2)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-clip"])
def test_aggregate_joints_and_its_gradient_match_einsum(shared):
    features = rand(3, 5, 7, seed=20)
    adjacency = rand(*((5, 4) if shared else (3, 5, 4)), seed=21)
    weights = rand(3, 4, 7, seed=22)
    spec = "vw,bvf->bwf" if shared else "bvw,bvf->bwf"

    def loss(aggregate):
        return lambda a, x: (aggregate(a, x) * weights).sum()

    np.testing.assert_allclose(
        jax.jit(joints.aggregate_joints)(adjacency, features),
        np.einsum(spec, adjacency, features),
        rtol=1e-5,
        atol=1e-5,
    )
    grads = jax.grad(loss(joints.aggregate_joints), (0, 1))(adjacency, features)
    expected = jax.grad(loss(lambda a, x: jnp.einsum(spec, a, x)), (0, 1))(adjacency, features)
    for got, want in zip(grads, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_subsets_major_puts_each_subsets_frames_and_channels_in_one_row():
    embedding = rand(2, 5, 4, 3, 6, seed=23)  # (B, V, T, K, C_e)
    rows = np.asarray(joints.subsets_major(embedding))
    assert rows.shape == (2, 3, 5, 4 * 6)
    np.testing.assert_array_equal(rows[1, 2, 3], np.asarray(embedding)[1, 3, :, 2, :].ravel())
    other = rand(2, 5, 4, 3, 6, seed=24)
    np.testing.assert_allclose(
        np.einsum("bkvf,bkwf->bkvw", rows, np.asarray(joints.subsets_major(other))),
        np.einsum("bvtki,bwtki->bkvw", embedding, other),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    ("frames", "kernel", "stride", "dilation"),
    list(itertools.product((7, 8, 15), (1, 5, 9), (1, 2, 3), (1, 2))),
)
def test_temporal_conv_output_length_is_pytorchs(frames, kernel, stride, dilation):
    conv = layers.TemporalConv(4, kernel, stride, dilation)
    x = jax.ShapeDtypeStruct((2, 3, frames, 5), jnp.float32)
    y, _ = jax.eval_shape(lambda x: conv.init_with_output(jax.random.key(0), x), x)
    pad = dilation * (kernel - 1) // 2
    assert y.shape == (2, 3, layers.conv_output_length(frames, kernel, stride, pad, dilation), 4)


def test_temporal_conv_matches_a_direct_convolution():
    x = rand(2, 3, 11, 4)
    conv = layers.TemporalConv(5, kernel_size=3, stride=2, dilation=2)
    variables = conv.init(jax.random.key(0), x)
    kernel, bias = (np.asarray(variables["params"][k]) for k in ("kernel", "bias"))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (0, 0)))
    out_len = layers.conv_output_length(11, 3, 2, 2, 2)
    expected = np.stack(
        [
            sum(padded[:, :, 2 * t + 2 * j] @ kernel[j] for j in range(3)) + bias
            for t in range(out_len)
        ],
        axis=2,
    )
    np.testing.assert_allclose(conv.apply(variables, x), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("frames", "kernel", "stride", "dilation", "pad"),
    [(60, 9, 2, 1, 4), (15, 9, 2, 1, 4), (16, 5, 3, 1, 2), (11, 3, 2, 1, 1), (9, 2, 2, 1, 0),
     (30, 5, 2, 2, 4), (30, 3, 2, 3, 3), (17, 5, 3, 2, 4), (8, 5, 2, 4, 8)],
)  # fmt: skip
def test_strided_conv_rewrite_matches_xlas_strided_convolution_and_its_gradients(
    frames, kernel, stride, dilation, pad
):
    x = jnp.asarray(rand(3, frames, 4))
    w = jnp.asarray(rand(kernel, 4, 5))

    def strided(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (stride,), [(pad, pad)], rhs_dilation=(dilation,),
            dimension_numbers=("NWC", "WIO", "NWC"),
        )  # fmt: skip

    def rewritten(x, w):
        return temporal_conv.strided_conv1d(x, w, stride, dilation, pad)

    expected = strided(x, w)
    np.testing.assert_allclose(rewritten(x, w), expected, atol=1e-5)
    cotangent = jnp.asarray(rand(*expected.shape))
    grads = [
        jax.grad(lambda x, w, f=f: jnp.sum(f(x, w) * cotangent), argnums=(0, 1))(x, w)
        for f in (strided, rewritten)
    ]
    for ours, xlas in zip(grads[1], grads[0], strict=True):
        np.testing.assert_allclose(ours, xlas, atol=1e-5)


def test_max_pool_pads_with_minus_infinity():
    x = -1.0 - np.abs(rand(1, 2, 5, 3))
    y = layers.max_pool_time(jnp.asarray(x), 3, 2, 1)
    expected = np.stack([x[:, :, 0:2].max(2), x[:, :, 1:4].max(2), x[:, :, 3:5].max(2)], axis=2)
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize(("c_in", "c_out"), [(3, 8), (8, 3)])
def test_graph_conv_equals_project_then_aggregate(c_in, c_out):
    # Both evaluation orders must give upstream's conv-then-einsum result.
    x, adjacency = rand(2, 5, 4, c_in), np.abs(rand(3, 5, 5, seed=2))
    gcn = stgcn.GraphConv(c_out, bias_init=jax.nn.initializers.normal(1.0))
    variables = gcn.init(jax.random.key(0), x, adjacency)
    kernel, bias = (np.asarray(variables["params"][k]) for k in ("kernel", "bias"))
    projected = (x @ kernel + bias).reshape(2, 5, 4, 3, c_out)
    expected = np.einsum("bvtko,kvw->bwto", projected, adjacency)
    np.testing.assert_allclose(gcn.apply(variables, x, adjacency), expected, atol=1e-4)


@pytest.mark.parametrize("bodies_in_channels", [True, False])
def test_data_batch_norm_orders_channels_like_the_originals(bodies_in_channels):
    n, m, t, v, c = 2, 2, 3, 4, 3
    x = rand(n, m, t, v, c)
    module = layers.DataBatchNorm(bodies_in_channels=bodies_in_channels)
    variables = module.init(jax.random.key(0), x, train=False)
    size = m * v * c if bodies_in_channels else v * c
    assert variables["params"]["bn"]["scale"].shape == (size,)
    mean = np.arange(size, dtype=np.float32)
    variables = {**variables, "batch_stats": {"bn": {"mean": mean, "var": np.ones(size)}}}
    y = np.asarray(module.apply(variables, x, train=False))  # (N*M, V, T, C)
    index = np.arange(m * v * c).reshape(m, v, c) % size  # channel m*V*C + v*C + c (or v*C + c)
    expected = (x - index[None, :, None] / 1.0) / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(
        y, expected.transpose(0, 1, 3, 2, 4).reshape(n * m, v, t, c), atol=1e-5
    )


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_keeps_the_expected_fraction_scaled(rate):
    x = jnp.ones((16, 25, 30, 64))
    y = layers.Dropout(rate).apply({}, x, False, rngs={"dropout": jax.random.key(3)})
    kept = np.asarray(y) != 0
    assert abs(kept.mean() - (1 - rate)) < 0.01
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / (1 - rate), rtol=1e-6)


def test_dropout_masks_are_independent_across_elements_and_keys():
    x = jnp.ones((200_000,))
    drop = layers.Dropout(0.5)
    a = np.asarray(drop.apply({}, x, False, rngs={"dropout": jax.random.key(0)})) > 0
    b = np.asarray(drop.apply({}, x, False, rngs={"dropout": jax.random.key(1)})) > 0
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.01  # neighbours
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01  # two keys
    assert abs(np.corrcoef(a[:-64], a[64:])[0, 1]) < 0.01  # one channel row apart


def test_dropout_is_the_identity_when_deterministic_or_rate_zero():
    x = jax.random.normal(jax.random.key(0), (4, 5))
    np.testing.assert_array_equal(layers.Dropout(0.5).apply({}, x, True), x)
    np.testing.assert_array_equal(layers.Dropout(0.0).apply({}, x, False), x)
    assert not np.asarray(layers.Dropout(1.0).apply({}, x, False)).any()


def test_rows_matmul_is_the_plain_product_with_the_same_gradients():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(2, 5, 7, 4)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
    np.testing.assert_allclose(joints.rows_matmul(x, kernel), x @ kernel, rtol=1e-6, atol=1e-6)
    cotangent = jnp.asarray(rng.normal(size=(2, 5, 7, 6)), jnp.float32)
    ours = jax.vjp(joints.rows_matmul, x, kernel)[1](cotangent)
    plain = jax.vjp(jnp.matmul, x, kernel)[1](cotangent)
    for got, want in zip(ours, plain, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kernel", "dilation", "pad"), [(9, 1, 4), (5, 2, 4), (3, 1, 0), (5, 3, 2)]
)
def test_conv_frames_and_its_split_gradient_match_xlas_convolution(kernel, dilation, pad):
    # Forward and input gradient 1-D over B V sequences, kernel gradient 2-D.
    x = jnp.asarray(rand(2, 3, 11, 4))
    w = jnp.asarray(rand(kernel, 4, 5, seed=1))

    def plain(x, w):
        y = jax.lax.conv_general_dilated(
            x.reshape(6, 11, 4), w, (1,), [(pad, pad)], rhs_dilation=(dilation,),
            dimension_numbers=("NWC", "WIO", "NWC"),
        )  # fmt: skip
        return y.reshape(2, 3, -1, 5)

    def ours(x, w):
        return temporal_conv.conv_frames(x, w, pad, dilation)

    expected = plain(x, w)
    np.testing.assert_allclose(ours(x, w), expected, rtol=1e-5, atol=1e-5)
    cotangent = jnp.asarray(rand(*expected.shape, seed=2))
    grads = [
        jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(f(x, w) * cotangent), argnums=(0, 1)))(x, w)
        for f in (plain, ours)
    ]
    for mine, xlas in zip(grads[1], grads[0], strict=True):
        np.testing.assert_allclose(mine, xlas, rtol=1e-5, atol=1e-5)
