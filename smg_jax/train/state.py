"""The train state: one explicit tree of everything a run carries from step to step."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from smg_jax.runtime import profile, random_merge


class TrainState(struct.PyTreeNode):
    """Params, BatchNorm statistics, optimizer state, step and RNG key.

    Every leaf is an array, so the whole state checkpoints with orbax and
    moves across devices as one tree. The model and optimizer are not part
    of it: they are rebuilt from the config and bound into the step
    functions with ``functools.partial``.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array  # raw uint32 key data, (2,)


def init_variables(model: nn.Module, rng: jax.Array, input_shape: tuple[int, ...]) -> dict:
    """Initialises ``model`` on zeros of ``input_shape`` = ``(N, M, T, V, C)``.

    Bitwise ``jax.jit(model.init)``, compiled with its random draws merged
    (:mod:`smg_jax.runtime.random_merge`), a fraction of the plain compile
    time; the runtime profile's ``merged_init=False`` compiles it plainly.
    """
    params_rng, dropout_rng = jax.random.split(rng)
    dummy = jnp.zeros(input_shape, jnp.float32)

    def init(params_key: jax.Array, dropout_key: jax.Array) -> dict:
        return model.init({"params": params_key, "dropout": dropout_key}, dummy, train=False)

    if not profile.current().merged_init:
        return jax.jit(init)(params_rng, dropout_rng)
    return random_merge.call_with_merged_draws(init, params_rng, dropout_rng)


def create_train_state(
    variables: dict, tx: optax.GradientTransformation, rng: jax.Array
) -> TrainState:
    """A fresh state at step 0 around initial (or pretrained) ``variables``."""
    params = variables["params"]
    return TrainState(
        step=jnp.asarray(0, jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        # One compiled program: run op by op, the init of CTR-GCN's 405 moment
        # leaves took 1.04 s on 2 cores, compiled 0.36 s.
        opt_state=jax.jit(tx.init)(params),
        rng=jnp.asarray(rng, jnp.uint32),
    )


def variables_of(state: TrainState) -> dict:
    """The Flax variables dict for ``model.apply``."""
    if state.batch_stats:
        return {"params": state.params, "batch_stats": state.batch_stats}
    return {"params": state.params}


def count_params(params: Any) -> int:
    """Number of scalar parameters in a tree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
