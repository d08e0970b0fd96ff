"""Every model config builds, matches its model and reproduces the published recipe."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import pytest

from smg_jax import models
from smg_jax.train import optim, setup

CONFIGS = ["stgcn", "agcn", "shiftgcn", "gcnnas", "msg3d", "ctrgcn", "demo"]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_its_model_and_preset(name):
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    model = setup.make_model(config, num_classes=17)
    assert type(model) is type(models.create(config.model.name, num_classes=17))
    preset = setup.make_preset(config)
    assert preset.num_frames > 0
    schedule = optim.make_schedule(config, steps_per_epoch=10, total_epochs=config.train.epochs)
    optim.make_optimizer(config, schedule)
    assert config.train.batch_size % config.train.accum_steps == 0


def test_stgcn_config_is_the_smg_authors_recipe():
    config = importlib.import_module("experiments.configs.stgcn").get_config()
    assert (config.optimizer.lr, config.optimizer.weight_decay) == (0.01, 1e-4)
    assert tuple(config.schedule.milestones) == (5, 10) and config.train.epochs == 20
    assert config.train.batch_size == 64 and config.model.dropout == 0.1
    assert config.data.preset == "authors" and setup.make_preset(config).num_frames == 60


def test_msg3d_accumulates_two_forward_batches():
    config = importlib.import_module("experiments.configs.msg3d").get_config()
    assert (config.train.batch_size, config.train.accum_steps) == (32, 2)


def test_shiftgcn_weight_decay_groups_hit_the_right_parameters():
    config = importlib.import_module("experiments.configs.shiftgcn").get_config()
    model = setup.make_model(config, num_classes=17)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1, 16, 25, 3))))
    rates = optim.weight_decay_rates(shapes["params"], config)
    flat = {
        "/".join(str(getattr(k, "key", k)) for k in path): rate
        for path, rate in jax.tree_util.tree_flatten_with_path(rates)[0]
    }
    assert flat["l1/gcn1/linear_weight"] == 1e-3
    assert flat["l1/gcn1/feature_mask"] == 0.0
    assert flat["l1/gcn1/linear_bias"] == 1e-4
    assert flat["l1/tcn1/temporal_linear/kernel"] == 1e-4
    assert sum(rate == 1e-3 for rate in flat.values()) == 10  # one per block


def test_unknown_model_field_is_an_error():
    config = importlib.import_module("experiments.configs.stgcn").get_config()
    with pytest.raises(AttributeError):
        config.model.stratgy = "uniform"
