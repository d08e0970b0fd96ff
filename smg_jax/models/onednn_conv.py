"""Temporal convolutions by oneDNN on the CPU backend (an XLA FFI custom call).

XLA:CPU runs a convolution in Eigen, which for our 9-frame temporal
convolutions ran at 0.6-0.9x the speed of the oneDNN convolution PyTorch
calls (forward + both gradients, 16 clips x 25 joints, 2 cores; see
docs/performance.md). This module hands those convolutions to oneDNN itself,
through three FFI handlers (``onednn_conv.cc``): forward, input gradient and
kernel gradient of PyTorch's ``Conv1d`` over frames in our channels-last
layout, ``(N, T, C), (k, C, O) -> (N, T', O)``.

The shared library is compiled from ``onednn_conv.cc`` on first use with the
system's C++ compiler, against JAX's FFI headers and the oneDNN of the
``onednn-cpu-gomp`` wheels (oneDNN 3.2, GNU OpenMP), and cached (see
``cache_dir``). Where that is not possible (no compiler, no oneDNN, another
CPU architecture) the reason is logged once and every convolution stays in
XLA, computing the same function.

Only float32 on the CPU backend goes to oneDNN: the calls sit behind
``jax.lax.platform_dependent``, so the same program lowered for a GPU or TPU
keeps XLA's convolution. ``SMG_JAX_ONEDNN_CONV=0`` switches the path off
(to compare, or to export a program without the custom call).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

log = logging.getLogger(__name__)

ENV_SWITCH = "SMG_JAX_ONEDNN_CONV"
CACHE_ENV = "SMG_JAX_CACHE_DIR"
SOURCE = Path(__file__).with_name("onednn_conv.cc")
TARGETS = {
    "forward": "SmgConvFramesForward",
    "input_gradient": "SmgConvFramesBackwardData",
    "kernel_gradient": "SmgConvFramesBackwardWeights",
}
_TARGET_PREFIX = "smg_onednn_conv_frames_"


class OnednnUnavailableError(RuntimeError):
    """The oneDNN convolutions cannot be built or loaded here; the message says why and the fix."""


def switched_on() -> bool:
    """Whether ``SMG_JAX_ONEDNN_CONV`` leaves the oneDNN path on (default: on)."""
    value = os.environ.get(ENV_SWITCH, "1").strip().lower()
    return value not in {"0", "false", "no", "off"}


def cache_dir() -> Path:
    """Where the compiled library is kept: ``$SMG_JAX_CACHE_DIR``, else ``~/.cache/smg_jax``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "smg_jax"


def _onednn_prefixes() -> list[Path]:
    """Install prefixes where pip puts the wheels' ``include/`` and ``lib/``."""
    prefixes = [Path(sys.prefix), Path(sysconfig.get_config_var("userbase") or sys.prefix)]
    prefixes += [Path(p) for p in os.environ.get("SMG_JAX_ONEDNN_PREFIX", "").split(":") if p]
    return list(dict.fromkeys(prefixes))


def _find_onednn() -> tuple[Path, Path]:
    """The oneDNN include and library folders, or ``OnednnUnavailableError``."""
    for prefix in _onednn_prefixes():
        include, lib = prefix / "include", prefix / "lib"
        if (include / "oneapi" / "dnnl" / "dnnl.hpp").is_file() and any(lib.glob("libdnnl.so*")):
            return include, lib
    searched = ", ".join(str(p) for p in _onednn_prefixes())
    raise OnednnUnavailableError(
        f"oneDNN headers and library not found under {searched}. Fix: pip install "
        "'onednn-cpu-gomp==2023.2.0' 'onednn-devel-cpu-gomp==2023.2.0' (smg-jax declares "
        "both on Linux x86-64), or point SMG_JAX_ONEDNN_PREFIX at a oneDNN 3.x install."
    )


def _compiler() -> str:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    raise OnednnUnavailableError(
        "no C++ compiler (tried $CXX, c++, g++, clang++) to build the oneDNN convolutions. "
        "Fix: install one (e.g. apt install g++), or set SMG_JAX_ONEDNN_CONV=0 to stay in XLA."
    )


def build(directory: Path | None = None) -> Path:
    """Compiles ``onednn_conv.cc`` (if not cached yet) and returns the shared library's path.

    The file name carries a hash of the source, the JAX FFI headers' location
    and oneDNN's, so a new jaxlib or oneDNN builds anew. Concurrent builds
    (pytest workers) each write their own temporary file and rename it.
    """
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        raise OnednnUnavailableError(
            f"the oneDNN convolutions are built for Linux x86-64 only, not "
            f"{platform.system()} {platform.machine()}; XLA's convolution is used."
        )
    include, lib = _find_onednn()
    ffi_include = Path(jax.ffi.include_dir())
    digest = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        str(ffi_include).encode(),
        str(lib).encode(),
        jax.__version__.encode(),
    ):
        digest.update(part)
    directory = directory or cache_dir()
    target = directory / f"libsmg_onednn_conv-{digest.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    compiler = _compiler()
    fd, partial = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(fd)
    command = [
        compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-w", str(SOURCE),
        f"-I{ffi_include}", f"-I{include}", f"-L{lib}", "-ldnnl", f"-Wl,-rpath,{lib}",
        "-o", partial,
    ]  # fmt: skip
    log.info("Building the oneDNN temporal convolutions: %s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        Path(partial).unlink(missing_ok=True)
        raise OnednnUnavailableError(
            f"compiling {SOURCE} failed ({compiler}, exit {done.returncode}):\n"
            f"{done.stderr[-2000:]}\nFix: see the compiler's message above, or set "
            f"{ENV_SWITCH}=0 to stay in XLA."
        )
    os.replace(partial, target)
    return target


@functools.cache
def _load() -> tuple[ctypes.CDLL | None, str]:
    """The loaded library with its FFI targets registered, or (None, why not)."""
    try:
        library = ctypes.CDLL(str(build()))
    except (OnednnUnavailableError, OSError) as error:
        log.warning("oneDNN temporal convolutions unavailable; using XLA's: %s", error)
        return None, str(error)
    for kind, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(
            _TARGET_PREFIX + kind, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
        )
    library.SmgOnednnVersion.restype = ctypes.c_char_p
    return library, ""


def available() -> bool:
    """Whether the oneDNN convolutions are built and registered (builds them on first call)."""
    return _load()[0] is not None


def unavailable_reason() -> str:
    """Why ``available()`` is false ('' when it is true)."""
    return _load()[1]


def version() -> str:
    """oneDNN's version and commit, e.g. ``'3.2.0 (4011219...)'``."""
    library, why = _load()
    if library is None:
        raise OnednnUnavailableError(why)
    return library.SmgOnednnVersion().decode()


# The largest kernel (taps x in x out channels) given to oneDNN. Its brgemm
# convolution, one thread per chunk, ran 256 -> 384 channels at 15 frames 1.1-1.25x
# slower than Eigen (a 3.5 MB kernel), 256 -> 256 as fast, everything smaller
# faster (docs/performance.md).
MAX_KERNEL_ELEMENTS = 9 * 256 * 256


def describe() -> str:
    """What runs the temporal convolutions here: ``'onednn 3.2.0 (...)'`` or ``'xla'``.

    For benchmark records; float32 on the CPU backend (see ``used_for``).
    """
    if jax.default_backend() == "cpu" and switched_on() and available():
        return f"onednn {version()}"
    return "xla"


def used_for(dtype: jnp.dtype, kernel_shape: tuple[int, ...]) -> bool:
    """Whether a convolution of ``dtype`` with a ``(k, C, O)`` kernel goes to oneDNN.

    Only on the CPU backend (the default backend is the one programs are
    lowered for), in float32, for kernels of at most ``MAX_KERNEL_ELEMENTS``.
    """
    return (
        jnp.dtype(dtype) == jnp.float32
        and math.prod(kernel_shape) <= MAX_KERNEL_ELEMENTS
        and switched_on()
        and jax.default_backend() == "cpu"
        and available()
    )


def out_frames(frames: int, taps: int, stride: int, pad: int, dilation: int) -> int:
    """PyTorch's ``Conv1d`` output length, ``floor((T + 2p - d (k - 1) - 1) / s) + 1``."""
    return (frames + 2 * pad - dilation * (taps - 1) - 1) // stride + 1


def _call(kind: str, shape: tuple[int, ...], *operands: jax.Array, stride: int, pad: int,
          dilation: int) -> jax.Array:  # fmt: skip
    return jax.ffi.ffi_call(
        _TARGET_PREFIX + kind,
        jax.ShapeDtypeStruct(shape, jnp.float32),
        vmap_method="sequential",
    )(*operands, stride=np.int64(stride), pad=np.int64(pad), dilation=np.int64(dilation))


def forward(x: jax.Array, kernel: jax.Array, stride: int, pad: int, dilation: int) -> jax.Array:
    """``(N, T, C), (k, C, O) -> (N, T', O)`` by oneDNN (CPU only, float32)."""
    n, t, _ = x.shape
    k, _, o = kernel.shape
    shape = (n, out_frames(t, k, stride, pad, dilation), o)
    return _call("forward", shape, x, kernel, stride=stride, pad=pad, dilation=dilation)


def input_gradient(
    grad: jax.Array, kernel: jax.Array, frames: int, stride: int, pad: int, dilation: int
) -> jax.Array:
    """``(N, T', O), (k, C, O) -> (N, T, C)``: the gradient of ``forward`` for its input."""
    shape = (grad.shape[0], frames, kernel.shape[1])
    return _call("input_gradient", shape, grad, kernel, stride=stride, pad=pad, dilation=dilation)


def kernel_gradient(
    x: jax.Array, grad: jax.Array, taps: int, stride: int, pad: int, dilation: int
) -> jax.Array:
    """``(N, T, C), (N, T', O) -> (k, C, O)``: the gradient of ``forward`` for its kernel."""
    shape = (taps, x.shape[2], grad.shape[2])
    return _call("kernel_gradient", shape, x, grad, stride=stride, pad=pad, dilation=dilation)


def on_cpu(cpu: Callable[..., jax.Array], default: Callable[..., jax.Array], *args: jax.Array):
    """``cpu(*args)`` when the program is lowered for the CPU backend, else ``default(*args)``."""
    return jax.lax.platform_dependent(*args, cpu=cpu, default=default)
