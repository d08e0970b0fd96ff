"""Ours against the authors' PyTorch models, measured side by side: one Markdown table.

    python -m experiments.speed_table --torch-python ~/torchenv/bin/python \\
        --sources ~/src --models all --batch 16 --frames 60 --threads 2

For each model it runs ``experiments.benchmark`` (ours) and
``experiments/torch_reference_benchmark.py`` (theirs, in ``--torch-python``,
which must have PyTorch) one right after the other, ``--repeats`` times, and
keeps the best of each, so that both see the same machine load. ``--sources``
holds one checkout per model, named as below (or pass ``--source
model=path``):

    st-gcn  2s-AGCN  GCN-NAS  CTR-GCN  Shift-GCN  MS-G3D

Rows: training and inference clips/s for both and their ratio (> 1: ours is
faster). The raw JSON lines go to ``--jsonl`` if given. ``--override
name=value`` changes a field of our models and ``--kwarg name=value`` a
constructor argument of theirs (e.g. ``--override dropout=0.0 --kwarg
dropout=0.0`` for ST-GCN without dropout on both sides).

Both sides run as programs of their own, one process per measurement, under
the same host memory allocator: ``--allocator tcmalloc`` (or ``jemalloc``,
``hugepages``, ``system``) preloads it into both (``smg_jax.runtime.allocator``);
without it both inherit this process's environment.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
from typing import Any

from experiments import torch_reference_benchmark
from smg_jax.runtime import allocator

REPOSITORY_DIRS = {
    "stgcn": "st-gcn",
    "agcn": "2s-AGCN",
    "gcnnas": "GCN-NAS",
    "ctrgcn": "CTR-GCN",
    "shiftgcn": "Shift-GCN",
    "msg3d": "MS-G3D",
}
TORCH_SCRIPT = pathlib.Path(__file__).with_name("torch_reference_benchmark.py")


def torch_row(
    python: str,
    model: str,
    source: pathlib.Path,
    batch: int,
    frames: int,
    steps: int,
    threads: int,
    kwargs: list[str] = (),
    device: str = "cpu",
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One JSON row from the PyTorch reference, run in its own interpreter.

    ``kwargs``: ``name=value`` constructor arguments for the authors' model;
    ``env``: its environment (default: this process's).
    """
    command = [
        python,
        str(TORCH_SCRIPT),
        f"--model={model}",
        f"--source={source}",
        f"--batch={batch}",
        f"--frames={frames}",
        f"--steps={steps}",
        f"--threads={threads}",
        f"--device={device}",
        *(f"--kwarg={item}" for item in kwargs),
    ]
    return _last_json_line(command, env)


def ours_row(
    model: str,
    batch: int,
    frames: int,
    steps: int,
    overrides: list[str] = (),
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One JSON row from ``experiments.benchmark``, run in a fresh interpreter like theirs.

    ``overrides``: ``name=value`` fields of our model; ``env``: its environment.
    """
    command = [
        sys.executable,
        "-m",
        "experiments.benchmark",
        f"--models={model}",
        f"--batch={batch}",
        f"--frames={frames}",
        f"--steps={steps}",
        *(f"--override={item}" for item in overrides),
    ]
    return _last_json_line(command, env, cwd=pathlib.Path(__file__).resolve().parents[1])


def _last_json_line(
    command: list[str], env: dict[str, str] | None, cwd: pathlib.Path | None = None
) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=cwd)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> str:
    """The table: one row per model, ours vs theirs (``None``: their run failed)."""
    lines = [
        "| model | train clips/s, ours | PyTorch | ratio | inference clips/s, ours | PyTorch "
        "| ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ours, theirs in rows:
        if theirs is None:
            lines.append(
                f"| {ours['model']} | {ours['train_clips_per_s']:.1f} | failed | | "
                f"{ours['infer_clips_per_s']:.1f} | failed | |"
            )
            continue
        train = ours["train_clips_per_s"] / theirs["train_clips_per_s"]
        infer = ours["infer_clips_per_s"] / theirs["infer_clips_per_s"]
        lines.append(
            f"| {ours['model']} | {ours['train_clips_per_s']:.1f} | "
            f"{theirs['train_clips_per_s']:.1f} | {train:.2f}x | {ours['infer_clips_per_s']:.1f} | "
            f"{theirs['infer_clips_per_s']:.1f} | {infer:.2f}x |"
        )
    return "\n".join(lines)


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not rows:
        return None
    best = dict(rows[0])
    for key in ("train_clips_per_s", "infer_clips_per_s"):
        best[key] = max(row[key] for row in rows)
    return best


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", required=True, help="an interpreter with PyTorch")
    parser.add_argument("--sources", type=pathlib.Path, help="folder of repository checkouts")
    parser.add_argument("--source", action="append", default=[], help="model=path (repeatable)")
    parser.add_argument("--models", default="all")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="alternating pairs; best kept")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
    parser.add_argument(
        "--torch-device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where PyTorch runs; ours runs on JAX's default backend",
    )
    parser.add_argument(
        "--allocator",
        choices=allocator.CHOICES,
        help="host memory allocator for both sides (default: as this process has it)",
    )
    parser.add_argument("--jsonl", type=pathlib.Path, help="also write every raw row here")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="a PyTorch run that fails is reported in its row, and the table goes on",
    )
    parser.add_argument(
        "--override", action="append", default=[], help="our model field name=value (repeatable)"
    )
    parser.add_argument(
        "--kwarg", action="append", default=[], help="their constructor name=value (repeatable)"
    )
    return parser


def _sources(args: argparse.Namespace, names: list[str]) -> dict[str, pathlib.Path]:
    """Each model's checkout of its authors' repository, from ``--sources`` and ``--source``."""
    sources = {}
    for name in names:
        if name not in REPOSITORY_DIRS:
            raise SystemExit(f"Unknown model {name!r}; choose from {sorted(REPOSITORY_DIRS)}.")
        if args.sources is not None:
            sources[name] = args.sources / REPOSITORY_DIRS[name]
    for item in args.source:
        name, _, path = item.partition("=")
        sources[name] = pathlib.Path(path)
    missing = [name for name in names if name not in sources]
    if missing:
        raise SystemExit(f"No checkout for {missing}: pass --sources or --source model=path.")
    return sources


def _pairs(args: argparse.Namespace, name: str, source: pathlib.Path,
           env: dict[str, str] | None) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """``--repeats`` alternating runs of ours and theirs for one model: (ours, theirs) rows."""
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(ours_row(name, args.batch, args.frames, args.steps, args.override, env))
        try:
            row = torch_row(
                args.torch_python, name, source.expanduser().resolve(), args.batch, args.frames,
                args.steps, args.threads, args.kwarg, args.torch_device, env,
            )  # fmt: skip
        except SystemExit as failure:
            if not args.keep_going:
                raise
            print(f"PyTorch {name}: {failure}", file=sys.stderr)
            continue
        theirs.append(row)
        print(json.dumps(ours[-1]), json.dumps(row), sep="\n", file=sys.stderr)
    return ours, theirs


def _heading(table: list[tuple[dict[str, Any], dict[str, Any] | None]],
             args: argparse.Namespace) -> str:  # fmt: skip
    """The line above the table: devices, convolutions, sizes and allocators of both sides."""
    ours_device = table[0][0].get("device")
    theirs_device = next((t.get("device", "cpu") for _, t in table if t), "cpu")
    ours_allocator = table[0][0].get("host_allocator", "unknown")
    theirs_allocator = next((t.get("host_allocator") for _, t in table if t), ours_allocator)
    allocators = (
        f"host allocator (both sides): {ours_allocator}"
        if ours_allocator == theirs_allocator
        else f"host allocator: ours {ours_allocator}, PyTorch {theirs_allocator}"
    )
    convolutions = table[0][0].get("temporal_convolutions", "unknown")
    return (
        f"ours: JAX on {ours_device} (temporal convolutions: {convolutions}); PyTorch on "
        f"{theirs_device}; batch {args.batch}, {args.frames} frames, float32; {allocators}\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch_reference_benchmark.parse_assignments(args.override, "--override")  # checks them
    try:
        env = None if args.allocator is None else allocator.environment(args.allocator)
    except allocator.AllocatorError as error:
        raise SystemExit(f"error: {error}") from None
    names = list(REPOSITORY_DIRS) if args.models == "all" else args.models.split(",")
    sources = _sources(args, names)
    table, raw = [], []
    for name in names:
        ours, theirs = _pairs(args, name, sources[name], env)
        raw += ours + theirs
        table.append((_best(ours), _best(theirs)))
    print(_heading(table, args))
    print(markdown(table))
    if args.jsonl is not None:
        args.jsonl.write_text("".join(json.dumps(row) + "\n" for row in raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
