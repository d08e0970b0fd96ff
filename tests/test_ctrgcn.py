"""CTR-GCN: parity with Uason-Chen/CTR-GCN, parameter counts, shapes, training, conversion."""

from __future__ import annotations

import numpy as np
import pytest
from model_contract import (
    check_bfloat16,
    check_from_torch_errors,
    check_golden_parity,
    check_output_shapes,
    check_parameter_count,
    check_training_step,
    check_unknown_override,
    example,
    init,
    param_shapes,
    small_variables,
)

from smg_jax import models
from smg_jax.graph import spatial_subsets
from smg_jax.models import ctrgcn

SMALL = {"channels": (8, 16), "strides": (1, 2), "dropout": 0.2}  # two units: compiles fast


def test_golden_parity():
    check_golden_parity("ctrgcn")


def test_golden_parity_with_the_authors_weights():
    check_golden_parity("ctrgcn", shared=True)


def test_parameter_count_matches_the_original():
    check_parameter_count("ctrgcn", 1_435_471)


def test_relation_channels_follow_the_published_rule():
    assert ctrgcn.relation_channels(3, 8) == 8
    assert ctrgcn.relation_channels(64, 8) == 8
    assert ctrgcn.relation_channels(128, 8) == 16
    params = param_shapes(models.create("ctrgcn", num_classes=3, **SMALL))
    assert params["l1"]["gcn1"]["conv1"]["kernel"].shape == (1, 3, 3 * 8)
    assert params["l2"]["gcn1"]["conv4_kernel"].shape == (3, 1, 16)


@pytest.mark.parametrize(("frames", "bodies", "classes"), [(16, 1, 5), (15, 2, 3), (7, 2, 17)])
def test_output_shapes(frames, bodies, classes):
    check_output_shapes("ctrgcn", SMALL, frames, bodies, classes)


def test_training_step_lowers_the_loss():
    check_training_step("ctrgcn", SMALL)


def test_bfloat16_compute_with_float32_params():
    check_bfloat16("ctrgcn", SMALL)


def test_initialisation_follows_the_published_code():
    params = small_variables("ctrgcn", SMALL)[2]["params"]
    gcn = params["l1"]["gcn1"]
    np.testing.assert_array_equal(gcn["PA"], spatial_subsets())
    np.testing.assert_array_equal(gcn["alpha"], 0.0)
    np.testing.assert_array_equal(gcn["bn"]["scale"], np.float32(1e-6))
    np.testing.assert_array_equal(gcn["down"]["bn"]["scale"], 1.0)
    scale = np.asarray(params["l2"]["tcn1"]["branch0_bn1"]["scale"])
    assert not np.all(scale == 1.0) and np.abs(scale - 1).max() < 0.1  # N(1, 0.02)
    fixed = param_shapes(models.create("ctrgcn", num_classes=3, adaptive=False, **SMALL))
    assert "PA" not in fixed["l1"]["gcn1"] and "alpha" in fixed["l1"]["gcn1"]


def test_channels_must_split_into_the_temporal_branches():
    module = models.create("ctrgcn", num_classes=3, channels=(6,), strides=(1,))
    with pytest.raises(ValueError, match="temporal branches"):
        init(module, example(module))


def test_from_torch_rejects_bad_state_dicts():
    check_from_torch_errors("ctrgcn")


def test_unknown_override_raises():
    check_unknown_override("ctrgcn")


def test_zero_relation_channels_are_an_error():
    # Upstream special-cases 3 and 9 input channels; 6 // 8 would build empty convolutions.
    module = models.create("ctrgcn", num_classes=3, in_channels=6, **SMALL)
    with pytest.raises(ValueError, match="relation width"):
        init(module, np.zeros((1, 1, 4, 25, 6), np.float32))
