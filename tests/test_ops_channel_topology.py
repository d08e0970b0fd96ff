"""CTR-GCN's per-channel graph aggregation: channel-major matmuls against the einsums."""

from __future__ import annotations

import jax.numpy as jnp
from ops_contract import check_fast_equals_reference, rand

from smg_jax.models.ops import channel_topology


def test_refine_and_aggregate_equals_the_reference():
    b, v, t, c, k, r, o = 2, 5, 4, 3, 3, 2, 6
    args = [
        rand(b, v, t, c),
        rand(b, v, v, k, r, seed=1),
        rand(c, k * o, seed=2),
        rand(k * o, seed=3),
        rand(k, r, o, seed=4),
        rand(k, o, seed=5),
        rand(1, seed=6),
        rand(k, v, v, seed=7),
    ]

    def op(*a):
        return channel_topology.refine_and_aggregate(*a, jnp.float32)

    check_fast_equals_reference(op, args, atol=1e-4, rtol=1e-4)
