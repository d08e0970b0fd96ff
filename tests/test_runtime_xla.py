"""``smg_jax.runtime.xla``: the CPU library fusions, GPU without Triton GEMM, switches, fallback."""

import dataclasses
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smg_jax import models
from smg_jax.runtime import profile
from smg_jax.runtime import xla as jit


@pytest.fixture(autouse=True)
def _fresh_cache():
    jit._options_for.cache_clear()
    yield
    jit._options_for.cache_clear()


@pytest.fixture
def use_profile():
    """Activates the current profile with some fields changed; the previous one comes back."""
    previous = profile.current()
    yield lambda **fields: profile.activate(dataclasses.replace(previous, **fields))
    profile.activate(previous)


def test_cpu_gets_the_library_fusions_gpu_no_triton_gemm_and_tpu_nothing():
    assert jit.compiler_options("cpu") == jit.CPU_OPTIONS
    assert jit.compiler_options("cpu", inference=True) == jit.CPU_OPTIONS
    assert jit.compiler_options("cpu", model_name="shiftgcn") == jit.CPU_OPTIONS
    assert jit.compiler_options("cpu", inference=True, model_name="stgcn") == jit.CPU_OPTIONS
    without = jit.compiler_options("cpu", inference=True, model_name="shiftgcn")
    assert without == jit.CPU_OPTIONS_WITHOUT_ELEMENTWISE
    assert "ELTWISE" not in without["xla_cpu_experimental_ynn_fusion_type"]
    assert "ELTWISE" in jit.CPU_OPTIONS["xla_cpu_experimental_ynn_fusion_type"]
    assert jit.compiler_options("gpu") == {"xla_gpu_enable_triton_gemm": False}
    assert jit.compiler_options("gpu", inference=True, model_name="shiftgcn") == jit.GPU_OPTIONS
    assert jit.compiler_options("tpu", inference=True) == {}


def test_gpu_option_is_one_this_jaxlib_knows():
    # The probe compiles with it on this (CPU) backend: XLA refuses unknown names
    # ("No such compile option"), so a misspelling would come back empty.
    assert jit.compiler_options("gpu") == jit.GPU_OPTIONS


def test_model_hints_are_keyed_by_registered_names():
    assert set(jit.MODEL_HINTS) <= set(models.MODELS)
    assert jit.hints_for(None) == jit.CompilerHints()
    with pytest.raises(TypeError, match="registry name"):
        jit.hints_for(models.create("shiftgcn", num_classes=3))


def test_gpu_switch_gives_triton_gemm_back(use_profile):
    use_profile(gpu_triton_gemm=True)
    assert jit.compiler_options("gpu") == {}
    assert jit.compiler_options("cpu") == jit.CPU_OPTIONS


def test_profile_switch_turns_them_off(use_profile):
    use_profile(cpu_library_fusions=False)
    assert jit.compiler_options("cpu") == {}
    assert jit.compiler_options("gpu") == jit.GPU_OPTIONS


def test_options_this_jaxlib_refuses_fall_back_to_defaults(monkeypatch, caplog):
    monkeypatch.setattr(jit, "CPU_OPTIONS", {"xla_cpu_no_such_option_anywhere": "1"})
    assert jit.compiler_options("cpu") == {}
    assert (
        jit.compiler_options("cpu", inference=True, model_name="shiftgcn")
        == jit.CPU_OPTIONS_WITHOUT_ELEMENTWISE
    )
    assert "refused" in caplog.text
    monkeypatch.setattr(jit, "GPU_OPTIONS", {"xla_gpu_no_such_option_anywhere": False})
    assert jit.compiler_options("gpu") == {}


def test_a_model_compiled_with_them_matches_xla_defaults():
    model = models.create("stgcn", num_classes=5, channels=(8, 16), strides=(1, 2), dropout=0.0)
    x = jax.random.normal(jax.random.key(0), (3, 1, 12, 25, 3))
    variables = model.init(jax.random.key(1), x)

    def loss(params, x):
        logits, _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        return jnp.sum(logits**2)

    grad = jax.grad(loss)
    ours = jit.jit(grad)(variables["params"], x)
    plain = jax.jit(grad)(variables["params"], x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    forward = jit.jit(model.apply, inference=True, model_name="stgcn")(variables, x)
    np.testing.assert_allclose(forward, jax.jit(model.apply)(variables, x), rtol=1e-5, atol=1e-6)


def test_pmap_compiles_with_the_options_and_matches_plain_pmap():
    # pmap takes no compiler options; jit.pmap lowers and compiles with them.
    model = models.create("stgcn", num_classes=5, channels=(8, 16), strides=(1, 2), dropout=0.0)
    x = jax.random.normal(jax.random.key(0), (1, 3, 1, 12, 25, 3))  # (devices, N, M, T, V, C)
    variables = model.init(jax.random.key(1), x[0])
    params = jax.tree.map(lambda a: a[None], variables["params"])

    def loss(params, x):
        logits, _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        return jax.lax.pmean(jnp.sum(logits**2), "devices")

    grad = jax.grad(loss)
    ours = jit.pmap(grad, axis_name="devices")
    plain = jax.pmap(grad, axis_name="devices")
    ours_text = ours.lower(params, x).compile().as_text()
    plain_text = plain.lower(params, x).compile().as_text()
    assert ours_text.count("ynn_fusion") > plain_text.count("ynn_fusion")

    first = ours(params, x)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(plain(params, x)), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    ours(params, x)
    assert len(ours._executables) == 1  # the same signature reuses its executable
    ours(params, x[:, :2])
    assert len(ours._executables) == 2


def test_pmap_without_options_is_plain_pmap(use_profile):
    use_profile(cpu_library_fusions=False)
    if jax.default_backend() == "cpu":
        assert not isinstance(jit.pmap(lambda x: x), jit._PmapWithOptions)


def test_xla_flags_are_written_as_xla_reads_them():
    flags = jit.xla_flags({"xla_a": True, "xla_b": "X,Y", "xla_c": 3, "xla_d": False})
    assert flags == "--xla_a=true --xla_b=X,Y --xla_c=3 --xla_d=false"


def test_flags_are_tried_in_a_child_process_first():
    accepted, _ = jit._flags_accepted(jit.xla_flags({**jit.CPU_OPTIONS, **jit.GPU_OPTIONS}))
    assert accepted
    accepted, why = jit._flags_accepted("--xla_smg_no_such_flag=1")
    assert not accepted
    assert why  # the child's last stderr line, for the warning


def test_process_wide_options_wait_for_no_backend(monkeypatch):
    jax.devices()  # this process's backend is running: XLA_FLAGS is read already
    monkeypatch.setenv("XLA_FLAGS", "--xla_smg_untouched=1")
    assert jit.set_process_wide_options() == {}
    assert os.environ["XLA_FLAGS"] == "--xla_smg_untouched=1"
    assert jit.process_wide_options() == {}


# A fresh process (no backend yet): the options set process-wide, or not, or
# refused; then whether a plain jax.pmap (what a multi-host pmap is) of a ReLU
# got XLA:CPU's elementwise library fusion, which only our options turn on.
_CHILD = """
import os, sys
import jax, jax.numpy as jnp
from smg_jax.runtime import xla as jit
if sys.argv[1] == "refused":
    jit.CPU_OPTIONS = {"xla_cpu_smg_no_such_flag": True}
if sys.argv[1] != "unset":
    print("SET", sorted(jit.set_process_wide_options()))
print("FLAGS", os.environ.get("XLA_FLAGS", ""))
text = jax.pmap(lambda x: jnp.maximum(x, 0.0)).lower(jnp.ones((1, 256, 1024))).compile().as_text()
print("FUSED", "ynn_fusion" in text[text.index("ENTRY"):])
"""


@pytest.mark.parametrize("mode", ["set", "unset", "refused"])
def test_process_wide_options_reach_a_plain_pmap(mode):
    env = {
        k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "SMG_JAX_CPU_LIBRARY_FUSIONS")
    }
    env["JAX_PLATFORMS"] = "cpu"
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode], env=env, cwd=root, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    if mode == "set":
        assert lines["SET"] == str(sorted({**jit.CPU_OPTIONS, **jit.GPU_OPTIONS}))
        assert jit.xla_flags(jit.CPU_OPTIONS) in lines["FLAGS"]
    elif mode == "refused":
        assert lines["SET"] == "[]"
        assert "refused by this jaxlib" in done.stderr
    else:
        assert lines["FLAGS"] == ""
    assert lines["FUSED"] == str(mode == "set")
