"""ST-GCN: parity with yysijie/st-gcn, parameter counts, shapes, training, conversion errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import load_golden
from model_contract import (
    check_bfloat16,
    check_from_torch_errors,
    check_golden_parity,
    check_output_shapes,
    check_parameter_count,
    check_training_step,
    check_unknown_override,
    example,
    param_shapes,
    small_variables,
)

from smg_jax import models
from smg_jax.graph import stgcn_adjacency
from smg_jax.models import convert, stgcn

SMALL = {"channels": (8, 16), "strides": (1, 2)}  # two units, one strided: compiles fast


def test_golden_parity():
    check_golden_parity("stgcn")


def test_golden_parity_with_the_authors_weights():
    check_golden_parity("stgcn", shared=True)


def test_parameter_count_matches_the_original():
    check_parameter_count("stgcn", 3_087_781)


@pytest.mark.parametrize(
    ("strategy", "max_hop", "subsets"), [("uniform", 1, 1), ("distance", 1, 2), ("spatial", 2, 5)]
)
def test_partition_strategies_set_the_number_of_subsets(strategy, max_hop, subsets):
    module = models.create("stgcn", num_classes=17, strategy=strategy, max_hop=max_hop)
    params = param_shapes(module)
    assert params["edge_importance_0"].shape == (subsets, 25, 25)
    assert params["st_gcn_0"]["gcn"]["kernel"].shape == (3, 64 * subsets)
    no_importance = models.create("stgcn", num_classes=17, edge_importance=False, **SMALL)
    assert not any(k.startswith("edge_importance") for k in param_shapes(no_importance))


@pytest.mark.parametrize(("frames", "bodies", "classes"), [(16, 1, 5), (15, 2, 3), (7, 3, 17)])
def test_output_shapes(frames, bodies, classes):
    check_output_shapes("stgcn", SMALL, frames, bodies, classes)


def test_any_number_of_bodies_with_the_same_weights():
    # ST-GCN folds bodies into the batch: its weights do not depend on M.
    module, _, variables = small_variables("stgcn", SMALL)  # made for two bodies
    one = models.create("stgcn", num_classes=4, num_persons=1, **SMALL)
    assert module.apply(variables, example(one, frames=13)).shape == (2, 4)


def test_training_step_lowers_the_loss():
    check_training_step("stgcn", SMALL)


def test_dropout_is_active_only_in_training():
    _, x, variables = small_variables("stgcn", SMALL)
    module = models.create("stgcn", num_classes=4, num_persons=2, dropout=0.5, **SMALL)

    def train(key):
        out, _ = module.apply(
            variables, x, train=True, mutable=["batch_stats"], rngs={"dropout": key}
        )
        return np.asarray(out)

    assert not np.allclose(train(jax.random.key(0)), train(jax.random.key(1)))
    np.testing.assert_array_equal(module.apply(variables, x), module.apply(variables, x))


def test_bfloat16_compute_with_float32_params():
    check_bfloat16("stgcn", SMALL)


def test_initialisation_follows_the_authors_recipe():
    params = small_variables("stgcn", SMALL)[2]["params"]
    np.testing.assert_array_equal(params["edge_importance_1"], 1.0)
    kernel = np.asarray(params["st_gcn_1"]["tcn_conv"]["kernel"])
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002  # 2304 draws
    scale = np.asarray(params["st_gcn_1"]["tcn_bn2"]["scale"])
    assert abs(scale.mean() - 1.0) < 0.03 and 0.005 < scale.std() < 0.04  # 16 draws
    np.testing.assert_array_equal(params["st_gcn_1"]["gcn"]["bias"], 0.0)


def test_from_torch_rejects_bad_state_dicts():
    check_from_torch_errors("stgcn")


def test_from_torch_checks_the_adjacency_buffer():
    _, logits, state_dict, _ = load_golden("stgcn")
    with pytest.raises(convert.StateDictError, match="adjacency"):
        stgcn.from_torch(
            {**state_dict, "A": stgcn_adjacency(strategy="distance", max_hop=2)[:3]},
            num_classes=logits.shape[1],
        )


def test_unknown_override_raises():
    check_unknown_override("stgcn")
