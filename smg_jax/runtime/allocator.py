"""The host memory allocator: which one this process runs, and a launcher that picks one.

Why it matters on the CPU backend: XLA:CPU allocates every temporary buffer of
a step as one block (about 0.9 GB for a 2s-AGCN train step at batch 16) and
frees it when the step ends. glibc's ``malloc`` serves blocks above 32 MB with
a fresh ``mmap`` and returns them to the kernel on ``free``, so every step
page-faults its whole working set in again: 230,000 minor faults and about
0.4 s of kernel time per 2s-AGCN step on 2 cores. tcmalloc (or jemalloc told to
keep its pages) reuses the block, and the faults drop to a few hundred
(docs/performance.md has the figures). PyTorch's per-operation tensors stay
below glibc's threshold, which is one reason its CPU training was ahead of ours
with the default allocator.

An allocator can only be chosen before a process starts (``LD_PRELOAD``), so
this module is also a launcher::

    python -m smg_jax.runtime.allocator tcmalloc -- python -m experiments.main --config=...

It finds the library, adds it to ``LD_PRELOAD`` and replaces itself with the
command. ``hugepages`` needs nothing installed: glibc's own ``malloc`` (2.35
or newer) asked to back its large blocks with transparent huge pages
(``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``), which cuts the faults 250-fold
but still zeroes the pages every step. ``system`` runs the command with the C
library's ``malloc`` as configured. Linux only; elsewhere ``system`` is the
only choice.
"""

from __future__ import annotations

import argparse
import ctypes.util
import os
import pathlib
import resource
import shlex
import sys
from collections.abc import Mapping, Sequence

# Library names ``ctypes.util.find_library`` is asked for, in order of preference.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "tcmalloc": ("tcmalloc_minimal", "tcmalloc"),
    "jemalloc": ("jemalloc",),
}
CHOICES = ("system", "hugepages", *LIBRARIES)
HUGEPAGES_TUNABLE = "glibc.malloc.hugetlb=1"
# jemalloc returns freed pages to the kernel after 10 s by default and then
# faults them in again; keeping them is the point of switching.
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
INSTALL_HINTS = {
    "tcmalloc": "Debian/Ubuntu: `sudo apt install libtcmalloc-minimal4`; Fedora: "
    "`sudo dnf install gperftools-libs`; conda: `conda install -c conda-forge gperftools`",
    "jemalloc": "Debian/Ubuntu: `sudo apt install libjemalloc2`; Fedora: "
    "`sudo dnf install jemalloc`; conda: `conda install -c conda-forge jemalloc`",
}
_MAPS = pathlib.Path("/proc/self/maps")
_RESTARTED = "SMG_JAX_ALLOCATOR_RESTARTED"


class AllocatorError(RuntimeError):
    """An allocator that cannot be found or used here; the message says how to get it."""


def find_library(name: str, candidates: Sequence[str] | None = None) -> str:
    """The shared library to preload for allocator ``name`` (``tcmalloc`` or ``jemalloc``).

    ``candidates``: library names to look for instead of ``LIBRARIES[name]``.
    Raises ``AllocatorError`` with install instructions when none is found.
    """
    if name not in LIBRARIES:
        raise AllocatorError(f"Unknown allocator {name!r}; choose one of {', '.join(CHOICES)}.")
    if not sys.platform.startswith("linux"):
        raise AllocatorError(
            f"Preloading {name} is supported on Linux only (this is {sys.platform}); use `system`."
        )
    for candidate in candidates or LIBRARIES[name]:
        found = ctypes.util.find_library(candidate)
        if found:
            return found
    looked_for = ", ".join(f"lib{c}.so" for c in candidates or LIBRARIES[name])
    raise AllocatorError(
        f"No {name} library found (looked for {looked_for} with the dynamic linker's "
        f"search path). Install it ({INSTALL_HINTS[name]}), or run with `system`."
    )


def environment(name: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with allocator ``name`` preloaded.

    Entries already in ``LD_PRELOAD`` are kept after ours; ``system`` and
    ``hugepages`` remove any tcmalloc or jemalloc from it instead. Only
    ``hugepages`` leaves glibc's huge-page tunable in ``GLIBC_TUNABLES``.
    """
    if name not in CHOICES:
        raise AllocatorError(f"Unknown allocator {name!r}; choose one of {', '.join(CHOICES)}.")
    env = dict(os.environ if base is None else base)
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    tunables = [t for t in tunables if not t.startswith("glibc.malloc.hugetlb=")]
    if name == "hugepages":
        if not sys.platform.startswith("linux"):
            raise AllocatorError(f"`hugepages` is for Linux's glibc (this is {sys.platform}).")
        tunables.append(HUGEPAGES_TUNABLE)
    if tunables:
        env["GLIBC_TUNABLES"] = ":".join(tunables)
    else:
        env.pop("GLIBC_TUNABLES", None)
    kept = [
        entry
        for entry in env.get("LD_PRELOAD", "").replace(":", " ").split()
        if allocator_of_path(entry) is None
    ]
    if name in ("system", "hugepages"):
        if kept:
            env["LD_PRELOAD"] = " ".join(kept)
        else:
            env.pop("LD_PRELOAD", None)
        return env
    env["LD_PRELOAD"] = " ".join([find_library(name), *kept])
    if name == "jemalloc":
        env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    return env


def allocator_of_path(path: str) -> str | None:
    """``tcmalloc`` or ``jemalloc`` when ``path`` names one of their libraries, else ``None``."""
    base = os.path.basename(path)
    for name in LIBRARIES:
        if base.startswith(f"lib{name}"):
            return name
    return None


def in_use() -> str:
    """The allocator this process runs: one of ``CHOICES``, or ``unknown``.

    Read from the libraries mapped into the process (``/proc/self/maps``) and,
    for ``hugepages``, from ``GLIBC_TUNABLES`` (read by glibc at start-up);
    ``unknown`` where the maps file does not exist (not Linux).
    """
    try:
        maps = _MAPS.read_text()
    except OSError:
        return "unknown"
    for line in maps.splitlines():
        name = allocator_of_path(line.rsplit(" ", 1)[-1])
        if name is not None:
            return name
    tunables = os.environ.get("GLIBC_TUNABLES", "").split(":")
    if any(t.startswith("glibc.malloc.hugetlb=") and t[-1:] in "12" for t in tunables):
        return "hugepages"
    return "system"


def minor_page_faults() -> int:
    """Minor page faults of this process so far (``getrusage``); take differences per step."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def restart_with(name: str) -> None:
    """Make this process run allocator ``name``: return if it already does, else re-execute.

    The interpreter is started again with the same command line
    (``sys.orig_argv``) and ``environment(name)``; call this first thing in a
    program's ``main``, before any work is done. Raises ``AllocatorError``
    when the library is missing, or when a restart did not bring it in.
    """
    current = in_use()
    if name == current:
        return
    if os.environ.get(_RESTARTED) == name:
        raise AllocatorError(
            f"Restarted with {name} preloaded, but this process still runs {current}: "
            "the dynamic linker refused the library (see its message above)."
        )
    env = environment(name)
    env[_RESTARTED] = name
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smg_jax.runtime.allocator",
        description="Run a command with the given host memory allocator preloaded.",
        epilog="example: python -m smg_jax.runtime.allocator tcmalloc -- "
        "python -m experiments.main --config=experiments/configs/stgcn.py --workdir=runs/x",
    )
    parser.add_argument("allocator", choices=CHOICES)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given: put it after --")
    try:
        env = environment(args.allocator)
    except AllocatorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        os.execvpe(command[0], command, env)
    except OSError as error:
        print(f"error: cannot run {shlex.join(command)}: {error}", file=sys.stderr)
        return 127
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main())
