"""``jax.export`` of every model: a symbolic batch, no custom calls, the same logits elsewhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import SLOW_FULL

from smg_jax import models
from smg_jax.models import export
from smg_jax.runtime import onednn

# Narrow variants (one strided unit each) that compile in seconds.
NARROW = {
    "stgcn": {"channels": (8, 16), "strides": (1, 2)},
    "agcn": {"channels": (8, 16), "strides": (1, 2)},
    "gcnnas": {
        "channels": (8, 16),
        "strides": (1, 2),
        "cells": ("ch3:spatial,temporal,spatiotemporal", "ch3+ch4s:spatial,temporal"),
    },
    "shiftgcn": {"channels": (8, 16), "strides": (1, 2)},
    "msg3d": {"channels": (12, 24), "strides": (1, 2), "num_gcn_scales": 3, "num_g3d_scales": 2},
    "ctrgcn": {"channels": (8, 16), "strides": (1, 2)},
}
# The reduced form exports a model with temporal convolutions and the one with shifts;
# SMG_SLOW=full exports all six.
EXPORTED = list(NARROW) if SLOW_FULL else ["stgcn", "shiftgcn"]
INPUT = (1, 16, 25, 3)  # (M, T, V, C)
BATCHES = (2, 5)

# Runs in a fresh interpreter: only jax and NumPy, no smg_jax.
CALLER = textwrap.dedent(
    """
    import sys
    import jax
    import numpy as np

    inputs = np.load(sys.argv[1])
    out = {}
    for name in inputs.files:
        model, batch = name.split("-")
        with open(f"{sys.argv[2]}/{model}.bin", "rb") as f:
            exported = jax.export.deserialize(bytearray(f.read()))
        out[name] = np.asarray(exported.call(inputs[name]))
    np.savez(sys.argv[3], **out)
    """
)


def test_an_input_shape_without_four_entries_is_an_error():
    module = models.create("stgcn", num_classes=3, **NARROW["stgcn"])
    with pytest.raises(ValueError, match=r"\(M, T, V, C\)"):
        export.export_model(module, {}, (16, 25, 3))


@pytest.mark.slow
def test_every_model_round_trips_through_a_fresh_process(tmp_path):
    # The oneDNN custom call is built and registered in this process where it can be:
    # exporting must lower the temporal convolutions to XLA's all the same.
    onednn.load()
    inputs, expected = {}, {}
    for index, name in enumerate(EXPORTED):
        module = models.create(name, num_classes=4, **NARROW[name])
        x = jax.random.normal(jax.random.key(index), (BATCHES[0], *INPUT))
        variables = module.init(jax.random.key(100 + index), x)
        exported = export.export_model(module, variables, INPUT)
        assert "smg_onednn" not in exported.mlir_module()
        assert str(exported.in_avals[0].shape[0]) == export.BATCH
        (tmp_path / f"{name}.bin").write_bytes(export.serialize(exported))
        apply = jax.jit(lambda v, x, module=module: module.apply(v, x))
        for batch in BATCHES:
            x = np.asarray(jax.random.normal(jax.random.key(batch), (batch, *INPUT)))
            inputs[f"{name}-{batch}"] = x
            expected[f"{name}-{batch}"] = np.asarray(apply(variables, x))
    np.savez(tmp_path / "inputs.npz", **inputs)
    subprocess.run(
        [sys.executable, "-c", CALLER, str(tmp_path / "inputs.npz"), str(tmp_path),
         str(tmp_path / "out.npz")],
        check=True,
        timeout=600,
    )  # fmt: skip
    got = np.load(tmp_path / "out.npz")
    for key, logits in expected.items():
        assert got[key].shape == logits.shape
        np.testing.assert_allclose(got[key], logits, rtol=1e-4, atol=1e-5, err_msg=key)
