"""What a sweep's run folders hold: each run's record, its failure, and the score fusions.

A *run record* is what one run wrote, read back: ``{"status": "finished",
"results": <results.json>}``, ``{"status": "failed", "error": <first line of
error.txt>}`` or ``{"status": "missing"}``. The report (``report.py``) reads
nothing but these records.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

from smg_jax import ensemble, metrics

log = logging.getLogger(__name__)

RunRecord = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RowRuns:
    """One table row's runs: a variant's (or a fusion's) record per seed.

    Attributes:
      name: the variant or fusion name.
      folder: its folder under the sweep's workdir.
      kind: ``"run"`` or ``"fusion"``.
      overrides: what it changes, in words (``model.strategy=uniform``).
      runs: ``{seed: run record}``.
    """

    name: str
    folder: str
    kind: str
    overrides: str
    runs: dict[int, RunRecord]


@dataclasses.dataclass(frozen=True)
class SweepRuns:
    """Every run record of a sweep and the words its table is titled with."""

    title: str
    description: str
    workdir: pathlib.Path
    seeds: list[int]
    baseline: str
    named_variants: bool  # variants named by a study (not generated from their overrides)
    rows: list[RowRuns]


def is_finished(run_dir: pathlib.Path) -> bool:
    """A run is finished once the loop has written its ``results.json`` (its last act)."""
    return (run_dir / "results.json").exists()


def record_failure(run_dir: pathlib.Path, err: BaseException) -> None:
    """Writes ``error.txt``: a one-line summary, then the traceback."""
    run_dir.mkdir(parents=True, exist_ok=True)
    message = (str(err).strip().splitlines() or [""])[0]
    summary = f"{type(err).__name__}: {message}"[:300]
    trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    (run_dir / "error.txt").write_text(f"{summary}\n\n{trace}")
    log.error("FAILED %s: %s", run_dir, summary)


def record_success(run_dir: pathlib.Path) -> None:
    """Removes an earlier attempt's ``error.txt``."""
    (run_dir / "error.txt").unlink(missing_ok=True)


def _error_line(run_dir: pathlib.Path) -> str:
    lines = (run_dir / "error.txt").read_text().splitlines()
    return lines[0] if lines else "unknown error"


def read_run(run_dir: pathlib.Path) -> RunRecord:
    """The record of the run in ``run_dir`` (see the module docstring)."""
    if is_finished(run_dir):
        return {"status": "finished", "results": json.loads((run_dir / "results.json").read_text())}
    if (run_dir / "error.txt").exists():
        return {"status": "failed", "error": _error_line(run_dir)}
    return {"status": "missing"}


def fuse_runs(
    names: Sequence[str],
    dirs: Sequence[pathlib.Path],
    weights: Sequence[float] | None,
    out: pathlib.Path,
    seed: int,
) -> RunRecord:
    """Fuses one seed's finished component runs into ``out``; returns the fusion's record.

    Writes ``out/fusion.json`` (the fused metrics) and ``out/test_logits.npz``
    (``logits`` ``(N, K)``, ``labels``, ``names``). A component that failed or
    is missing makes the fusion failed or missing, and writes nothing.
    """
    status = {n: read_run(d)["status"] for n, d in zip(names, dirs, strict=True)}
    if any(state != "finished" for state in status.values()):
        failed = [n for n, state in status.items() if state == "failed"]
        if failed:
            return {"status": "failed", "error": f"needs {failed} of seed {seed}, which failed"}
        return {"status": "missing"}
    try:
        fused = ensemble.fuse([ensemble.load_scores(d) for d in dirs], weights)
    except ensemble.EnsembleError as err:
        record_failure(out, err)
        return {"status": "failed", "error": f"EnsembleError: {err}"}
    parts = [json.loads((d / "results.json").read_text()) for d in dirs]
    results = {
        "fusion_of": [str(d) for d in dirs],
        "weights": fused["weights"],
        "final": fused["fusion"],
        "num_params": sum(int(p["num_params"]) for p in parts),
        "train_clips_per_second": None,
        "data": parts[0].get("data"),
        "synthetic": any(p.get("synthetic", False) for p in parts),
    }
    out.mkdir(parents=True, exist_ok=True)
    metrics.write_json(results, out / "fusion.json")
    np.savez(
        out / "test_logits.npz",
        logits=fused["fused_logits"],
        labels=fused["labels"],
        names=fused["names"],
    )
    record_success(out)
    return {"status": "finished", "results": results}
