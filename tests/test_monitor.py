"""``smg_jax.train.monitor``: the SIGTERM flag and the TensorBoard writer."""

import os
import signal
import threading

import pytest

from smg_jax.train import monitor


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers can only be set from the main thread",
)
def test_sigterm_sets_the_flag_and_the_previous_handler_returns():
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        with monitor.Preemption() as preemption:
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
        with monitor.Preemption() as preemption:
            seen.append(preemption.requested)

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    assert seen == [False]


def test_tensorboard_writes_scalars_only_when_enabled(tmp_path):
    import tensorflow as tf  # reads the event file tensorboardX wrote

    board = monitor.TensorBoard(tmp_path / "on", enabled=True)
    board.scalars(3, {"train/loss": 1.5, "test/top1": 0.25})
    board.close()
    (event_file,) = (tmp_path / "on").iterdir()
    scalars = {
        (value.tag, event.step): value.simple_value
        for event in tf.compat.v1.train.summary_iterator(str(event_file))
        for value in event.summary.value
    }
    assert scalars == {("train/loss", 3): 1.5, ("test/top1", 3): 0.25}

    off = monitor.TensorBoard(tmp_path / "off", enabled=False)
    off.scalars(1, {"train/loss": 1.0})
    off.close()
    assert not (tmp_path / "off").exists()
