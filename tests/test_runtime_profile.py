"""``smg_jax.runtime``: the profile from a config section, its environment overrides, ``setup``."""

import dataclasses
import logging
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from experiments.configs import base, online_base
from smg_jax import models, runtime
from smg_jax.runtime import onednn, profile, random_merge
from smg_jax.train import state


@pytest.fixture(autouse=True)
def _restore_profile():
    previous, was_registered = profile.current(), onednn.registered()
    yield
    profile.activate(previous)
    if was_registered:
        onednn.load()
    else:
        onednn.unload()


def test_config_section_holds_the_defaults():
    section = runtime.config_section()
    assert profile.from_config(section) == profile.Profile()
    assert profile.from_config(None) == profile.Profile()
    assert section.host_allocator is None and section.compilation_cache == "auto"
    assert base.get_config().runtime.to_dict() == section.to_dict()
    assert online_base.get_config().runtime.compilation_cache == ""


def test_bad_fields_are_errors_that_name_them():
    section = runtime.config_section()
    section.onednn = "sometimes"
    with pytest.raises(profile.ProfileError, match=r"runtime.onednn='sometimes'.*auto, on, off"):
        profile.from_config(section)
    with pytest.raises(profile.ProfileError, match="unknown fields"):
        profile.from_config({"cpu_fusions": True})


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("SMG_JAX_CPU_LIBRARY_FUSIONS", "0", "cpu_library_fusions", False),
        ("SMG_JAX_CPU_LIBRARY_FUSIONS", "off", "cpu_library_fusions", False),
        ("SMG_JAX_GPU_TRITON_GEMM", "1", "gpu_triton_gemm", True),
        ("SMG_JAX_GPU_TRITON_GEMM", "true", "gpu_triton_gemm", True),
        ("SMG_JAX_MERGED_INIT", "0", "merged_init", False),
        ("SMG_JAX_ONEDNN_CONV", "0", "onednn", "off"),
        ("SMG_JAX_ONEDNN_CONV", "1", "onednn", "on"),
        ("SMG_JAX_ONEDNN_CONV", "auto", "onednn", "auto"),
        ("SMG_JAX_CACHE_DIR", "/tmp/k", "kernel_cache_dir", "/tmp/k"),
        ("SMG_JAX_ONEDNN_PREFIX", "/opt/a:/opt/b", "onednn_prefix", "/opt/a:/opt/b"),
    ],
)
def test_environment_overrides_the_profile(variable, value, field, expected):
    overridden = profile.from_environment(profile.Profile(), {variable: value})
    assert getattr(overridden, field) == expected
    assert profile.from_environment(profile.Profile(), {}) == profile.Profile()


def test_an_unreadable_variable_is_an_error_that_names_it():
    with pytest.raises(profile.ProfileError, match="SMG_JAX_MERGED_INIT='maybe'"):
        profile.from_environment(profile.Profile(), {"SMG_JAX_MERGED_INIT": "maybe"})


def test_kernel_cache_and_prefixes():
    assert profile.Profile(kernel_cache_dir="/k").kernel_cache() == pathlib.Path("/k")
    assert profile.Profile().kernel_cache().name == "smg_jax"
    prefixes = profile.Profile(onednn_prefix="/a::/b").onednn_prefixes()
    assert prefixes == [pathlib.Path("/a"), pathlib.Path("/b")]


def test_setup_applies_the_section_and_logs_it(tmp_path, caplog):
    section = runtime.config_section()
    section.merged_init = False
    section.onednn = "off"
    with caplog.at_level(logging.INFO, logger="smg_jax.runtime"):
        settings = runtime.setup(section, None, environ={})
    assert settings == profile.current()
    assert not settings.merged_init and not onednn.registered()
    assert "Runtime profile: cpu_library_fusions=True" in caplog.text
    assert "Compilation cache: off" in caplog.text  # 'auto' without a workdir
    # The environment overrides the section.
    settings = runtime.setup(section, None, environ={"SMG_JAX_MERGED_INIT": "1"})
    assert settings.merged_init


def test_merged_init_follows_the_profile(monkeypatch):
    model = models.create("stgcn", num_classes=3, channels=(8, 8), strides=(1, 1))
    calls = []
    merged = random_merge.call_with_merged_draws
    monkeypatch.setattr(
        random_merge, "call_with_merged_draws", lambda *a: calls.append(1) or merged(*a)
    )
    runtime.setup({**runtime.config_section().to_dict(), "onednn": "off"}, environ={})
    on = state.init_variables(model, jax.random.key(0), (1, 1, 8, 25, 3))
    profile.activate(dataclasses.replace(profile.current(), merged_init=False))
    off = state.init_variables(model, jax.random.key(0), (1, 1, 8, 25, 3))
    assert calls == [1]  # only the merged one went through random_merge
    for a, b in zip(jax.tree.leaves(on), jax.tree.leaves(off), strict=True):
        assert jnp.array_equal(a, b)


def test_setup_with_onednn_on_builds_and_registers_or_raises():
    try:
        runtime.setup({**runtime.config_section().to_dict(), "onednn": "on"}, environ={})
    except onednn.OnednnUnavailableError as error:
        assert "Fix:" in str(error)
        return
    assert onednn.registered() and onednn.unavailable_reason() == ""


_CHILD = """
import sys
from smg_jax.runtime import profile
print(profile.current().cpu_library_fusions, profile.current().onednn)
"""


def test_the_default_profile_reads_the_environment_once_at_import():
    env = {**os.environ, "SMG_JAX_CPU_LIBRARY_FUSIONS": "0", "SMG_JAX_ONEDNN_CONV": "0"}
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, cwd=root, capture_output=True, text=True,
        timeout=300, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["False", "off"]
