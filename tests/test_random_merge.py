"""The merged-draw init gives bitwise the parameters of ``jax.jit(model.init)``, with few hashes."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SLOW_FULL

from smg_jax import models
from smg_jax.runtime import random_merge
from smg_jax.train import state


def assert_bitwise_equal(got, want) -> None:
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree_util.tree_leaves(want), strict=True
    ):
        name = jax.tree_util.keystr(path)
        assert isinstance(a, jax.Array), name
        assert (a.dtype, a.shape) == (b.dtype, b.shape), name
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


def hashes_in(fun, *args) -> int:
    """Calls that lower to a Threefry hash in the traced program, inside calls included."""

    def walk(jaxpr) -> int:
        total = 0
        for eqn in jaxpr.eqns:
            total += eqn.primitive.name in ("threefry2x32", "random_bits", "random_fold_in")
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                total += walk(sub)
        return total

    return walk(jax.make_jaxpr(fun)(*args).jaxpr)


class Mixed(nn.Module):
    """Many initializers, dtypes and a reused submodule: the cases a model zoo brings."""

    @nn.compact
    def __call__(self, x):
        shared = nn.Dense(6, kernel_init=nn.initializers.lecun_normal())
        h = shared(x) + shared(x * 2)
        h = nn.Dense(6, kernel_init=nn.initializers.orthogonal())(h)
        h = nn.Dense(6, kernel_init=nn.initializers.uniform(0.3), use_bias=False)(h)
        h = nn.Dense(6, bias_init=nn.initializers.normal(0.5))(h)
        h = nn.Conv(5, (3,), kernel_init=nn.initializers.he_uniform())(h[:, :, None])
        h = nn.Dense(4, param_dtype=jnp.bfloat16)(h.reshape(h.shape[0], -1))
        h = nn.BatchNorm(use_running_average=True)(h)
        scale = self.param("scale", nn.initializers.constant(0.25), (4,))
        table = self.param("table", nn.initializers.truncated_normal(0.02), (0,))
        bits = self.param("bits", lambda key, shape: jax.random.bits(key, shape, jnp.uint8), (7,))
        return h * scale + table.sum() + bits.sum()


def init_fn(module, shape):
    dummy = jnp.zeros(shape, jnp.float32)
    return lambda r: module.init({"params": r}, dummy)


def test_mixed_initializers_are_bitwise_those_of_jit():
    fun = init_fn(Mixed(), (3, 6))
    key = jax.random.PRNGKey(7)
    assert_bitwise_equal(random_merge.call_with_merged_draws(fun, key), jax.jit(fun)(key))


def test_typed_keys_and_other_generators_are_bitwise_those_of_jit():
    fun = init_fn(Mixed(), (3, 6))
    for key in (jax.random.key(3), jax.random.key(3, impl="unsafe_rbg")):
        assert_bitwise_equal(random_merge.call_with_merged_draws(fun, key), jax.jit(fun)(key))


def test_non_partitionable_threefry_falls_back_to_plain_jit():
    fun = init_fn(Mixed(), (3, 6))
    key = jax.random.PRNGKey(1)
    with jax.threefry_partitionable(False):
        assert not random_merge.merging_applies()
        want = jax.jit(fun)(key)
        got = random_merge.call_with_merged_draws(fun, key)
    assert_bitwise_equal(got, want)


# The reduced form checks two models; SMG_SLOW=full checks every registered one
# (about a minute on 2 cores: the plain init of CTR-GCN alone compiles in 12 s).
MODELS = list(models.MODELS) if SLOW_FULL else ["stgcn", "agcn"]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_model_init_is_bitwise_that_of_jit(name):
    model = models.create(name, num_classes=17, num_persons=2)
    shape = (2, 2, 16, 25, 3)
    rng = jax.random.PRNGKey(0)
    params_rng, dropout_rng = jax.random.split(rng)

    def init(r, d):
        return model.init({"params": r, "dropout": d}, jnp.zeros(shape), train=False)

    assert_bitwise_equal(
        state.init_variables(model, rng, shape), jax.jit(init)(params_rng, dropout_rng)
    )


def test_the_merged_program_hashes_a_few_times_not_once_per_parameter():
    model = models.create("stgcn", num_classes=17, num_persons=1)
    fun = init_fn(model, (1, 1, 8, 25, 3))
    key = jax.random.PRNGKey(0)
    plain = hashes_in(fun, key)
    plan = random_merge._Plan(jax.make_jaxpr(lambda k: jax.tree_util.tree_leaves(fun(k)))(key), 1)
    merged = hashes_in(plan.run, key)
    assert plain > 100
    assert merged <= 4, (plain, merged)
    assert len(plan.groups) < len(plan.outputs) // 3


def test_draws_past_one_hash_index_fall_back_to_plain_jit(monkeypatch):
    fun = init_fn(Mixed(), (3, 6))
    key = jax.random.PRNGKey(5)
    monkeypatch.setattr(random_merge, "_MAX_MERGED_ELEMENTS", 20)  # Mixed draws more than 20
    assert_bitwise_equal(random_merge.call_with_merged_draws(fun, key), jax.jit(fun)(key))
