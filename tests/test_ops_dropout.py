"""Hash dropout: the fused mask against the mask computed element by element."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from ops_contract import check_fast_equals_reference, rand

from smg_jax.models import ops
from smg_jax.models.ops import dropout


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_fast_dropout_equals_the_reference(rate):
    seeds = jnp.asarray([12345, 678], jnp.uint32)
    x = rand(3, 5, 7, 4)
    check_fast_equals_reference(lambda x: dropout.dropout(x, rate, seeds), [x], rtol=0, atol=0)


def test_the_reference_mask_keeps_the_expected_fraction():
    seeds = jnp.asarray([1, 2], jnp.uint32)
    with ops.reference():
        y = np.asarray(dropout.dropout(jnp.ones((100, 100)), 0.3, seeds))
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.02
