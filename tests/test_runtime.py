"""``smg_jax.train.runtime``: the SIGTERM flag, the TensorBoard writer and the compilation cache."""

import os
import signal
import threading

import jax
import jax.numpy as jnp
import pytest
from jax.experimental.compilation_cache import compilation_cache

from smg_jax.train import runtime


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers can only be set from the main thread",
)
def test_sigterm_sets_the_flag_and_the_previous_handler_returns():
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        with runtime.Preemption() as preemption:
            assert not preemption.requested
            os.kill(os.getpid(), signal.SIGTERM)
            assert preemption.requested
        assert calls == []  # ours caught it, not the handler before
        os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [signal.SIGTERM]  # restored on exit
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_preemption_off_the_main_thread_installs_nothing():
    seen = []

    def body():
        with runtime.Preemption() as preemption:
            seen.append(preemption.requested)

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    assert seen == [False]


def test_tensorboard_writes_scalars_only_when_enabled(tmp_path):
    import tensorflow as tf  # reads the event file tensorboardX wrote

    board = runtime.TensorBoard(tmp_path / "on", enabled=True)
    board.scalars(3, {"train/loss": 1.5, "test/top1": 0.25})
    board.close()
    (event_file,) = (tmp_path / "on").iterdir()
    scalars = {
        (value.tag, event.step): value.simple_value
        for event in tf.compat.v1.train.summary_iterator(str(event_file))
        for value in event.summary.value
    }
    assert scalars == {("train/loss", 3): 1.5, ("test/top1", 3): 0.25}

    off = runtime.TensorBoard(tmp_path / "off", enabled=False)
    off.scalars(1, {"train/loss": 1.0})
    off.close()
    assert not (tmp_path / "off").exists()


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
    assert runtime.use_compilation_cache("", tmp_path) is None
    assert jax.config.jax_compilation_cache_dir == before
    assert not (tmp_path / "jax_cache").exists()


def test_compilation_cache_stores_what_compiles_after_it(tmp_path, restore_compilation_cache):
    jax.jit(lambda x: x - 1)(jnp.ones(3))  # a compilation before the cache is pointed anywhere
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    folder = runtime.use_compilation_cache("auto", tmp_path)
    assert folder == tmp_path / "jax_cache"
    assert jax.config.jax_compilation_cache_dir == str(folder)
    jax.jit(lambda x: jnp.sin(x) * 3.0 + 0.5)(jnp.ones(7)).block_until_ready()
    assert any(folder.iterdir()), "nothing was written to the cache"
    other = runtime.use_compilation_cache(str(tmp_path / "elsewhere"), tmp_path)
    assert other == tmp_path / "elsewhere" and other.is_dir()
