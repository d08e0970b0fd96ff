"""The flags every ``experiments`` program shares, and the one call that sets the runtime up.

``--host_allocator`` and ``--compilation_cache`` are aliases of the config's
``runtime.host_allocator`` and ``runtime.compilation_cache``
(``smg_jax.runtime.profile``). On the CPU backend tcmalloc (or glibc's huge
pages) trains faster than glibc's default ``malloc``, which faults XLA's step
buffers in again at every step (docs/performance.md); the allocator must be
loaded before the process starts, so ``setup`` restarts the program under it.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Sequence
from typing import Any

import ml_collections
from absl import app, flags
from absl import logging as absl_logging

from smg_jax import runtime
from smg_jax.runtime import allocator

# The loggers whose progress the programs show at INFO.
OUR_LOGGERS = ("smg_jax", "tfds_smg", "experiments")

HOST_ALLOCATOR = flags.DEFINE_enum(
    "host_allocator",
    None,
    list(allocator.CHOICES),
    "Restart under this host memory allocator first (alias of --config.runtime.host_allocator); "
    "on CPU, tcmalloc (or hugepages, nothing to install) trains faster than glibc's malloc. "
    "Default: as started.",
)
COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache",
    None,
    "JAX persistent compilation cache (alias of --config.runtime.compilation_cache): a folder, "
    "'auto' (<workdir>/jax_cache) or '' (off). A resumed run loads its compiled steps from it "
    "instead of compiling them again. Default: the config's.",
)


def setup(
    config: ml_collections.ConfigDict | None, workdir: str | pathlib.Path | None
) -> runtime.Profile:
    """``smg_jax.runtime.setup`` of ``config.runtime`` with the flags' values written into it.

    Call first in ``main``, before any work: it may restart the program. A
    missing allocator library is a usage error that says how to install it.
    """
    section: Any = (config or {}).get("runtime") or runtime.config_section(compilation_cache="")
    if HOST_ALLOCATOR.value is not None:
        section.host_allocator = HOST_ALLOCATOR.value
    if COMPILATION_CACHE.value is not None:
        section.compilation_cache = COMPILATION_CACHE.value
    try:
        return runtime.setup(section, workdir)
    except allocator.AllocatorError as error:
        raise app.UsageError(str(error)) from None


def start(
    argv: Sequence[str],
    config: ml_collections.ConfigDict | None,
    workdir: str | pathlib.Path | None,
) -> runtime.Profile:
    """The start of an absl program's ``main``: no stray arguments, logging, then ``setup``.

    Our progress at INFO; the libraries' (orbax, TFDS) chatter only from WARNING up.
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {list(argv[1:])}")
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    return setup(config, workdir)
