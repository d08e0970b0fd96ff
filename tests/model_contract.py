"""Checks every skeleton model module must pass, shared by the per-model test files.

Each function takes the model's name in the registry and a dict of
overrides that make a narrow, fast variant of it (a few units, few
channels); the heavy checks (golden parity, published parameter counts) use
the full model.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import assert_logits_close, load_golden, load_shared_golden, torch_to_ours

from smg_jax import models
from smg_jax.models import convert, resolve_skeleton
from smg_jax.runtime import onednn
from smg_jax.runtime import xla as jit


def count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


def input_shape(module, batch: int = 2, frames: int = 16) -> tuple[int, ...]:
    """``(N, M, T, V, C)`` that fits ``module``."""
    v = resolve_skeleton(module.skeleton).num_joints
    return (batch, module.num_persons, frames, v, module.in_channels)


def example(module, batch: int = 2, frames: int = 16, seed: int = 0) -> np.ndarray:
    """A random input that fits ``module``."""
    return np.random.default_rng(seed).standard_normal(input_shape(module, batch, frames), "f4")


# The tests do not care which generator draws the initial weights; this one
# compiles much faster than threefry (XLA otherwise compiles a threefry hash
# per parameter).
KEY = jax.random.key(0, impl="unsafe_rbg")


def init(module, x):
    """``module.init``, eagerly: for the narrow test models, running op by op (with
    each op's compilation cached across tests) is faster than compiling the whole."""
    return module.init(KEY, x)


def param_shapes(module):
    x = jax.ShapeDtypeStruct(input_shape(module), jnp.float32)
    return jax.eval_shape(lambda x: module.init(KEY, x), x)["params"]


@functools.cache
def golden_forwards(name: str, module) -> tuple:
    """``apply`` in eval mode compiled with XLA's defaults, and with the CPU library fusions
    the training loop compiles evaluation with; cached per model, so both golden sets of a
    model share one compilation. The temporal convolutions run in oneDNN where it can be
    loaded, as in every ``experiments`` program."""
    onednn.load()
    forward = functools.partial(module.apply, train=False)
    return jax.jit(forward), jit.jit(forward, inference=True, model_name=name)


def swap_two_kernels(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``state_dict`` with its first two same-shaped kernels (rank >= 2) exchanged."""
    seen: dict[tuple, str] = {}
    for key, value in state_dict.items():
        if value.ndim >= 2 and key.endswith("weight"):
            if value.shape in seen:
                other = seen[value.shape]
                return {**state_dict, key: state_dict[other], other: value}
            seen[value.shape] = key
    raise AssertionError("no two kernels of the state_dict share a shape")


def check_golden_parity(name: str, shared: bool = False) -> None:
    """Given the golden weights through ``from_torch``, the model reproduces the authors'
    logits: the repository's rebuilt weights, or with ``shared`` the authors' own archive.

    With the rebuilt weights it also checks that the comparison can fail: two
    kernels trading places move the logits past the tolerance.
    """
    inputs, logits, state_dict, meta = (load_shared_golden if shared else load_golden)(name)
    module, variables = models.from_torch(name, state_dict, num_classes=logits.shape[1])
    x = torch_to_ours(inputs)
    for compiled in golden_forwards(name, module):
        ours = compiled(variables, x)
        assert ours.shape == logits.shape and ours.dtype == jnp.float32
        assert_logits_close(np.asarray(ours), logits)
    assert count(variables["params"]) == meta["trainable_params"]
    if not shared:
        swapped = swap_two_kernels(state_dict)
        _, wrong = models.from_torch(name, swapped, num_classes=logits.shape[1])
        error = float(np.abs(np.asarray(golden_forwards(name, module)[0](wrong, x)) - logits).max())
        assert error > 1e-4 * max(1.0, float(np.abs(logits).max())), error


def check_parameter_count(name: str, expected: int) -> None:
    module = models.create(name, num_classes=17)
    assert count(param_shapes(module)) == expected


def check_output_shapes(name: str, small: dict, frames: int, bodies: int, classes: int) -> None:
    """Output shape and dtype, traced abstractly (exactly XLA's shape arithmetic, no FLOPs)."""
    module = models.create(name, num_classes=classes, num_persons=bodies, **small)
    x = jax.ShapeDtypeStruct(input_shape(module, batch=3, frames=frames), jnp.float32)
    logits, _ = jax.eval_shape(lambda x: module.init_with_output(KEY, x), x)
    assert logits.shape == (3, classes) and logits.dtype == jnp.float32


@functools.cache
def _small_variables(name: str, small: tuple) -> tuple:
    module = models.create(name, num_classes=4, num_persons=2, **dict(small))
    x = example(module, batch=4, frames=13, seed=1)
    return module, x, init(module, x)


def small_variables(name: str, small: dict):
    """``(module, x, variables)`` of the narrow model, initialised once per test session.

    Four classes, two bodies and an odd number of frames (13), so that these
    paths run for real and not only in shape checks.
    """
    return _small_variables(name, tuple(sorted(small.items())))


def check_training_step(name: str, small: dict, steps: int = 4) -> None:
    """``jax.jit`` + ``jax.grad`` in train mode; a few SGD steps lower the loss on a fixed batch."""
    module, x, variables = small_variables(name, small)
    labels = jnp.array([0, 1, 2, 3])
    params, stats = variables["params"], variables["batch_stats"]
    rng = jax.random.key(3)

    def loss_fn(params, stats):
        logits, updated = module.apply(
            {"params": params, "batch_stats": stats},
            x,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": rng},
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, updated["batch_stats"]

    optimizer = optax.sgd(0.05, momentum=0.9)
    opt_state = optimizer.init(params)

    @jit.jit  # with the training step's CPU library fusions, as the loop compiles it
    def step(params, stats, opt_state):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss, grads

    losses = []
    for _ in range(steps):
        params, new_stats, opt_state, loss, grads = step(params, stats, opt_state)
        losses.append(float(loss))
        assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads))
        # Train mode moves the running statistics.
        assert not np.allclose(
            np.asarray(new_stats["data_bn"]["bn"]["mean"]),
            np.asarray(stats["data_bn"]["bn"]["mean"]),
        )
        stats = new_stats
    assert losses[-1] < losses[0], losses


def check_bfloat16(name: str, small: dict) -> None:
    """bfloat16 compute with float32 parameters: the same variables, close logits."""
    module, x, variables = small_variables(name, small)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {jnp.dtype("float32")}
    half = models.create(name, num_classes=4, num_persons=2, dtype=jnp.bfloat16, **small)
    logits = jax.jit(functools.partial(half.apply, train=False))(variables, x)
    reference = module.apply(variables, x)
    assert logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()
    scale = float(np.abs(reference).max())
    assert float(np.abs(logits - reference).max()) <= 0.1 * max(scale, 1.0)


def check_from_torch_errors(name: str) -> None:
    _, logits, state_dict, _ = load_golden(name)
    classes = logits.shape[1]
    key = "fc.weight" if "fc.weight" in state_dict else "fcn.weight"

    missing = dict(state_dict)
    del missing[key]
    with pytest.raises(convert.StateDictError, match="no entry"):
        models.from_torch(name, missing, num_classes=classes)

    extra = {**state_dict, "l11.gcn1.bn.weight": np.ones(3, np.float32)}
    with pytest.raises(convert.StateDictError, match=r"l11\.gcn1\.bn\.weight"):
        models.from_torch(name, extra, num_classes=classes)

    with pytest.raises(convert.StateDictError, match="shape"):
        models.from_torch(name, state_dict, num_classes=classes + 1)

    bad_shape = {**state_dict, key: state_dict[key][:, :-1]}
    with pytest.raises(convert.StateDictError):
        models.from_torch(name, bad_shape, num_classes=classes)


def check_unknown_override(name: str) -> None:
    with pytest.raises(TypeError, match="unknown constructor field"):
        models.create(name, num_classes=3, no_such_knob=1)
