"""Multi-host runs: JAX's distributed runtime from ``config.distributed``, and preemption.

Every host runs the same command. ``distributed.enabled=True`` calls
``jax.distributed.initialize`` before anything touches a device; with
``coordinator_address``, ``num_processes`` and ``process_id`` left ``None``
JAX reads them from the cluster (Cloud TPU metadata, SLURM, Open MPI), so
``--config.distributed.enabled=True`` is all a TPU pod needs. Elsewhere
give all three (process 0's ``host:port``, the host count, this host's rank).
"""

from __future__ import annotations

import jax
import ml_collections
from jax.experimental import multihost_utils

from smg_jax.runtime import xla

FIELDS = ("coordinator_address", "num_processes", "process_id")


def initialize(config: ml_collections.ConfigDict) -> bool:
    """Starts the distributed runtime when ``config.distributed.enabled`` (once per process).

    Returns whether it is running. A process whose runtime was started
    before (by a launcher or an earlier call) is left as it is.
    """
    settings = config.get("distributed")
    if settings is None or not settings.enabled:
        return jax.distributed.is_initialized()
    if not jax.distributed.is_initialized():
        # A multi-host pmap takes no per-call compiler options: give them to XLA
        # process-wide while no backend is running yet.
        xla.set_process_wide_options()
        given = {name: settings[name] for name in FIELDS if settings[name] is not None}
        jax.distributed.initialize(**given)
    return True


def preemption_requested(step: int, local_flag: bool) -> bool:
    """Whether every host should checkpoint and stop after ``step``.

    One host: ``local_flag`` (its SIGTERM handler). Several: JAX's preemption
    service, which catches SIGTERM on any host and names a step at which all
    hosts agree to stop, so that their collective checkpoint save lines up.
    Must be called after every step on every host.
    """
    if jax.process_count() == 1:
        return local_flag
    return multihost_utils.reached_preemption_sync_point(step)
