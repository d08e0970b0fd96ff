"""MS-G3D: parity with kenziyuliu/MS-G3D, its graphs and windows, shapes, training, conversion."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_contract import (
    check_bfloat16,
    check_from_torch_errors,
    check_golden_parity,
    check_parameter_count,
    check_training_step,
    check_unknown_override,
    count,
    param_shapes,
)

from smg_jax import graph, models
from smg_jax.models import msg3d

# Two narrow blocks (one strided), few scales: compiles in a few seconds.
SMALL = {"channels": (6, 12), "strides": (1, 2), "num_gcn_scales": 3, "num_g3d_scales": 2}


def test_golden_parity():
    check_golden_parity("msg3d")


def test_golden_parity_with_the_authors_weights():
    check_golden_parity("msg3d", shared=True)


def test_parameter_count_matches_the_original():
    # 3,177,890 trainable (golden/README.md), the A_res offsets included.
    check_parameter_count("msg3d", 3_177_890)
    without = param_shapes(models.create("msg3d", num_classes=17, use_a_res=False))
    a_res = 25 * 25 * 13 * 3 + sum(6 * (tau * 25) ** 2 for tau in (3, 5)) * 3
    assert count(without) == 3_177_890 - a_res


def test_window_graph_in_joint_major_order_aggregates_like_the_published_one():
    """Our node order (v * tau + j) gives the published einsum('vu,nctu->nctv') result."""
    tau, v, k = 3, 25, 2
    scales = msg3d.graph_scales(graph.KINECT_V2, k, tau)
    assert scales.shape == (k * tau * v, tau * v)
    rng = np.random.default_rng(0)
    a = (scales + rng.uniform(-0.1, 0.1, scales.shape)).astype(np.float32)  # a dense A_res
    windows = rng.standard_normal((v, tau, 2, 4, 5)).astype(np.float32)  # (V, tau, B, L, C)
    module = msg3d.MultiScaleGraphConv(7, k, graph.KINECT_V2)
    variables = jax.jit(module.init, static_argnums=2)(jax.random.key(0), windows, False)
    variables = {**variables, "params": {**variables["params"], "A_res": a - scales}}
    ours = jax.jit(module.apply, static_argnums=2)(variables, windows, False)  # (B, V, L, tau, 7)

    # The published computation on (N, C, L, tau * V) with node j * V + v.
    theirs_in = windows.transpose(2, 4, 3, 1, 0).reshape(2, 5, 4, tau * v)
    agg = np.einsum("vu,nctu->nctv", a, theirs_in).reshape(2, 5, 4, k, tau * v)
    agg = agg.transpose(0, 3, 1, 2, 4).reshape(2, k * 5, 4, tau * v)  # channel k * C + c
    params = variables["params"]
    z = np.einsum("nitw,io->notw", agg, np.asarray(params["conv"]["kernel"]))
    z = z + np.asarray(params["conv"]["bias"])[None, :, None, None]
    stats = variables["batch_stats"]["bn"]
    z = (z - np.asarray(stats["mean"])[None, :, None, None]) / np.sqrt(
        np.asarray(stats["var"])[None, :, None, None] + 1e-5
    )
    theirs = np.maximum(z, 0).reshape(2, 7, 4, tau, v).transpose(0, 4, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("frames", "size", "stride", "dilation"), [(7, 3, 1, 1), (9, 5, 2, 1), (10, 3, 2, 2)]
)
def test_unfold_windows_matches_torch_unfold_arithmetic(frames, size, stride, dilation):
    x = np.arange(frames, dtype=np.float32).reshape(1, 1, frames, 1) + 1  # frame t holds t + 1
    pad = (size + (size - 1) * (dilation - 1) - 1) // 2
    length = (frames + 2 * pad - dilation * (size - 1) - 1) // stride + 1
    out = np.asarray(msg3d.unfold_windows(jnp.asarray(x), size, stride, dilation))
    assert out.shape == (1, size, 1, length, 1)
    for window in range(length):
        for j in range(size):
            t = window * stride + j * dilation - pad
            expected = t + 1 if 0 <= t < frames else 0
            assert out[0, j, 0, window, 0] == expected


@pytest.mark.parametrize(("frames", "bodies", "classes"), [(16, 1, 5), (9, 2, 3), (7, 1, 17)])
def test_output_shapes(frames, bodies, classes):
    # Abstract evaluation: exact shape arithmetic without compiling (MS-G3D compiles
    # slowly); the training test runs the numbers.
    module = models.create("msg3d", num_classes=classes, num_persons=bodies, **SMALL)
    x = jax.ShapeDtypeStruct((3, bodies, frames, 25, 3), jnp.float32)
    logits = jax.eval_shape(lambda x: module.apply(module.init(jax.random.key(0), x), x), x)
    assert logits.shape == (3, classes) and logits.dtype == jnp.float32


def test_temporal_lengths_follow_pytorch():
    # ceil(T / 2) after a strided block, for odd and even T, in every pathway.
    module = models.create("msg3d", num_classes=3, **SMALL)
    for frames, expected in ((9, 5), (10, 5), (1, 1)):
        x = jax.ShapeDtypeStruct((1, 1, frames, 25, 3), jnp.float32)
        variables = jax.eval_shape(lambda x, m=module: m.init(jax.random.key(0), x), x)
        _, state = jax.eval_shape(
            lambda v, x, m=module: m.apply(v, x, capture_intermediates=True), variables, x
        )
        assert state["intermediates"]["block2"]["__call__"][0].shape == (1, 25, expected, 12)


def test_training_step_lowers_the_loss():
    check_training_step("msg3d", SMALL)


def test_bfloat16():
    check_bfloat16("msg3d", SMALL)


@pytest.mark.parametrize(
    "ablation",
    [
        {"disentangled_agg": False},
        {"use_a_res": False},
        {"window_sizes": (3,), "window_dilations": (2,)},
        {"tcn_dilations": (1, 2), "channels": (8, 12)},
    ],
)
def test_ablations_build(ablation):
    module = models.create("msg3d", num_classes=3, **{**SMALL, **ablation})
    x = jax.ShapeDtypeStruct((1, 1, 8, 25, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: module.init(jax.random.key(0), x), x)
    assert jax.eval_shape(module.apply, variables, x).shape == (1, 3)
    block = variables["params"]["block1"]
    assert ("A_res" in block["sgcn_gcn"]) == ablation.get("use_a_res", True)
    windows = ablation.get("window_sizes", (3, 5))
    assert sorted(k for k in block if k.startswith("gcn3d")) == [
        f"gcn3d{i}" for i in range(len(windows))
    ]


def test_non_disentangled_scales_are_powers_of_the_normalised_graph():
    one_hop = graph.normalize_symmetric(graph.binary_adjacency() + np.eye(25, dtype=np.float32))
    scales = msg3d.graph_scales(graph.KINECT_V2, 3, 1, disentangled=False).reshape(3, 25, 25)
    np.testing.assert_allclose(scales[2], one_hop @ one_hop, rtol=1e-6, atol=1e-7)
    window = graph.spatio_temporal_window(graph.binary_adjacency(), 3)
    g3d = msg3d.graph_scales(graph.KINECT_V2, 2, 3, disentangled=False).reshape(2, 75, 75)
    np.testing.assert_allclose(g3d[1], graph.normalize_symmetric(window), rtol=1e-6)
    np.testing.assert_array_equal(g3d[0], np.eye(75))


def test_dropout_is_active_only_in_training():
    # Unit level (the whole model compiles slowly): dropout sits before the 1x1 conv.
    module = msg3d.MultiScaleGraphConv(4, 2, graph.KINECT_V2, dropout=0.5)
    x = jax.random.normal(jax.random.key(0), (25, 1, 2, 6, 3))  # (V, tau, B, L, C)
    variables = jax.jit(module.init, static_argnums=2)(jax.random.key(0), x, False)

    @jax.jit
    def train(key):
        out, _ = module.apply(variables, x, True, mutable=["batch_stats"], rngs={"dropout": key})
        return out

    assert not np.allclose(train(jax.random.key(0)), train(jax.random.key(1)))
    evaluate = jax.jit(module.apply, static_argnums=2)
    np.testing.assert_array_equal(evaluate(variables, x, False), evaluate(variables, x, False))


def test_rejects_inputs_and_overrides_that_do_not_fit():
    check_unknown_override("msg3d")
    module = models.create("msg3d", num_classes=3, **SMALL)
    with pytest.raises(ValueError, match="M=1"):
        jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 2, 8, 25, 3)))
    odd = models.create("msg3d", num_classes=3, **{**SMALL, "channels": (6, 10)})
    with pytest.raises(ValueError, match="multiple"):
        jax.eval_shape(odd.init, jax.random.key(0), jnp.zeros((1, 1, 8, 25, 3)))


def test_from_torch_rejects_mismatched_state_dicts():
    check_from_torch_errors("msg3d")
