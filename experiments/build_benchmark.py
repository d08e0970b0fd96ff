"""Times the synthetic SMG generator and the TFDS build of every ``smg`` config.

Run::

    python experiments/build_benchmark.py                      # full size: 821,056 frames
    python experiments/build_benchmark.py --scale tiny --configs clips

It writes a synthetic raw tree into a temporary folder (``--workdir`` to choose
it, ``--keep`` to keep it), then builds each config into its own TFDS data
directory and reads random clips back through ``tfds.data_source``. Every step
runs in a fresh process, so its peak resident memory is its own. One JSON line
per step goes to stdout: ``seconds``, ``peak_rss_mb`` and the step's sizes.

All data here is SYNTHETIC (see ``tfds_smg.synthetic``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

CONFIGS = ("clips", "sequences", "emotion", "miga")


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1)


def _bytes_under(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def generate_step(out_dir: str, scale: str, seed: int) -> dict:
    """Writes the synthetic raw tree (with the MiGA files)."""
    from tfds_smg import synthetic

    began = time.perf_counter()
    root = synthetic.generate(out_dir, scale=scale, seed=seed, miga=True, overwrite=True)
    seconds = time.perf_counter() - began
    marker = synthetic.read_marker(root)
    return {
        "step": "generate",
        "scale": scale,
        "seconds": round(seconds, 2),
        "peak_rss_mb": _peak_rss_mb(),
        "frames": marker["total_frames"],
        "clips": marker["total_clips"],
        "zero_frames": marker["total_zero_frames"],
        "raw_mb": round(_bytes_under(root) / 2**20, 1),
    }


def build_step(config: str, manual_dir: str, data_dir: str) -> dict:
    """Builds ``smg/<config>`` (TFRecord + the ArrayRecord copy) and times random reads."""
    import numpy as np
    import tensorflow_datasets as tfds

    import tfds_smg  # noqa: F401  (registers the builder)

    tfds.disable_progress_bar()
    began = time.perf_counter()
    builder = tfds.builder(f"smg/{config}", data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    seconds = time.perf_counter() - began
    built = Path(builder.data_dir)
    result = {
        "step": "build",
        "config": config,
        "seconds": round(seconds, 2),
        "peak_rss_mb": _peak_rss_mb(),
        "examples": {name: split.num_examples for name, split in builder.info.splits.items()},
        "tfrecord_mb": round(_bytes_under(built, "*.tfrecord-*") / 2**20, 1),
        "array_record_mb": round(_bytes_under(built, "*.array_record-*") / 2**20, 1),
    }
    source = tfds.data_source(f"smg/{config}", split="train", data_dir=data_dir)
    indices = np.random.default_rng(0).integers(0, len(source), size=min(500, len(source)))
    began = time.perf_counter()
    for i in indices.tolist():
        source[i]
    result["random_reads_per_s"] = round(len(indices) / (time.perf_counter() - began), 1)
    return result


def _child(queue: multiprocessing.Queue, fn: Callable[..., dict], args: tuple) -> None:
    try:
        # TFDS prints progress lines to stdout; keep stdout for the JSON lines.
        with contextlib.redirect_stdout(sys.stderr):
            result = fn(*args)
    except Exception as err:  # report, then let the parent decide
        result = {"error": f"{type(err).__name__}: {err}"}
    queue.put(result)


def run_isolated(fn: Callable[..., dict], *args) -> dict:
    """Runs ``fn(*args)`` in a fresh (spawned) process and returns its result."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, fn, args))
    process.start()
    result = queue.get()
    process.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="full", choices=("tiny", "small", "full"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the raw tree and builds")
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {CONFIGS}")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="smg_build_benchmark_"))
    workdir.mkdir(parents=True, exist_ok=True)
    failed = False
    try:
        results = [run_isolated(generate_step, str(workdir / "raw"), args.scale, args.seed)]
        print(json.dumps(results[-1]), flush=True)
        for config in configs:
            if "error" in results[-1]:
                break
            data_dir = str(workdir / f"tfds_{config}")
            results.append(run_isolated(build_step, config, str(workdir / "raw"), data_dir))
            print(json.dumps(results[-1]), flush=True)
        failed = any("error" in r for r in results)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
