"""The switch between the ops' fast paths and their references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.models import ops
from smg_jax.models.ops import joints


def test_the_context_manager_sets_and_restores_the_switch():
    assert not ops.reference_enabled()
    with ops.reference():
        assert ops.reference_enabled()
        with ops.reference(False):
            assert not ops.reference_enabled()
        assert ops.reference_enabled()
    assert not ops.reference_enabled()


def test_the_module_setting_holds_until_changed():
    ops.use_reference(True)
    try:
        assert ops.reference_enabled()
    finally:
        ops.use_reference(False)
    assert not ops.reference_enabled()


def test_the_switch_is_read_when_tracing():
    adjacency, features = jnp.ones((3, 3)), jnp.ones((2, 3, 4))
    # A new function per trace: a traced function keeps the path it was traced with.
    fast = jax.make_jaxpr(lambda a, x: joints.aggregate_joints(a, x))(adjacency, features)
    with ops.reference():
        plain = jax.make_jaxpr(lambda a, x: joints.aggregate_joints(a, x))(adjacency, features)
    # The fast path has its own gradient and a barrier; the reference is an einsum.
    assert "optimization_barrier" in str(fast) and "optimization_barrier" not in str(plain)
    for jaxpr in (fast, plain):
        out = jax.core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, adjacency, features)[0]
        np.testing.assert_allclose(out, 3.0)


def test_custom_calls_can_be_turned_off_for_a_block():
    assert ops.custom_calls_enabled()
    with ops.without_custom_calls():
        assert not ops.custom_calls_enabled()
    assert ops.custom_calls_enabled()
