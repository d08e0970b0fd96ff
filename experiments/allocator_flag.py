"""``--host_allocator``, the flag every training program here shares (see smg_jax.train.allocator).

On the CPU backend tcmalloc (or glibc's huge pages) trains faster than glibc's
default ``malloc``, which faults XLA's step buffers in again at every step
(docs/performance.md). The allocator must be loaded before the process starts,
so ``apply()`` restarts the program under it.
"""

from __future__ import annotations

import logging

from absl import app, flags

from smg_jax.train import allocator

log = logging.getLogger(__name__)

HOST_ALLOCATOR = flags.DEFINE_enum(
    "host_allocator",
    None,
    list(allocator.CHOICES),
    "Restart under this host memory allocator first; on CPU, tcmalloc (or hugepages, "
    "nothing to install) trains faster than glibc's malloc. Default: as started.",
)


def apply() -> None:
    """Restarts the program under ``--host_allocator`` if given; logs the allocator in use.

    Call at the start of ``main``, before any work. A missing library is a
    usage error that says how to install it.
    """
    if HOST_ALLOCATOR.value is not None:
        try:
            allocator.restart_with(HOST_ALLOCATOR.value)
        except allocator.AllocatorError as error:
            raise app.UsageError(str(error)) from None
    log.info("Host memory allocator: %s", allocator.in_use())
