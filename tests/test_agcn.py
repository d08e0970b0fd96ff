"""2s-AGCN: parity with lshiwjx/2s-AGCN, parameter counts, shapes, training, conversion errors."""

from __future__ import annotations

import math

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
    param_shapes,
    small_variables,
)

from smg_jax import models

SMALL = {"channels": (8, 16), "strides": (1, 2)}  # two units, one strided: compiles fast


def test_golden_parity():
    check_golden_parity("agcn")


def test_golden_parity_with_the_authors_weights():
    check_golden_parity("agcn", shared=True)


def test_parameter_count_matches_the_original():
    # PA (B_k) is a trainable nn.Parameter upstream and counts; the fixed A is not a parameter.
    check_parameter_count("agcn", 3_458_309)


def test_ablations_remove_their_parameters():
    full = param_shapes(models.create("agcn", num_classes=3, **SMALL))
    assert full["l1"]["gcn1"]["PA"].shape == (3, 25, 25)
    assert full["l2"]["gcn1"]["conv_a"]["kernel"].shape == (1, 8, 3 * 16 // 4)
    plain = param_shapes(
        models.create("agcn", num_classes=3, adaptive=False, attention=False, **SMALL)
    )
    assert "PA" not in plain["l1"]["gcn1"] and "conv_a" not in plain["l1"]["gcn1"]


@pytest.mark.parametrize(("frames", "bodies", "classes"), [(16, 1, 5), (15, 2, 3), (7, 2, 17)])
def test_output_shapes(frames, bodies, classes):
    check_output_shapes("agcn", SMALL, frames, bodies, classes)


def test_wrong_number_of_bodies_is_an_error():
    module, _, variables = small_variables("agcn", SMALL)  # two bodies
    one_body = example(models.create("agcn", num_classes=4, num_persons=1, **SMALL))
    with pytest.raises(ValueError, match="num_persons"):
        module.apply(variables, one_body)


def test_training_step_lowers_the_loss():
    check_training_step("agcn", SMALL)


def test_bfloat16_compute_with_float32_params():
    check_bfloat16("agcn", SMALL)


def test_initialisation_follows_the_published_code():
    params = small_variables("agcn", SMALL)[2]["params"]  # widths 8 -> 16, 4 classes
    gcn = params["l2"]["gcn1"]
    np.testing.assert_array_equal(gcn["PA"], np.float32(1e-6))
    np.testing.assert_array_equal(gcn["bn"]["scale"], np.float32(1e-6))
    np.testing.assert_array_equal(params["l2"]["tcn1"]["bn"]["scale"], 1.0)

    def relative_std(array, std):
        return abs(float(np.std(array)) / std - 1)

    # conv_d: normal(0, sqrt(2 / (out * in * K))); conv_a: kaiming fan_out of 16 // 4 channels.
    assert relative_std(gcn["conv_d"]["kernel"], math.sqrt(2 / (16 * 8 * 3))) < 0.1  # 384 draws
    assert relative_std(params["l2"]["tcn1"]["conv"]["kernel"], math.sqrt(2 / (16 * 9))) < 0.1
    assert relative_std(gcn["conv_a"]["kernel"], math.sqrt(2 / 4)) < 0.2  # 96 draws
    assert relative_std(params["fc"]["kernel"], math.sqrt(2 / 4)) < 0.3  # 64 draws
    bias = np.abs(np.asarray(params["fc"]["bias"]))
    assert bias.max() <= 1 / 4 and np.any(bias > 0)  # U(+-1/sqrt(16))


def test_from_torch_rejects_bad_state_dicts():
    check_from_torch_errors("agcn")


def test_unknown_override_raises():
    check_unknown_override("agcn")
