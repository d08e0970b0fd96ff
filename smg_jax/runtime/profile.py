"""The runtime profile: how this process compiles and runs, as one frozen value.

A profile comes from the ``runtime`` section of an experiment config
(:func:`config_section` gives the section with the defaults below), with
the ``SMG_JAX_*`` environment variables as overrides. This module is the
only place those variables are read: :func:`from_environment` reads them
once when the profile is made (at import for the default profile,
in :func:`smg_jax.runtime.setup` for a program's), never while a program is
traced or compiled.

=============================  ==============================  ===========
field                          environment override            default
=============================  ==============================  ===========
``cpu_library_fusions``        ``SMG_JAX_CPU_LIBRARY_FUSIONS``  ``True``
``gpu_triton_gemm``            ``SMG_JAX_GPU_TRITON_GEMM``      ``False``
``merged_init``                ``SMG_JAX_MERGED_INIT``          ``True``
``onednn`` (auto / on / off)   ``SMG_JAX_ONEDNN_CONV``          ``'auto'``
``kernel_cache_dir``           ``SMG_JAX_CACHE_DIR``            ``''``
``onednn_prefix``              ``SMG_JAX_ONEDNN_PREFIX``        ``''``
``host_allocator``             (``--host_allocator``)           ``None``
``compilation_cache``          (``--compilation_cache``)        ``'auto'``
=============================  ==============================  ===========

Boolean variables take ``0/false/no/off`` and ``1/true/yes/on``;
``SMG_JAX_ONEDNN_CONV`` takes ``auto``, ``on`` (``1``) or ``off`` (``0``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_collections
from ml_collections import config_dict

ONEDNN_CHOICES = ("auto", "on", "off")
_OFF = {"0", "false", "no", "off"}
_ON = {"1", "true", "yes", "on"}
_BOOLEAN_OVERRIDES = {
    "cpu_library_fusions": "SMG_JAX_CPU_LIBRARY_FUSIONS",
    "gpu_triton_gemm": "SMG_JAX_GPU_TRITON_GEMM",
    "merged_init": "SMG_JAX_MERGED_INIT",
}
_TEXT_OVERRIDES = {
    "kernel_cache_dir": "SMG_JAX_CACHE_DIR",
    "onednn_prefix": "SMG_JAX_ONEDNN_PREFIX",
}
ONEDNN_VARIABLE = "SMG_JAX_ONEDNN_CONV"


class ProfileError(ValueError):
    """A runtime field or ``SMG_JAX_*`` variable with a value it cannot take; says which."""


@dataclasses.dataclass(frozen=True)
class Profile:
    """What a process sets before it runs models (fields: see the module docstring).

    ``cpu_library_fusions``: XLA:CPU hands dots, elementwise and reduction
    fusions to its YNNPACK library (``smg_jax.runtime.xla``).
    ``gpu_triton_gemm``: leave XLA:GPU's Triton GEMM fusion on.
    ``merged_init``: ``model.init`` compiled with its random draws merged
    (``smg_jax.runtime.random_merge``).
    ``onednn``: the float32 CPU temporal convolutions by oneDNN
    (``smg_jax.runtime.onednn``); ``auto`` falls back to XLA's with a
    message, ``on`` makes a failed build an error.
    ``kernel_cache_dir``: where built kernels are kept ('' is
    ``$XDG_CACHE_HOME/smg_jax``, else ``~/.cache/smg_jax``).
    ``onednn_prefix``: extra install prefixes (``:``-separated) to find oneDNN in.
    ``host_allocator``: restart under this allocator (``smg_jax.runtime.allocator``;
    ``None``: as started). ``compilation_cache``: JAX's persistent cache, a
    folder, ``'auto'`` (``<workdir>/jax_cache``) or ``''`` (off).
    """

    cpu_library_fusions: bool = True
    gpu_triton_gemm: bool = False
    merged_init: bool = True
    onednn: str = "auto"
    kernel_cache_dir: str = ""
    onednn_prefix: str = ""
    host_allocator: str | None = None
    compilation_cache: str = "auto"

    def __post_init__(self) -> None:
        if self.onednn not in ONEDNN_CHOICES:
            raise ProfileError(
                f"runtime.onednn={self.onednn!r}; choose one of {', '.join(ONEDNN_CHOICES)}."
            )

    def kernel_cache(self) -> Path:
        """The folder built kernels are kept in."""
        if self.kernel_cache_dir:
            return Path(self.kernel_cache_dir)
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "smg_jax"

    def onednn_prefixes(self) -> list[Path]:
        """The extra oneDNN install prefixes of ``onednn_prefix``."""
        return [Path(p) for p in self.onednn_prefix.split(":") if p]


def config_section(compilation_cache: str = "auto") -> ml_collections.ConfigDict:
    """The ``runtime`` section of an experiment config, with the profile's defaults."""
    section = ml_collections.ConfigDict(dataclasses.asdict(Profile()))
    section.host_allocator = config_dict.placeholder(str)
    section.compilation_cache = compilation_cache
    return section


def from_config(section: Mapping[str, Any] | None) -> Profile:
    """The profile of a config's ``runtime`` section (``None``: the defaults)."""
    if section is None:
        return Profile()
    fields = {f.name for f in dataclasses.fields(Profile)}
    values = dict(section.items())
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ProfileError(f"runtime section has unknown fields {unknown}; known: {sorted(fields)}")
    return Profile(**values)


def _boolean(variable: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _OFF or text in _ON:
        return text in _ON
    raise ProfileError(f"{variable}={value!r}; set it to 1 or 0 (or unset it).")


def _onednn_setting(value: str) -> str:
    text = value.strip().lower()
    if text in ONEDNN_CHOICES:
        return text
    return "on" if _boolean(ONEDNN_VARIABLE, text) else "off"


def from_environment(profile: Profile, environ: Mapping[str, str] | None = None) -> Profile:
    """``profile`` with the ``SMG_JAX_*`` variables set in ``environ`` (default: ``os.environ``)."""
    environ = os.environ if environ is None else environ
    changes: dict[str, Any] = {}
    for field, variable in _BOOLEAN_OVERRIDES.items():
        if environ.get(variable, "").strip():
            changes[field] = _boolean(variable, environ[variable])
    for field, variable in _TEXT_OVERRIDES.items():
        if environ.get(variable):
            changes[field] = environ[variable]
    if environ.get(ONEDNN_VARIABLE, "").strip():
        changes["onednn"] = _onednn_setting(environ[ONEDNN_VARIABLE])
    return dataclasses.replace(profile, **changes)


_current = from_environment(Profile())


def current() -> Profile:
    """The profile of this process: the last one activated, else the defaults plus overrides."""
    return _current


def activate(profile: Profile) -> Profile:
    """Makes ``profile`` this process's profile; returns the previous one."""
    global _current
    previous, _current = _current, profile
    return previous


def describe(profile: Profile) -> str:
    """``field=value`` pairs of ``profile``, for the log."""
    return ", ".join(f"{f.name}={getattr(profile, f.name)!r}" for f in dataclasses.fields(profile))
