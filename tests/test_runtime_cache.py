"""``smg_jax.runtime.cache``: JAX's persistent compilation cache."""

import jax
import jax.numpy as jnp
import pytest
from jax.experimental.compilation_cache import compilation_cache

from smg_jax.runtime import cache


@pytest.fixture
def restore_compilation_cache():
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {name: getattr(jax.config, name) for name in names}
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


def test_compilation_cache_off_leaves_jax_alone(tmp_path, restore_compilation_cache):
    before = jax.config.jax_compilation_cache_dir
    assert cache.use_compilation_cache("", tmp_path) is None
    assert jax.config.jax_compilation_cache_dir == before
    assert not (tmp_path / "jax_cache").exists()


def test_compilation_cache_stores_what_compiles_after_it(tmp_path, restore_compilation_cache):
    jax.jit(lambda x: x - 1)(jnp.ones(3))  # a compilation before the cache is pointed anywhere
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    folder = cache.use_compilation_cache("auto", tmp_path)
    assert folder == tmp_path / "jax_cache"
    assert jax.config.jax_compilation_cache_dir == str(folder)
    jax.jit(lambda x: jnp.sin(x) * 3.0 + 0.5)(jnp.ones(7)).block_until_ready()
    assert any(folder.iterdir()), "nothing was written to the cache"
    other = cache.use_compilation_cache(str(tmp_path / "elsewhere"), tmp_path)
    assert other == tmp_path / "elsewhere" and other.is_dir()
