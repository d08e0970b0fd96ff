"""Training-mode BatchNorm: the written-out gradient against autodiff of the formula."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from ops_contract import check_fast_equals_reference, rand

from smg_jax.models.ops import batch_norm


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (3, 7, 16)])
def test_fast_batch_norm_equals_the_reference(shape):
    def norm(x, scale, bias):
        y, mean, var = batch_norm.batch_norm_train(x, scale, bias, 1e-5)
        return jnp.concatenate([y.ravel(), mean, var])

    c = shape[-1]
    x = rand(*shape) * 2 + 1
    check_fast_equals_reference(norm, [x, rand(c, seed=1) + 1, rand(c, seed=2)], atol=2e-5)
