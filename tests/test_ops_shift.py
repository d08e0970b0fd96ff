"""Shift-GCN's shifts: slice sums, shift matrices and the inverse-gather gradient
against the gather, autodiff and the same ypos rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ops_contract import check_fast_equals_reference, rand

from smg_jax.models import ops
from smg_jax.models.ops import shift


def positions(channels, far, seed=3):
    rng = np.random.default_rng(seed)
    ypos = rng.integers(-2, 3, channels) + rng.uniform(0.2, 0.8, channels)
    xpos = rng.integers(-1, 2, channels) + rng.uniform(0.2, 0.8, channels)
    if far:  # outside the static-slice window: the gather path
        ypos[0] = -9.5
    return xpos.astype(np.float32), ypos.astype(np.float32)


@pytest.mark.parametrize("far", [False, True], ids=["slices", "gather"])
@pytest.mark.parametrize(("frames", "stride"), [(9, 1), (12, 2), (11, 3)])
def test_temporal_shift_equals_the_reference(far, frames, stride):
    xpos, ypos = positions(6, far)
    x = rand(2, frames, 5, 6)
    check_fast_equals_reference(
        lambda x, xpos, ypos: shift.temporal_shift(x, xpos, ypos, stride), [x, xpos, ypos]
    )


def test_the_reference_keeps_the_ypos_rule():
    xpos, ypos = positions(6, False)
    x = jnp.asarray(rand(2, 9, 5, 6))
    with ops.reference():
        grads = jax.grad(lambda *a: jnp.sum(shift.temporal_shift(*a, 1) ** 2), argnums=(1, 2))(
            x, xpos, ypos
        )
    assert not np.any(np.asarray(grads[0]))
    assert np.all(np.isin(np.abs(np.asarray(grads[1])), np.float32([0.01, 1e-4])))


@pytest.mark.parametrize("direction", [1, -1])
def test_spatial_shift_equals_the_reference(direction):
    check_fast_equals_reference(
        lambda x: shift.spatial_shift(x, direction), [rand(2, 3, 5, 4)], rtol=0, atol=0
    )


@pytest.mark.parametrize("far", [False, True], ids=["slices", "gather"])
def test_the_inference_forward_equals_the_reference(far):
    xpos, ypos = positions(6, far)
    x = jnp.asarray(rand(2, 12, 5, 6))

    def forward():
        return jax.jit(lambda *a: shift.temporal_shift(*a, 2))(x, xpos, ypos)

    fast = forward()
    with ops.reference():
        plain = forward()
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-5)
