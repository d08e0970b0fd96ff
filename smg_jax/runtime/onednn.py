"""Building and loading the oneDNN temporal convolutions (an XLA FFI custom call for CPU).

``onednn_conv.cc`` holds three FFI handlers (forward, input gradient and
kernel gradient of PyTorch's ``Conv1d`` over frames in our channels-last
layout); ``smg_jax.models.onednn_conv`` is the JAX side that calls them.
:func:`load` compiles the file with the system's C++ compiler, against
JAX's FFI headers and the oneDNN of the ``onednn-cpu-gomp`` wheels (oneDNN
3.2, GNU OpenMP; ``pip install 'smg-jax[onednn]'``), keeps the library in
the profile's kernel cache, and registers the targets in this process.

It runs as an explicit step, never while a program is traced: the
``experiments`` programs call it through :func:`smg_jax.runtime.setup`
(the profile's ``onednn`` field), a library user calls :func:`load` (or
runs ``smg-build-kernels`` once to build ahead). A process that never loads
it runs every convolution in XLA, computing the same function. Where it
cannot be built (no compiler, no oneDNN, another CPU architecture) the
reason and the fix are logged once and XLA's convolution stays.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

import jax

from smg_jax.runtime import profile as profile_lib

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("onednn_conv.cc")
TARGETS = {
    "forward": "SmgConvFramesForward",
    "input_gradient": "SmgConvFramesBackwardData",
    "kernel_gradient": "SmgConvFramesBackwardWeights",
}
TARGET_PREFIX = "smg_onednn_conv_frames_"
INSTALL_FIX = (
    "pip install 'smg-jax[onednn]' (the onednn-cpu-gomp and onednn-devel-cpu-gomp wheels, "
    "Linux x86-64), or point SMG_JAX_ONEDNN_PREFIX at a oneDNN 3.x install"
)


class OnednnUnavailableError(RuntimeError):
    """The oneDNN convolutions cannot be built or loaded here; the message says why and the fix."""


def _onednn_prefixes(profile: profile_lib.Profile) -> list[Path]:
    """Install prefixes where pip puts the wheels' ``include/`` and ``lib/``."""
    prefixes = [Path(sys.prefix), Path(sysconfig.get_config_var("userbase") or sys.prefix)]
    prefixes += profile.onednn_prefixes()
    return list(dict.fromkeys(prefixes))


def _find_onednn(profile: profile_lib.Profile) -> tuple[Path, Path]:
    """The oneDNN include and library folders, or ``OnednnUnavailableError``."""
    for prefix in _onednn_prefixes(profile):
        include, lib = prefix / "include", prefix / "lib"
        if (include / "oneapi" / "dnnl" / "dnnl.hpp").is_file() and any(lib.glob("libdnnl.so*")):
            return include, lib
    searched = ", ".join(str(p) for p in _onednn_prefixes(profile))
    raise OnednnUnavailableError(
        f"oneDNN headers and library not found under {searched}. Fix: {INSTALL_FIX}."
    )


def _compiler() -> str:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    raise OnednnUnavailableError(
        "no C++ compiler (tried $CXX, c++, g++, clang++) to build the oneDNN convolutions. "
        "Fix: install one (e.g. apt install g++), or set runtime.onednn='off' "
        "(SMG_JAX_ONEDNN_CONV=0) to stay in XLA."
    )


def _library_name(lib: Path) -> str:
    """The file name: a hash of the source, JAX's FFI headers' location and oneDNN's."""
    digest = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        str(Path(jax.ffi.include_dir())).encode(),
        str(lib).encode(),
        jax.__version__.encode(),
    ):
        digest.update(part)
    return f"libsmg_onednn_conv-{digest.hexdigest()[:16]}.so"


def build(directory: Path | None = None, profile: profile_lib.Profile | None = None) -> Path:
    """Compiles ``onednn_conv.cc`` (if not cached yet) and returns the shared library's path.

    ``directory`` defaults to the profile's kernel cache. A new jaxlib or
    oneDNN builds anew (the name carries their hash). Concurrent builds
    (pytest workers) each write their own temporary file and rename it.
    """
    profile = profile or profile_lib.current()
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        raise OnednnUnavailableError(
            f"the oneDNN convolutions are built for Linux x86-64 only, not "
            f"{platform.system()} {platform.machine()}; XLA's convolution is used."
        )
    include, lib = _find_onednn(profile)
    directory = directory or profile.kernel_cache()
    target = directory / _library_name(lib)
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    compiler = _compiler()
    fd, partial = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(fd)
    command = [
        compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-w", str(SOURCE),
        f"-I{jax.ffi.include_dir()}", f"-I{include}", f"-L{lib}", "-ldnnl", f"-Wl,-rpath,{lib}",
        "-o", partial,
    ]  # fmt: skip
    log.info("Building the oneDNN temporal convolutions: %s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        Path(partial).unlink(missing_ok=True)
        raise OnednnUnavailableError(
            f"compiling {SOURCE} failed ({compiler}, exit {done.returncode}):\n"
            f"{done.stderr[-2000:]}\nFix: see the compiler's message above, or set "
            "runtime.onednn='off' (SMG_JAX_ONEDNN_CONV=0) to stay in XLA."
        )
    os.replace(partial, target)
    return target


def _open(path: Path) -> ctypes.CDLL:
    library = ctypes.CDLL(str(path))
    library.SmgOnednnVersion.restype = ctypes.c_char_p
    return library


@functools.cache
def _register() -> ctypes.CDLL:
    """Builds (if needed), loads and registers the FFI targets: once per process.

    XLA keeps one handler per target name for the life of the process, so a
    later ``load`` (another profile) reuses this library.
    """
    library = _open(build())
    for kind, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(
            TARGET_PREFIX + kind, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
        )
    return library


# The library whose targets the models call, or None: what ``registered`` answers.
_library: ctypes.CDLL | None = None
_reason = "not loaded: call smg_jax.runtime.onednn.load() (or smg_jax.runtime.setup)"


def load(required: bool = False) -> bool:
    """Builds (if needed) and registers the oneDNN convolutions; whether they are in use now.

    Built with the current profile's kernel cache and oneDNN prefixes.

    Where that fails the reason and its fix are logged once (XLA's
    convolution stays); with ``required`` it raises ``OnednnUnavailableError``.
    """
    global _library, _reason
    try:
        _library = _register()
    except (OnednnUnavailableError, OSError) as error:
        _library, reason = None, str(error)
        if required:
            raise OnednnUnavailableError(reason) from error
        if reason != _reason:
            log.warning("oneDNN temporal convolutions unavailable; XLA's are used: %s", reason)
        _reason = reason
        return False
    _reason = ""
    return True


def unload() -> None:
    """Stops handing convolutions to oneDNN in programs traced from now on (``onednn='off'``)."""
    global _library, _reason
    _library, _reason = None, "switched off (runtime.onednn='off' or SMG_JAX_ONEDNN_CONV=0)"


def registered() -> bool:
    """Whether the oneDNN targets are registered for the models in this process (no build)."""
    return _library is not None


def unavailable_reason() -> str:
    """Why ``registered()`` is false ('' when it is true)."""
    return _reason


def version() -> str:
    """oneDNN's version and commit, e.g. ``'3.2.0 (4011219...)'``."""
    if _library is None:
        raise OnednnUnavailableError(_reason)
    return _library.SmgOnednnVersion().decode()


def describe() -> str:
    """What runs float32 temporal convolutions here: ``'onednn 3.2.0 (...)'`` or ``'xla'``."""
    if jax.default_backend() == "cpu" and registered():
        return f"onednn {version()}"
    return "xla"


def main(argv: Sequence[str] | None = None) -> int:
    """``smg-build-kernels``: builds the oneDNN convolutions into the kernel cache ahead of use."""
    parser = argparse.ArgumentParser(prog="smg-build-kernels", description=main.__doc__)
    parser.add_argument("--cache_dir", default=None, help="folder for the built library")
    args = parser.parse_args(argv)
    try:
        path = build(Path(args.cache_dir) if args.cache_dir else None)
        library = _open(path)
    except (OnednnUnavailableError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"oneDNN temporal convolutions ({library.SmgOnednnVersion().decode()}): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
