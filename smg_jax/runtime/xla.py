"""``jax.jit`` with the XLA options that make our training and evaluation steps fast.

On the CPU backend, XLA hands dots and (with these options) elementwise and
reduction fusions to its YNNPACK library, which runs them multi-threaded;
convolutions stay in XLA's Eigen convolution, except the float32 temporal
convolutions, which ``smg_jax.models.onednn_conv`` hands to oneDNN through
an FFI custom call. Measured on 2 cores (batch
16, 60 frames, ST-GCN): 1.5x the training clips/s of XLA's default
fusions; golden parity is unchanged.
Inference uses them too (5-15 % more clips/s for ST-GCN, 2s-AGCN and
CTR-GCN) except for the models whose ``MODEL_HINTS`` entry says otherwise:
Shift-GCN, whose gathered shifts ran at half speed inside the elementwise
fusions, compiles its inference without them.

On the GPU backend, Triton GEMM fusion is switched off
(``xla_gpu_enable_triton_gemm=False``; GEMMs go to cuBLAS). With jaxlib 0.11.2
on an H200, XLA aborted the whole process while fusing a dot of GCN-NAS
(float32) and of Shift-GCN (bfloat16) (``triton_tiling_propagation.cc``:
``Check failed: subdim_size_accumulator == dim_size``); with the flag all six
models compiled and trained (docs/performance.md). TPU gets no extra options.

The runtime profile's ``cpu_library_fusions=False`` compiles with XLA's CPU
defaults and ``gpu_triton_gemm=True`` gives Triton GEMM fusion back to XLA:GPU
(to compare, or once a jaxlib fixes the abort); ``smg_jax.runtime.profile``
names their environment overrides. A jaxlib that does not know an option is
detected once and falls back to the defaults with a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from smg_jax.runtime import profile

log = logging.getLogger(__name__)

GPU_OPTIONS: dict[str, Any] = {"xla_gpu_enable_triton_gemm": False}


def _fusions(*kinds: str) -> dict[str, str]:
    return {
        "xla_cpu_experimental_ynn_fusion_type": ",".join(
            f"LIBRARY_FUSION_TYPE_{kind}" for kind in kinds
        )
    }


# No YNNPACK convolutions: it takes none of our 1-D temporal convolutions,
# and Eigen runs the 2-D weight gradients of ``ops.temporal_conv.conv_frames``
# faster (docs/performance.md).
CPU_OPTIONS = _fusions("DOT", "ELTWISE", "REDUCE")
CPU_OPTIONS_WITHOUT_ELEMENTWISE = _fusions("DOT", "REDUCE")


@dataclasses.dataclass(frozen=True)
class CompilerHints:
    """How one model's programs are compiled, where it differs from the rest."""

    # Inference with XLA:CPU's elementwise library fusions.
    cpu_inference_elementwise_fusions: bool = True


# Keyed by the model registry's names (``smg_jax.models``).
MODEL_HINTS: dict[str, CompilerHints] = {
    # Its shifts are gathers, which ran at half speed inside the elementwise fusions.
    "shiftgcn": CompilerHints(cpu_inference_elementwise_fusions=False),
}


def hints_for(model_name: str | None) -> CompilerHints:
    """The compiler hints of the registered model ``model_name`` (``None``: the defaults)."""
    if model_name is not None and not isinstance(model_name, str):
        raise TypeError(f"model_name must be a registry name (a str), not {type(model_name)}.")
    return MODEL_HINTS.get(model_name or "", CompilerHints())


@functools.cache
def _options_for(
    backend: str, enabled: bool, elementwise: bool, gpu_triton_gemm: bool = False
) -> tuple[tuple[str, Any], ...]:
    if backend == "cpu" and enabled:
        options = CPU_OPTIONS if elementwise else CPU_OPTIONS_WITHOUT_ELEMENTWISE
    elif backend == "gpu" and not gpu_triton_gemm:
        options = GPU_OPTIONS
    else:
        return ()
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except Exception as error:  # an option this jaxlib does not know
        log.warning(
            "XLA %s options %s refused (%s); using XLA's defaults.", backend, options, error
        )
        return ()
    return tuple(options.items())


def compiler_options(
    backend: str | None = None, *, inference: bool = False, model_name: str | None = None
) -> dict[str, Any]:
    """The options ``jit`` passes for ``backend`` (default: JAX's default backend).

    From the runtime profile; ``inference`` of the registered model
    ``model_name`` follows its ``MODEL_HINTS`` entry.
    """
    settings = profile.current()
    elementwise = not inference or hints_for(model_name).cpu_inference_elementwise_fusions
    return dict(
        _options_for(
            backend or jax.default_backend(),
            settings.cpu_library_fusions,
            elementwise,
            settings.gpu_triton_gemm,
        )
    )


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    leaves, treedef = jax.tree.flatten(args)
    shapes = tuple(
        (
            np.shape(leaf),
            getattr(leaf, "dtype", None) or np.result_type(leaf),
            getattr(leaf, "weak_type", False),
        )
        for leaf in leaves
    )
    return treedef, shapes


# Options that ``set_process_wide_options`` put into ``XLA_FLAGS`` in this process.
_PROCESS_WIDE: dict[str, Any] = {}


def xla_flags(options: dict[str, Any]) -> str:
    """``options`` as ``XLA_FLAGS`` takes them: ``--name=value``, booleans lower-case."""

    def text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    return " ".join(f"--{name}={text(value)}" for name, value in options.items())


def _flags_accepted(flags: str, timeout_s: float = 300.0) -> tuple[bool, str]:
    """Whether a fresh CPU-only JAX process starts and compiles under ``XLA_FLAGS=flags``.

    XLA aborts a process whose ``XLA_FLAGS`` names a flag it does not know, so
    the flags are tried in a child process first. Returns (accepted, the
    child's last stderr line).
    """
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    probe = "import jax; jax.jit(lambda x: x + 1).lower(1.0).compile()"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True,
            timeout=timeout_s,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, f"no answer in {timeout_s:.0f} s"
    lines = done.stderr.strip().splitlines()
    return done.returncode == 0, lines[-1] if lines else ""


def process_wide_options() -> dict[str, Any]:
    """The options ``set_process_wide_options`` put into ``XLA_FLAGS`` (empty if none)."""
    return dict(_PROCESS_WIDE)


def set_process_wide_options() -> dict[str, Any]:
    """Puts the CPU and GPU options into ``XLA_FLAGS``, for programs that take no per-call options.

    A multi-host ``pmap`` is one (see ``pmap``). Must run before JAX starts a
    backend (``distributed.initialize`` calls it before
    ``jax.distributed.initialize``); afterwards ``XLA_FLAGS`` is no longer
    read, and this logs so and returns ``{}``. The backend is not known yet,
    so both the CPU options and the GPU one are set; each backend reads only
    its own. The runtime profile's switches apply, a flag already in ``XLA_FLAGS``
    is left as the user set it, and flags this jaxlib refuses (tried in a
    child process: XLA aborts on an unknown flag) are not set, with a warning.
    Returns the options set.
    """
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        log.info("A JAX backend is running already; XLA_FLAGS left unchanged.")
        return {}
    options: dict[str, Any] = {}
    if profile.current().cpu_library_fusions:
        options.update(CPU_OPTIONS)
    if not profile.current().gpu_triton_gemm:
        options.update(GPU_OPTIONS)
    existing = os.environ.get("XLA_FLAGS", "")
    options = {
        name: value for name, value in options.items()
        if name not in _PROCESS_WIDE and f"--{name}=" not in existing
    }  # fmt: skip
    if not options:
        return {}
    flags = f"{existing} {xla_flags(options)}".strip()
    accepted, why = _flags_accepted(flags)
    if not accepted:
        log.warning(
            "XLA_FLAGS %r refused by this jaxlib (%s); multi-host pmap compiles with XLA's "
            "defaults.", flags, why,
        )  # fmt: skip
        return {}
    os.environ["XLA_FLAGS"] = flags
    _PROCESS_WIDE.update(options)
    log.info("XLA_FLAGS for every program of this process: %s", flags)
    return options


class _PmapWithOptions:
    """``jax.pmap(fun, **kwargs)`` whose programs are compiled with XLA ``options``.

    ``jax.pmap`` takes no compiler options, so each new input signature (tree,
    shapes, dtypes) is lowered and compiled here with them and the executable
    kept; later calls with that signature run it directly.
    """

    def __init__(self, fun: Callable[..., Any], options: dict[str, Any], **kwargs: Any):
        self._pmapped = jax.pmap(fun, **kwargs)
        self._options = options
        self._executables: dict[tuple[Any, ...], Any] = {}

    def lower(self, *args: Any) -> _LoweredWithOptions:
        return _LoweredWithOptions(self._pmapped.lower(*args), self._options)

    def __call__(self, *args: Any) -> Any:
        key = _signature(args)
        executable = self._executables.get(key)
        if executable is None:
            executable = self.lower(*args).compile()
            self._executables[key] = executable
        return executable(*args)


class _LoweredWithOptions:
    """A pmap ``Lowered`` whose ``compile()`` passes the options."""

    def __init__(self, lowered: Any, options: dict[str, Any]):
        self._lowered = lowered
        self._options = options

    def compile(self) -> Any:
        return self._lowered.compile(self._options)

    def as_text(self) -> str:
        return self._lowered.as_text()


@functools.cache
def _warn_multihost_pmap(options: tuple[str, ...]) -> None:
    log.warning(
        "pmap over %d processes compiles without the XLA options %s (an AOT-compiled pmap "
        "takes global arrays, and XLA_FLAGS did not carry them: see "
        "smg_jax.runtime.xla.set_process_wide_options); use train.parallel='mesh' to keep them.",
        jax.process_count(),
        ", ".join(options),
    )


def pmap(
    fun: Callable[..., Any],
    *,
    inference: bool = False,
    model_name: str | None = None,
    **kwargs: Any,
) -> Any:
    """``jax.pmap(fun, **kwargs)`` compiled with ``compiler_options()``.

    Without it pmap programs would miss the CPU library fusions and, on GPU,
    keep the Triton GEMM fusion that aborted XLA for GCN-NAS and Shift-GCN.
    ``inference`` and ``model_name`` as for ``jit``.

    With several processes (multi-host) this is plain ``jax.pmap``: an
    ahead-of-time compiled pmap program expects the global arrays, while each
    host passes its own, so the options cannot be given per call. They come
    from ``XLA_FLAGS`` instead, which ``set_process_wide_options`` fills
    before the backend starts (``distributed.initialize`` does); an option
    missing there gets a warning, once.
    """
    options = compiler_options(inference=inference, model_name=model_name)
    if options and jax.process_count() > 1:
        missing = tuple(name for name, value in options.items() if _PROCESS_WIDE.get(name) != value)
        if missing:
            _warn_multihost_pmap(missing)
        options = {}
    if not options:
        return jax.pmap(fun, **kwargs)
    return _PmapWithOptions(fun, options, **kwargs)


def jit(
    fun: Callable[..., Any],
    *,
    inference: bool = False,
    model_name: str | None = None,
    **kwargs: Any,
) -> Any:
    """``jax.jit(fun, **kwargs)`` plus ``compiler_options()`` for the default backend.

    ``inference=True`` for forward-only programs (evaluation, prediction) of
    the registered model ``model_name`` (its name in ``smg_jax.models``).
    """
    options = compiler_options(inference=inference, model_name=model_name)
    return jax.jit(fun, compiler_options=options or None, **kwargs)
