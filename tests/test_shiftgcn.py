"""Shift-GCN: parity with the authors' model, its shift op and gradient rule, shapes, training."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_golden
from model_contract import (
    check_bfloat16,
    check_from_torch_errors,
    check_golden_parity,
    check_parameter_count,
    check_training_step,
    check_unknown_override,
    count,
    example,
    init,
    param_shapes,
)

from smg_jax import models
from smg_jax.models import convert, shiftgcn
from smg_jax.models.ops import shift as shift_op

# A narrow two-unit network (one strided unit) that compiles in a second or two.
SMALL = {"channels": (8, 16), "strides": (1, 2)}


# ---------------------------------------------------------------------------
# The temporal shift op.
# ---------------------------------------------------------------------------


def shift_reference(x, xpos, ypos, stride):
    """The CUDA forward kernel, written out per output element (NumPy, float32)."""
    b, t, v, c = x.shape
    out = np.zeros((b, t // stride, v, c), np.float32)
    for ch in range(c):
        y = np.float32(ypos[ch] + np.float32(0.5)) if stride > 1 else np.float32(ypos[ch])
        xs = np.float32(xpos[ch])
        x1, y1 = math.floor(xs), math.floor(y)
        dx, dy = np.float32(xs - x1), np.float32(y - y1)

        def q(h, w, ch=ch):
            inside = 0 <= h < t and 0 <= w < v
            return x[:, h, w, ch] if inside else np.zeros(b, np.float32)

        for ht in range(t // stride):
            h = ht * stride
            for w in range(v):
                out[:, ht, w, ch] = (
                    q(h + y1, w + x1) * (1 - dx) * (1 - dy)
                    + q(h + y1, w + x1 + 1) * dx * (1 - dy)
                    + q(h + y1 + 1, w + x1) * (1 - dx) * dy
                    + q(h + y1 + 1, w + x1 + 1) * dx * dy
                )
    return out


def shift_case(seed, frames, stride, path, channels=6, joints=5, batch=2):
    """Input and shifts for the op. ``path="near"``: integer offsets of a few
    frames and joints; ``"far"``: some taps entirely outside the plane."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, frames, joints, channels)).astype(np.float32)
    # Fractions kept away from integers so that finite differences stay in one cell.
    low, high = (-2, 3) if path == "near" else (-3, 3)
    ypos = rng.integers(low, high, channels) + rng.uniform(0.2, 0.8, channels)
    if stride > 1:
        ypos -= 0.5  # the op adds it back
    ypos = ypos.astype(np.float32)
    xpos = (rng.integers(-1, 2, channels) + rng.uniform(0.2, 0.8, channels)).astype(np.float32)
    xpos[1] = 3e-9  # the original's initial scale
    if path == "far":
        ypos[0] = -frames - 2.5  # every tap outside the plane
        xpos[2] = 2.5
        # Output frame 0 reads the last frame and one past it; later frames read nothing.
        ypos[3] = frames - 0.6 - (0.5 if stride > 1 else 0.0)
    # "near" runs the inference op's static-slice path, "far" its gather path.
    kx = shift_op._split(jnp.asarray(xpos))[0]
    ky = shift_op._split(shift_op._shift_positions(xpos, jnp.asarray(ypos), stride)[1])[0]
    assert bool(shift_op._in_window(kx, ky)) == (path == "near")
    return x, xpos, ypos


@pytest.mark.parametrize("path", ["near", "far"])
@pytest.mark.parametrize(("frames", "stride"), [(9, 1), (10, 2), (11, 2), (12, 3)])
def test_temporal_shift_matches_the_kernel_formula(frames, stride, path):
    x, xpos, ypos = shift_case(frames, frames, stride, path)
    shift = jax.jit(shiftgcn.temporal_shift, static_argnums=3)
    ours = shift(jnp.asarray(x), jnp.asarray(xpos), jnp.asarray(ypos), stride)
    assert ours.shape == (2, frames // stride, 5, 6)
    np.testing.assert_allclose(np.asarray(ours), shift_reference(x, xpos, ypos, stride), atol=1e-6)


@pytest.mark.parametrize("path", ["near", "far"])
@pytest.mark.parametrize(("frames", "stride"), [(9, 1), (11, 2), (12, 3)])
def test_training_path_computes_the_same_shift(frames, stride, path):
    # Under differentiation the op runs its matrix formulation (the custom VJP's forward).
    x, xpos, ypos = shift_case(frames, frames, stride, path)
    out, _ = jax.jit(
        lambda x: jax.vjp(lambda x: shiftgcn.temporal_shift(x, xpos, ypos, stride), x)
    )(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out), shift_reference(x, xpos, ypos, stride), atol=1e-6)


def test_temporal_shift_in_bfloat16_follows_float32():
    x, xpos, ypos = shift_case(0, 12, 2, "near")
    shift = jax.jit(shiftgcn.temporal_shift, static_argnums=3)
    full = shift(jnp.asarray(x), jnp.asarray(xpos), jnp.asarray(ypos), 2)
    half = shift(jnp.asarray(x, jnp.bfloat16), jnp.asarray(xpos), jnp.asarray(ypos), 2)
    assert half.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(half, np.float32), full, atol=0.05)


def test_temporal_shift_hand_computed_case():
    # One channel, 4 frames, 1 joint; y = 0.25, stride 1: out[t] = .75 x[t] + .25 x[t+1].
    x = jnp.asarray([1.0, 2.0, 4.0, 8.0]).reshape(1, 4, 1, 1)
    shift = jax.jit(shiftgcn.temporal_shift, static_argnums=3)
    out = shift(x, jnp.zeros(1), jnp.asarray([0.25]), 1)
    np.testing.assert_allclose(np.asarray(out).ravel(), [1.25, 2.5, 5.0, 6.0])
    # Stride 2 adds half a frame: y = -0.25 + 0.5 samples 2t + 0.25.
    out = shift(x, jnp.zeros(1), jnp.asarray([-0.25]), 2)
    np.testing.assert_allclose(np.asarray(out).ravel(), [1.25, 5.0])
    # Gradient: d/dy sum(out) = sum(x[t+1] - x[t]) masked = (2-1)+(4-2)+(8-4)+(0-8) < 0.
    grads = jax.jit(
        jax.grad(lambda x, a, b: jnp.sum(shiftgcn.temporal_shift(x, a, b, 1)), argnums=(0, 1, 2))
    )(x, jnp.zeros(1), jnp.asarray([0.25]))
    np.testing.assert_allclose(np.asarray(grads[0]).ravel(), [0.75, 1.0, 1.0, 1.0])
    assert float(grads[1][0]) == 0.0
    assert grads[2][0] == np.float32(-shift_op.YPOS_STEP)


@pytest.mark.parametrize("path", ["near", "far"])
@pytest.mark.parametrize(("frames", "stride"), [(9, 1), (11, 2)])
def test_temporal_shift_gradient_rule(frames, stride, path):
    """Input: the exact adjoint (= autodiff). ypos: 0.01 sign(dL/dy) (1e-4 at 0). xpos: 0."""
    x, xpos, ypos = shift_case(frames + 1, frames, stride, path)
    rng = np.random.default_rng(0)
    g = rng.standard_normal((2, frames // stride, 5, 6)).astype(np.float32)
    g[..., -1] = 0.0  # no gradient reaches the last channel
    args = tuple(map(jnp.asarray, (x, xpos, ypos)))
    grad_x, grad_xpos, grad_ypos = jax.jit(
        lambda g: jax.vjp(lambda *a: shiftgcn.temporal_shift(*a, stride), *args)[1](g)
    )(jnp.asarray(g))

    # Plain autodiff of the same sampling (no custom rule) for the input gradient.
    def plain(x, xpos, ypos):
        return shift_op._bilinear(x, *shift_op._shift_positions(xpos, ypos, stride), stride)

    plain_x, _, plain_ypos = jax.jit(lambda g: jax.vjp(plain, *args)[1](g))(jnp.asarray(g))
    np.testing.assert_allclose(np.asarray(grad_x), np.asarray(plain_x), atol=1e-6)

    # Central finite differences of <g, out> in ypos on the NumPy reference (float64
    # accumulation); inside a unit cell the sampling is linear in y, so this is exact.
    def loss(y):
        return float(np.sum(g.astype(np.float64) * shift_reference(x, xpos, y, stride)))

    step = 0.1
    fd = np.array([
        (loss(ypos + step * np.eye(6, dtype=np.float32)[k])
         - loss(ypos - step * np.eye(6, dtype=np.float32)[k])) / (2 * step)
        for k in range(6)
    ])  # fmt: skip
    expected = np.where(fd != 0, np.sign(fd) * shift_op.YPOS_STEP, shift_op.YPOS_ZERO_STEP)
    expected[-1] = shift_op.YPOS_ZERO_STEP
    np.testing.assert_array_equal(np.asarray(grad_ypos), expected.astype(np.float32))
    # Autodiff would give the raw derivative instead (summed over the batch).
    np.testing.assert_allclose(np.asarray(plain_ypos)[:-1], fd[:-1], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(grad_xpos), np.zeros(6, np.float32))


def test_spatial_shift_is_the_published_permutation():
    # The original's loops, written out.
    v, c = 25, 3
    expected_in = [(i * c + j + j * c) % (c * v) for i in range(v) for j in range(c)]
    expected_out = [(i * c + j - j * c) % (c * v) for i in range(v) for j in range(c)]
    np.testing.assert_array_equal(shiftgcn.spatial_shift_indices(v, c, +1), expected_in)
    np.testing.assert_array_equal(shiftgcn.spatial_shift_indices(v, c, -1), expected_out)
    x = jnp.arange(2 * v * c, dtype=jnp.float32).reshape(2, v, c)
    shifted = shiftgcn.spatial_shift(x, +1)
    assert float(shifted[0, 0, 2]) == float(x[0, 2, 2])  # joint 0, channel 2 reads joint 2
    back = shiftgcn.spatial_shift(shifted, -1)
    np.testing.assert_array_equal(np.asarray(back), np.asarray(x))
    # The custom gradient of the permutation is the inverse permutation.
    weights = jnp.asarray(np.random.default_rng(0).standard_normal((2, v, c)), jnp.float32)
    grad = jax.grad(lambda x: jnp.sum(shiftgcn.spatial_shift(x, +1) * weights))(x)
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(shiftgcn.spatial_shift(weights, -1)))


# ---------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------


def test_golden_parity():
    check_golden_parity("shiftgcn")


def test_golden_parity_with_the_authors_weights():
    check_golden_parity("shiftgcn", shared=True)


def test_index_arrays_in_the_archive_are_the_rebuilt_permutations():
    _, _, state_dict, _ = load_golden("shiftgcn")
    checked = 0
    for name, value in state_dict.items():
        if name.endswith(("gcn1.shift_in", "gcn1.shift_out")):
            direction = +1 if name.endswith("shift_in") else -1
            rebuilt = shiftgcn.spatial_shift_indices(25, value.size // 25, direction)
            np.testing.assert_array_equal(value, rebuilt)
            checked += 1
    assert checked == 20


def test_parameter_count_matches_the_original():
    # 681,906 trainable (golden/README.md); the 64,075 index entries are not parameters here.
    check_parameter_count("shiftgcn", 681_906)
    no_mask = param_shapes(models.create("shiftgcn", num_classes=17, feature_mask=False))
    widths = (3, *shiftgcn.DEFAULT_CHANNELS[:-1])
    assert count(no_mask) == 681_906 - 25 * sum(widths)


@pytest.mark.parametrize(("frames", "bodies", "classes"), [(16, 1, 5), (9, 2, 3), (7, 1, 17)])
def test_output_shapes(frames, bodies, classes):
    # Abstract evaluation: exact shape arithmetic without compiling; the training
    # test runs the numbers. Odd T: the strided unit keeps T // 2 frames and crops
    # its residual to match.
    module = models.create("shiftgcn", num_classes=classes, num_persons=bodies, **SMALL)
    x = jax.ShapeDtypeStruct((3, bodies, frames, 25, 3), jnp.float32)
    logits = jax.eval_shape(lambda x: module.apply(module.init(jax.random.key(0), x), x), x)
    assert logits.shape == (3, classes) and logits.dtype == jnp.float32


def test_training_step_lowers_the_loss():
    check_training_step("shiftgcn", SMALL)


def test_gradients_follow_the_shift_rule_and_inits_the_authors():
    module = models.create("shiftgcn", num_classes=3, num_persons=2, **SMALL)
    x = example(module, batch=2, frames=9)
    variables = init(module, x)
    params = variables["params"]
    unit = params["l2"]
    assert np.all(np.abs(unit["tcn1"]["shift_in"]["xpos"]) <= 1e-8)
    assert np.all(np.abs(unit["tcn1"]["shift_out"]["ypos"]) <= 1.0)
    assert not np.any(unit["gcn1"]["feature_mask"]) and not np.any(unit["gcn1"]["linear_bias"])
    assert not np.any(unit["residual_conv"]["bias"])
    assert np.all(np.abs(unit["tcn1"]["temporal_linear"]["bias"]) <= 1 / math.sqrt(16))

    def loss(params):
        return jnp.sum(module.apply({**variables, "params": params}, x) * jnp.arange(3.0))

    grads = jax.jit(jax.grad(loss))(params)
    steps = np.float32([shift_op.YPOS_STEP, shift_op.YPOS_ZERO_STEP])
    for unit in ("l1", "l2"):
        for key in ("shift_in", "shift_out"):
            shift = grads[unit]["tcn1"][key]
            assert np.all(np.isin(np.abs(np.asarray(shift["ypos"])), steps))
            assert not np.any(np.asarray(shift["xpos"]))


def test_bfloat16():
    check_bfloat16("shiftgcn", SMALL)


@pytest.mark.parametrize(
    "ablation", [{"spatial_shift": False}, {"temporal_shift": False}, {"feature_mask": False}]
)
def test_ablations_build(ablation):
    module = models.create("shiftgcn", num_classes=3, **SMALL, **ablation)
    x = jax.ShapeDtypeStruct((1, 1, 8, 25, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: module.init(jax.random.key(0), x), x)
    assert jax.eval_shape(module.apply, variables, x).shape == (1, 3)
    tcn, gcn = variables["params"]["l1"]["tcn1"], variables["params"]["l1"]["gcn1"]
    assert ("shift_in" in tcn) == ablation.get("temporal_shift", True)
    assert ("feature_mask" in gcn) == ablation.get("feature_mask", True)


def test_rejects_inputs_and_overrides_that_do_not_fit():
    check_unknown_override("shiftgcn")
    module = models.create("shiftgcn", num_classes=3, **SMALL)
    with pytest.raises(ValueError, match="M=1"):
        jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 2, 8, 25, 3)))


def test_from_torch_rejects_mismatched_state_dicts():
    check_from_torch_errors("shiftgcn")
    _, logits, state_dict, _ = load_golden("shiftgcn")
    permuted = dict(state_dict)
    permuted["l2.gcn1.shift_in"] = state_dict["l2.gcn1.shift_in"][::-1].copy()
    with pytest.raises(convert.StateDictError, match="permutation"):
        models.from_torch("shiftgcn", permuted, num_classes=logits.shape[1])
