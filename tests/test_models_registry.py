"""The model registry: lookups by name, overrides, and what every graph model shares."""

from __future__ import annotations

import jax
import pytest

from smg_jax import models
from smg_jax.models import convert, gcnnas

OURS = ("stgcn", "agcn", "gcnnas", "ctrgcn")


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(models.UnknownModelError) as info:
        models.create("stgcnn", num_classes=3)
    message = str(info.value)
    for name in models.MODELS:
        assert name in message
    assert "Did you mean ['stgcn'" in message


@pytest.mark.parametrize("name", OURS)
def test_create_builds_the_published_defaults(name):
    module = models.create(name, num_classes=17)
    assert module.num_classes == 17
    assert module.channels == (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
    assert module.strides == (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    assert module.bn_axis_name is None and module.dtype is None


@pytest.mark.parametrize("name", OURS)
def test_overrides_are_checked_and_lists_become_tuples(name):
    with pytest.raises(TypeError, match="valid fields"):
        models.create(name, num_classes=3, chanels=(8,))
    module = models.create(name, num_classes=3, channels=[8, 16], strides=[1, 2])
    assert module.channels == (8, 16)
    hash(module)  # modules must stay hashable for jit


@pytest.mark.parametrize("name", OURS)
def test_from_torch_needs_a_matching_state_dict(name):
    with pytest.raises(convert.StateDictError, match=name):
        models.from_torch(name, {}, num_classes=3)


@pytest.mark.parametrize("name", OURS)
def test_input_channels_are_a_knob(name):
    one_unit = {"channels": (8,), "strides": (1,)}
    if name == "gcnnas":
        one_unit["cells"] = (gcnnas.SEARCHED_CELLS[0],)
    module = models.create(name, num_classes=3, in_channels=9, **one_unit)
    x = jax.ShapeDtypeStruct((1, 1, 5, 25, 9), "float32")
    logits, _ = jax.eval_shape(lambda x: module.init_with_output(jax.random.key(0), x), x)
    assert logits.shape == (1, 3)
    wrong = jax.ShapeDtypeStruct((1, 1, 5, 25, 3), "float32")
    with pytest.raises(ValueError, match="C=9"):
        jax.eval_shape(lambda x: module.init(jax.random.key(0), x), wrong)
