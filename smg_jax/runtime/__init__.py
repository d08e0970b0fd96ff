"""How this process compiles and runs: the runtime profile and what it drives.

The room holds everything that is about the machine, not the models:

* ``profile``: the profile (a config section, ``SMG_JAX_*`` variables as overrides);
* ``xla``: ``jit``/``pmap`` with the XLA options, and the per-model compiler hints;
* ``allocator``: the host memory allocator (and a launcher that picks one);
* ``random_merge``: ``model.init`` compiled with its random draws merged;
* ``onednn``: building and loading the oneDNN temporal convolutions;
* ``cache``: JAX's persistent compilation cache.

An ``experiments`` program applies its config's ``runtime`` section once,
first thing, with :func:`setup`.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Mapping
from typing import Any

import jax

from smg_jax.runtime import allocator, cache, onednn
from smg_jax.runtime import profile as profile_lib
from smg_jax.runtime.profile import Profile, config_section, current

__all__ = ["Profile", "config_section", "current", "setup"]

log = logging.getLogger(__name__)


def _wants_cpu() -> bool:
    """Whether this process may run on the CPU backend (read without starting a backend)."""
    platforms = jax.config.jax_platforms or ""
    return not platforms or "cpu" in platforms.split(",")


def setup(
    section: Mapping[str, Any] | None = None,
    workdir: str | pathlib.Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Profile:
    """Applies a config's ``runtime`` section (plus ``SMG_JAX_*`` overrides) to this process.

    In order: restarts under ``host_allocator`` when it is not the one
    running (``allocator.AllocatorError`` when it cannot be had), makes the
    profile current (XLA options and merged init follow it), points the
    compilation cache at ``compilation_cache`` (relative to ``workdir``;
    ``'auto'`` without a workdir leaves it off), and loads the oneDNN
    convolutions unless ``onednn='off'``. Starts no JAX backend, so it may
    run before ``jax.distributed.initialize``. Logs what it set; returns the
    profile.
    """
    settings = profile_lib.from_environment(profile_lib.from_config(section), environ)
    if settings.host_allocator is not None:
        allocator.restart_with(settings.host_allocator)
    profile_lib.activate(settings)
    log.info("Runtime profile: %s", profile_lib.describe(settings))
    log.info("Host memory allocator: %s", allocator.in_use())
    folder = None
    if workdir is not None or settings.compilation_cache not in ("", "auto"):
        folder = cache.use_compilation_cache(settings.compilation_cache, workdir or ".")
    log.info("Compilation cache: %s", folder or "off")
    if settings.onednn == "off" or (settings.onednn == "auto" and not _wants_cpu()):
        onednn.unload()
    elif onednn.load(required=settings.onednn == "on"):
        log.info("Temporal convolutions (float32, CPU): oneDNN %s", onednn.version())
    return settings
