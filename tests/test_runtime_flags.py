"""The flags every experiments program shares: real runs of ``experiments.sweep`` and ``main``."""

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _sweep(tmp_path, *extra):
    command = [
        sys.executable, "-m", "experiments.sweep", "--config=experiments/configs/stgcn.py",
        "--sweep=model.partition=uniform,spatial", "--dry_run", f"--workdir={tmp_path / 'w'}",
        *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc huge pages: Linux")
def test_restart_keeps_the_command_line_and_reports_the_allocator(tmp_path):
    restarted = _sweep(tmp_path, "--host_allocator=hugepages")
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.count("to run") == 2  # the same flags reached the new process
    assert "Host memory allocator: hugepages" in restarted.stderr
    plain = _sweep(tmp_path)
    assert plain.returncode == 0 and "Host memory allocator: hugepages" not in plain.stderr


def test_unknown_allocator_is_refused_by_the_flag(tmp_path):
    refused = _sweep(tmp_path, "--host_allocator=mimalloc")
    assert refused.returncode != 0
    assert "host_allocator" in refused.stderr and "mimalloc" in refused.stderr


def test_compilation_cache_flag_is_an_alias_of_the_config_field(tmp_path):
    folder = tmp_path / "compiled"
    done = _sweep(tmp_path, f"--compilation_cache={folder}")
    assert done.returncode == 0, done.stderr
    assert f"Compilation cache: {folder}" in done.stderr and folder.is_dir()
    assert "Runtime profile: " in done.stderr and f"compilation_cache='{folder}'" in done.stderr


def test_main_help_lists_the_runtime_flags():
    done = subprocess.run(
        [sys.executable, "-m", "experiments.main", "--help"], cwd=REPO, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert "--host_allocator" in done.stdout and "--compilation_cache" in done.stdout
