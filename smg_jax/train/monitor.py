"""What every training loop here needs around its steps: TensorBoard scalars and a SIGTERM flag.

Used by the training engine (``engine``, which the classification loop,
the vmapped seeds and the emotion trainer configure) and by the online
recognizer's trainer (``smg_jax.online.training``).
"""

from __future__ import annotations

import contextlib
import pathlib
import signal

import jax


class TensorBoard:
    """Scalars to TensorBoard event files (tensorboardX: no TensorBoard server needed to write).

    ``enabled=False`` (or a host other than process 0) makes every call a no-op.
    """

    def __init__(self, logdir: pathlib.Path, enabled: bool) -> None:
        self._writer = None
        if enabled:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(logdir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self._writer is None:
            return
        for name, value in values.items():
            self._writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()


class Preemption:
    """Within ``with``: SIGTERM sets ``requested``, which a loop checks after every step.

    The previous handler comes back on exit. Off the main thread (no handler
    can be set there) and with several processes (JAX's preemption service
    owns SIGTERM then, see ``distributed.preemption_requested``) it installs
    nothing and ``requested`` stays ``False``.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> Preemption:
        if jax.process_count() > 1:
            return self
        with contextlib.suppress(ValueError):  # not in the main thread: no handler
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        del signum, frame
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
