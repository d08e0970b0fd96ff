"""GCN-NAS: parity with xiaoiker/GCN-NAS, parameter counts, shapes, training, conversion errors."""

from __future__ import annotations

import jax
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
    param_shapes,
)

from smg_jax import models
from smg_jax.graph import spatial_subsets
from smg_jax.models import gcnnas

# Two units covering every graph term and branch kind: layer 1's and layer 7's cells.
SMALL = {
    "channels": (8, 16),
    "strides": (1, 2),
    "cells": (gcnnas.SEARCHED_CELLS[0], gcnnas.SEARCHED_CELLS[6]),
}


def test_golden_parity():
    check_golden_parity("gcnnas")


def test_golden_parity_with_the_authors_weights():
    check_golden_parity("gcnnas", shared=True)


def test_parameter_count_matches_the_original():
    # Includes the spatiotemporal convolutions upstream builds but never calls.
    check_parameter_count("gcnnas", 6_556_133)


def test_cells_parse_and_reject_typos():
    assert gcnnas.parse_cell("ch3+ch4s:spatial,temporal") == (
        ("ch3", "ch4s"),
        ("spatial", "temporal"),
    )
    assert gcnnas.parse_cell(":temporal") == ((), ("temporal",))
    with pytest.raises(ValueError, match="unknown parts"):
        gcnnas.parse_cell("ch5:temporal")
    with pytest.raises(ValueError, match="must read"):
        gcnnas.parse_cell("ch3")


def test_fixed_graphs_follow_the_published_formulas():
    a = spatial_subsets()
    ch3 = gcnnas.fixed_graph(a, ("ch3",))
    np.testing.assert_allclose(ch3, 4 * a**2 - a - 2 * np.eye(25), atol=1e-6)
    ch4s = gcnnas.fixed_graph(a, ("ch4s",))
    np.testing.assert_allclose(ch4s.sum(axis=1), 1.0, atol=1e-6)  # softmax over rows
    np.testing.assert_array_equal(gcnnas.fixed_graph(a, ()), 0.0)


def test_unused_spatiotemporal_convolutions_are_declared():
    params = param_shapes(models.create("gcnnas", num_classes=3, **SMALL))
    gcn = params["l1"]["gcn1"]
    kernels = [gcn[f"conv_ST11_{j}"]["kernel"].shape[0] for j in range(6)]
    assert kernels == [1, 9, 1, 9, 1, 9]  # subsets use entries 0, 1, 2 only


@pytest.mark.parametrize(("frames", "bodies", "classes"), [(16, 1, 5), (15, 2, 3), (7, 2, 17)])
def test_output_shapes(frames, bodies, classes):
    check_output_shapes("gcnnas", SMALL, frames, bodies, classes)


def test_training_step_lowers_the_loss():
    check_training_step("gcnnas", SMALL)


def test_bfloat16_compute_with_float32_params():
    check_bfloat16("gcnnas", SMALL)


def test_from_torch_rejects_bad_state_dicts():
    check_from_torch_errors("gcnnas")


def test_unknown_override_raises():
    check_unknown_override("gcnnas")
    with pytest.raises(ValueError, match="equal lengths"):
        module = models.create("gcnnas", num_classes=3, channels=(8,), strides=(1,))
        module.init(jax.random.key(0), np.zeros((1, 1, 4, 25, 3), np.float32))
