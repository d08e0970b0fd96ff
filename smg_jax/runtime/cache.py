"""JAX's persistent compilation cache, pointed at by the profile's ``compilation_cache``."""

from __future__ import annotations

import pathlib

import jax


def use_compilation_cache(setting: str, workdir: str | pathlib.Path) -> pathlib.Path | None:
    """Points JAX's persistent compilation cache at ``setting``; returns the folder, or None if off.

    ``'auto'`` is ``<workdir>/jax_cache``, ``''`` leaves the cache off, and
    anything else is a folder. A resumed or repeated run then loads its
    compiled steps instead of compiling them again (docs/performance.md).
    Programs that compile in under a second are not stored (JAX's
    ``jax_persistent_cache_min_compile_time_secs``).
    """
    if not setting:
        return None
    folder = pathlib.Path(workdir) / "jax_cache" if setting == "auto" else pathlib.Path(setting)
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    return folder
