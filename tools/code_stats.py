"""Function-length and module-size figures of the package code.

    python tools/code_stats.py            # summary + the longest functions
    python tools/code_stats.py --check    # exit 1 past the limits below

A function's length is its source lines from ``def`` to its last line
(docstring and decorators' own lines excluded from neither), nested functions
counted on their own as well. Package code is ``smg_jax/``, ``tfds_smg/`` and
``experiments/``; tests are not counted.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIRS = ("smg_jax", "tfds_smg", "experiments")
MAX_FUNCTION_LINES = 80
MAX_MEDIAN_FUNCTION_LINES = 12
MAX_MODULE_LINES = 600


@dataclass(frozen=True)
class Function:
    path: str
    name: str
    line: int
    length: int


def source_files(root: Path) -> list[Path]:
    """Every ``.py`` file under the package folders of ``root``, sorted."""
    return sorted(p for d in PACKAGE_DIRS for p in (root / d).rglob("*.py"))


def functions(path: Path, root: Path) -> Iterator[Function]:
    """Every function and method defined in ``path``, nested ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            yield Function(str(path.relative_to(root)), node.name, node.lineno, length)


def module_lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def violations(root: Path) -> list[str]:
    """The limits that the package code under ``root`` breaks, one line each."""
    files = source_files(root)
    found = [f for p in files for f in functions(p, root)]
    lines = []
    for f in found:
        if f.length > MAX_FUNCTION_LINES:
            lines.append(
                f"{f.path}:{f.line} {f.name} has {f.length} lines (max {MAX_FUNCTION_LINES})"
            )
    for p in files:
        n = module_lines(p)
        if n > MAX_MODULE_LINES:
            lines.append(f"{p.relative_to(root)} has {n} lines (max {MAX_MODULE_LINES})")
    median = statistics.median(f.length for f in found)
    if median > MAX_MEDIAN_FUNCTION_LINES:
        lines.append(f"median function length {median} lines (max {MAX_MEDIAN_FUNCTION_LINES})")
    return lines


def report(root: Path, top: int) -> str:
    files = source_files(root)
    found = sorted((f for p in files for f in functions(p, root)), key=lambda f: -f.length)
    lengths = [f.length for f in found]
    sizes = sorted(((module_lines(p), str(p.relative_to(root))) for p in files), reverse=True)
    largest, largest_path = sizes[0]
    out = [
        f"modules: {len(files)}, lines: {sum(n for n, _ in sizes)}, "
        f"largest: {largest} ({largest_path})",
        f"modules over {MAX_MODULE_LINES} lines: {sum(n > MAX_MODULE_LINES for n, _ in sizes)}",
        f"functions: {len(found)}, median length: {statistics.median(lengths)}, "
        f"90th percentile: {statistics.quantiles(lengths, n=10)[-1]:.0f}, longest: {lengths[0]}",
        f"functions over {MAX_FUNCTION_LINES} lines: "
        f"{sum(n > MAX_FUNCTION_LINES for n in lengths)}",
        "",
        f"longest {top} functions:",
    ]
    out += [f"  {f.length:4d}  {f.path}:{f.line} {f.name}" for f in found[:top]]
    out += ["", f"largest {top} modules:"]
    out += [f"  {n:4d}  {p}" for n, p in sizes[:top]]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--top", type=int, default=15, help="how many of the longest to list")
    parser.add_argument("--check", action="store_true", help="exit 1 when a limit is broken")
    args = parser.parse_args(argv)
    print(report(args.root, args.top))
    if args.check:
        broken = violations(args.root)
        for line in broken:
            print("LIMIT:", line, file=sys.stderr)
        return 1 if broken else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
