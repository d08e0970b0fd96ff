"""Optimizer/schedule, losses, the pure train step and checkpoints, on a small real network."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from smg_jax.train import checkpoint, losses, optim, state, steps


class TinyNet(nn.Module):
    """A small network with BatchNorm and dropout, shaped like our models' interface."""

    num_classes: int = 5

    @nn.compact
    def __call__(self, x, train: bool = False):
        n = x.shape[0]
        h = x.reshape(n, -1)
        h = nn.Dense(16)(h)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        h = nn.relu(h)
        h = nn.Dropout(0.1, deterministic=not train)(h)
        return nn.Dense(self.num_classes)(h)


def make_config(**sections):
    config = ml_collections.ConfigDict(
        {
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                          "weight_decay": 1e-4, "weight_decay_on": "all", "weight_decay_rules": "",
                          "grad_clip_norm": 0.0},
            "schedule": {"name": "step", "milestones": [5, 10], "gamma": 0.1,
                         "warmup_epochs": 0, "per_step": False, "min_lr": 0.0},
            "loss": {"name": "cross_entropy", "smoothing": 0.1, "beta": 0.99},
        }
    )  # fmt: skip
    for key, values in sections.items():
        config[key].update(values)
    return config


def batch(seed=0, size=8):
    rng = np.random.default_rng(seed)
    return {
        "x": jnp.asarray(rng.normal(size=(size, 1, 4, 3, 3)), jnp.float32),
        "label": jnp.asarray(rng.integers(0, 5, size), jnp.int32),
        "mask": jnp.ones((size,), bool),
    }


def test_step_schedule_changes_per_epoch():
    schedule = optim.make_schedule(make_config(), steps_per_epoch=10, total_epochs=20)
    lrs = [float(schedule(s)) for s in (0, 49, 50, 99, 100, 199)]
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_warmup_and_cosine():
    config = make_config(schedule={"name": "cosine", "warmup_epochs": 5})
    schedule = optim.make_schedule(config, steps_per_epoch=2, total_epochs=25)
    assert float(schedule(0)) == pytest.approx(0.1 * 1 / 5)
    assert float(schedule(9)) == pytest.approx(0.1 * 5 / 5)
    assert float(schedule(10)) == pytest.approx(0.1)  # cosine starts after warm-up
    assert float(schedule(49)) < 0.01


def test_unknown_names_fail_clearly():
    with pytest.raises(ValueError, match="choose from"):
        optim.make_schedule(make_config(schedule={"name": "poly"}), 1, 1)
    with pytest.raises(ValueError, match="choose from"):
        optim.make_optimizer(make_config(optimizer={"name": "lamb"}), lambda s: 0.1)
    with pytest.raises(ValueError, match="choose from"):
        losses.make_loss(make_config(loss={"name": "focal"}))


def test_sgd_matches_torch_update_rule():
    """torch.optim.SGD(lr, momentum=0.9, nesterov=True, weight_decay=wd), two steps by hand."""
    config = make_config(optimizer={"lr": 0.5, "weight_decay": 0.1})
    tx = optim.make_optimizer(config, lambda s: 0.5)
    p = {"w": jnp.asarray([1.0, -2.0])}
    grads = [jnp.asarray([0.3, 0.1]), jnp.asarray([-0.2, 0.4])]
    opt_state = tx.init(p)
    expected, buf = np.array([1.0, -2.0]), np.zeros(2)
    for g in grads:
        d_p = np.asarray(g) + 0.1 * expected
        buf = 0.9 * buf + d_p
        expected = expected - 0.5 * (d_p + 0.9 * buf)
        updates, opt_state = tx.update({"w": g}, opt_state, p)
        p = optax.apply_updates(p, updates)
    np.testing.assert_allclose(np.asarray(p["w"]), expected, rtol=1e-6)


def test_class_balanced_weights():
    weights = losses.class_balanced_weights([100, 10, 0, 1], beta=0.9)
    assert weights[2] == 0
    assert weights[3] > weights[1] > weights[0]
    assert weights.sum() == pytest.approx(3.0)
    np.testing.assert_allclose(losses.class_balanced_weights([5, 50], beta=0.0), [1.0, 1.0])


def test_label_smoothing_and_weighting():
    logits = jnp.asarray([[2.0, 0.0], [0.0, 2.0]])
    labels = jnp.asarray([0, 0])
    ce = losses.make_loss(make_config())(logits, labels)
    smooth = losses.make_loss(make_config(loss={"name": "label_smoothing"}))(logits, labels)
    assert float(smooth[0]) > float(ce[0])  # smoothing penalises confident correct answers
    cb = losses.make_loss(make_config(loss={"name": "class_balanced"}), class_counts=[10, 1])
    np.testing.assert_allclose(
        cb(logits, labels), ce * losses.class_balanced_weights([10, 1], 0.99)[0]
    )


def _setup(accum_steps=1, seed=0):
    model = TinyNet()
    config = make_config()
    schedule = optim.make_schedule(config, steps_per_epoch=10, total_epochs=20)
    tx = optim.make_optimizer(config, schedule)
    variables = state.init_variables(model, jax.random.PRNGKey(seed), (8, 1, 4, 3, 3))
    train_state = state.create_train_state(variables, tx, jax.random.PRNGKey(seed + 1))
    loss_fn = losses.make_loss(config)
    step = jax.jit(
        functools.partial(
            steps.train_step, model=model, tx=tx, loss_fn=loss_fn, schedule=schedule,
            accum_steps=accum_steps,
        )
    )  # fmt: skip
    return model, train_state, step, loss_fn


def test_train_step_lowers_the_loss_and_updates_bn_stats():
    model, train_state, step, loss_fn = _setup()
    data = batch()
    probe = jax.jit(functools.partial(steps.loss_value, model=model, loss_fn=loss_fn))
    before = float(probe(train_state, data))
    stats_before = jax.tree_util.tree_leaves(train_state.batch_stats)
    for _ in range(20):
        train_state, metrics = step(train_state, data)
    assert bool(metrics["finite"])
    assert int(train_state.step) == 20
    assert float(probe(train_state, data)) < before
    stats_after = jax.tree_util.tree_leaves(train_state.batch_stats)
    assert any(not np.allclose(a, b) for a, b in zip(stats_before, stats_after, strict=True))


class LinearNet(nn.Module):
    """No BatchNorm or dropout, so micro-batching changes nothing but the grouping."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(5)(x.reshape(x.shape[0], -1))


def test_accumulation_applies_the_mean_gradient_once():
    model = LinearNet()
    tx = optax.sgd(1.0)
    variables = state.init_variables(model, jax.random.PRNGKey(0), (8, 1, 4, 3, 3))
    train_state = state.create_train_state(variables, tx, jax.random.PRNGKey(1))
    loss_fn = losses.make_loss(make_config())
    data = batch(size=8)
    run = functools.partial(steps.train_step, model=model, tx=tx, loss_fn=loss_fn)
    accumulated, metrics = run(train_state, data, accum_steps=2)
    deltas = []
    for i in range(2):
        half = jax.tree_util.tree_map(lambda a, i=i: a[4 * i : 4 * i + 4], data)
        one, _ = run(train_state, half)
        deltas.append(jax.tree_util.tree_map(jnp.subtract, train_state.params, one.params))
    expected = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, *deltas)
    got = jax.tree_util.tree_map(jnp.subtract, train_state.params, accumulated.params)
    for a, b in zip(
        jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # The reported loss is the mean over the whole batch.
    full = float(jnp.mean(loss_fn(model.apply(variables, data["x"]), data["label"])))
    assert float(metrics["loss"]) == pytest.approx(full, rel=1e-5)
    with pytest.raises(ValueError, match="not divisible"):
        run(train_state, data, accum_steps=3)


def test_masked_rows_do_not_count():
    model, train_state, _, loss_fn = _setup()
    data = batch()
    masked = dict(data, label=data["label"].at[:4].set(0), mask=data["mask"].at[:4].set(False))
    poisoned = dict(masked, x=masked["x"].at[:4].set(1e3))
    probe = functools.partial(steps.loss_value, model=model, loss_fn=loss_fn)
    assert float(probe(train_state, masked)) == pytest.approx(
        float(probe(train_state, dict(masked, x=poisoned["x"]))), rel=1e-6
    )


def test_checkpoint_round_trip_is_exact(tmp_path):
    _, train_state, step, _ = _setup()
    train_state, _ = step(train_state, batch())
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
    ckpt.save(int(train_state.step), train_state, {"epoch": 0, "data": {"position": 8}})
    fresh = _setup(seed=5)[1]
    restored, meta = ckpt.restore(fresh)
    assert meta == {"epoch": 0, "data": {"position": 8}}
    for a, b in zip(
        jax.tree_util.tree_leaves(train_state), jax.tree_util.tree_leaves(restored), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert checkpoint.Checkpointer(tmp_path / "empty").restore(fresh) is None


def test_best_checkpoint_keeps_the_best(tmp_path):
    _, train_state, _, _ = _setup()
    best = checkpoint.Checkpointer(tmp_path / "best", max_to_keep=1, best_metric="top1")
    for step_number, top1 in [(1, 0.2), (2, 0.6), (3, 0.4)]:
        best.save(step_number, train_state, {"metrics": {"top1": top1}})
    assert best.best_step() == 2


def test_weight_decay_rules_per_parameter():
    config = make_config(
        optimizer={"weight_decay": 1e-4, "weight_decay_rules": "kernel=1e-3,mask=0"}
    )
    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "mask": jnp.ones(3)}
    rates = optim.weight_decay_rates(params, config)
    assert rates == {"dense": {"kernel": 1e-3, "bias": 1e-4}, "mask": 0.0}
    tx = optim.make_optimizer(config, lambda s: 1.0)
    zero_grads = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = tx.update(zero_grads, tx.init(params), params)
    # With zero gradients, the first SGD update is -lr * (1 + momentum) * wd * p (Nesterov).
    np.testing.assert_allclose(updates["dense"]["kernel"], -1.9e-3 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_allclose(updates["dense"]["bias"], -1.9e-4 * np.ones(2), rtol=1e-6)
    np.testing.assert_allclose(updates["mask"], np.zeros(3))
    kernels_only = make_config(optimizer={"weight_decay_on": "kernels"})
    assert optim.weight_decay_rates(params, kernels_only)["dense"]["bias"] == 0.0
    with pytest.raises(ValueError, match="regex=rate"):
        optim.parse_weight_decay_rules("kernel")
