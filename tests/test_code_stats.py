"""The package code stays within the size limits that ``tools/code_stats.py`` checks."""

from __future__ import annotations

import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools"))

import code_stats  # noqa: E402


def test_the_package_code_is_within_the_limits():
    assert code_stats.violations(REPO_ROOT) == []


def _tree(tmp_path: pathlib.Path, body_lines: int, module_padding: int = 0) -> pathlib.Path:
    package = tmp_path / "smg_jax"
    package.mkdir(parents=True)
    body = "".join(f"    x{i} = {i}\n" for i in range(body_lines))
    short = "".join(f"def f{i}():\n    return {i}\n\n\n" for i in range(module_padding))
    (package / "m.py").write_text(f"def long_one():\n{body}\n\n{short}")
    return tmp_path


def test_a_function_past_80_lines_is_reported(tmp_path):
    root = _tree(tmp_path, body_lines=80, module_padding=5)
    found = code_stats.violations(root)
    assert any("smg_jax/m.py:1 long_one has 81 lines" in line for line in found), found


def test_a_function_of_80_lines_and_short_neighbours_pass(tmp_path):
    assert code_stats.violations(_tree(tmp_path, body_lines=79, module_padding=5)) == []


def test_a_module_past_600_lines_and_a_long_median_are_reported(tmp_path):
    found = code_stats.violations(_tree(tmp_path, body_lines=20, module_padding=150))
    assert any("smg_jax/m.py has" in line and "max 600" in line for line in found), found
    found = code_stats.violations(_tree(tmp_path / "b", body_lines=20))
    assert any(line.startswith("median function length 21") for line in found), found
