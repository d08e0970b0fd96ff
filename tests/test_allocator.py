"""``smg_jax.runtime.allocator``: the host allocator in use, the launcher and the restart.

The launcher and restart tests run real child interpreters; those that need
tcmalloc skip where it is not installed (``apt install libtcmalloc-minimal4``).
"""

import pathlib
import subprocess
import sys

import pytest

from smg_jax.runtime import allocator

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc/Linux only")


def _tcmalloc():
    try:
        return allocator.find_library("tcmalloc")
    except allocator.AllocatorError:
        return None


needs_tcmalloc = pytest.mark.skipif(_tcmalloc() is None, reason="tcmalloc is not installed")


def _child(code, env=None, *prefix):
    command = [*prefix, sys.executable, "-c", code]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


IN_USE = "from smg_jax.runtime import allocator; print(allocator.in_use())"


def test_environment_keeps_other_preloads_and_tunables():
    base = {
        "LD_PRELOAD": "/opt/libfoo.so /usr/lib/libtcmalloc_minimal.so.4",
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1:glibc.pthread.rseq=0",
        "PATH": "/bin",
    }
    system = allocator.environment("system", base)
    assert system["LD_PRELOAD"] == "/opt/libfoo.so"
    assert system["GLIBC_TUNABLES"] == "glibc.pthread.rseq=0"
    assert system["PATH"] == "/bin"
    assert base["LD_PRELOAD"].endswith("libtcmalloc_minimal.so.4")  # not modified in place
    hugepages = allocator.environment("hugepages", {"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})
    assert hugepages["GLIBC_TUNABLES"] == "glibc.pthread.rseq=0:glibc.malloc.hugetlb=1"
    assert "LD_PRELOAD" not in hugepages
    assert "GLIBC_TUNABLES" not in allocator.environment("system", {})


@needs_tcmalloc
def test_environment_puts_the_allocator_first_in_ld_preload():
    env = allocator.environment("tcmalloc", {"LD_PRELOAD": "/opt/libfoo.so"})
    first, rest = env["LD_PRELOAD"].split(" ", 1)
    assert allocator.allocator_of_path(first) == "tcmalloc" and rest == "/opt/libfoo.so"


def test_unknown_or_missing_allocators_are_explained():
    with pytest.raises(allocator.AllocatorError, match="Unknown allocator 'mimalloc'"):
        allocator.environment("mimalloc", {})
    with pytest.raises(allocator.AllocatorError, match="Unknown allocator"):
        allocator.find_library("system")
    if sys.platform.startswith("linux"):
        with pytest.raises(allocator.AllocatorError, match=r"libsmg_no_such_lib\.so.*apt install"):
            allocator.find_library("tcmalloc", candidates=["smg_no_such_lib"])


def test_allocator_of_path_recognises_the_libraries():
    assert allocator.allocator_of_path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2") == "jemalloc"
    assert allocator.allocator_of_path("libtcmalloc.so.4") == "tcmalloc"
    assert allocator.allocator_of_path("/lib/libc.so.6") is None


def test_minor_page_faults_count_fresh_memory():
    pages = 16_384  # 64 MiB of 4 KiB pages; a bytearray is not given huge pages (numpy's are)
    before = allocator.minor_page_faults()
    block = bytearray(pages * 4096)
    block[::4096] = b"\x01" * pages  # one byte written in each page
    after = allocator.minor_page_faults()
    assert sum(block) == pages
    # Where the kernel backs every large mapping with 2 MiB pages, 32 faults suffice.
    thp = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
    always = thp.exists() and "[always]" in thp.read_text()
    assert after - before > (16 if always else pages // 2)


@linux_only
def test_in_use_reads_the_child_environment():
    system = _child(IN_USE, allocator.environment("system"))
    hugepages = _child(IN_USE, allocator.environment("hugepages"))
    assert system.stdout.strip() == "system", system.stderr
    assert hugepages.stdout.strip() == "hugepages", hugepages.stderr


@linux_only
def test_launcher_runs_the_command_and_passes_its_exit_code():
    launcher = [sys.executable, "-m", "smg_jax.runtime.allocator", "hugepages", "--"]
    done = subprocess.run(
        [*launcher, sys.executable, "-c", IN_USE + "; raise SystemExit(3)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 3 and done.stdout.strip() == "hugepages", done.stderr
    missing = subprocess.run(
        [*launcher, "smg-no-such-program"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 127 and "cannot run smg-no-such-program" in missing.stderr
    empty = subprocess.run(launcher, capture_output=True, text=True, check=False)
    assert empty.returncode == 2 and "put it after --" in empty.stderr


@needs_tcmalloc
def test_launcher_and_restart_bring_in_tcmalloc():
    launched = _child(IN_USE, None, sys.executable, "-m", "smg_jax.runtime.allocator", "tcmalloc")
    assert launched.stdout.strip() == "tcmalloc", launched.stderr
    restart = (
        "from smg_jax.runtime import allocator; print('start', allocator.in_use(), flush=True); "
        "allocator.restart_with('tcmalloc'); print('now', allocator.in_use())"
    )
    restarted = _child(restart, allocator.environment("system"))
    assert restarted.stdout.split() == ["start", "system", "start", "tcmalloc", "now", "tcmalloc"]


def test_restart_returns_at_once_when_already_in_use():
    allocator.restart_with(allocator.in_use())  # would replace pytest if it restarted


def test_restart_that_did_not_take_effect_is_an_error(monkeypatch):
    current = allocator.in_use()
    other = "hugepages" if current != "hugepages" else "system"
    monkeypatch.setenv(allocator._RESTARTED, other)
    with pytest.raises(allocator.AllocatorError, match=f"still runs {current}"):
        allocator.restart_with(other)
