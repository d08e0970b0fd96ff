"""Multi-stream fusion: a weighted sum of saved test logits, as the published 2s/4s models do.

Each training run writes ``test_logits.npz`` (``logits`` ``(N, K)``, ``labels``
``(N,)``, ``names`` ``(N,)``). Fusion checks that all runs scored the same
examples in the same order, then reports every stream and the weighted sum.
Published weights: 2-stream (joint + bone) 1:1; 4-stream (joint, bone,
joint motion, bone motion) 0.6 / 0.6 / 0.4 / 0.4.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from smg_jax import metrics

FUSION_WEIGHTS = {2: (1.0, 1.0), 4: (0.6, 0.6, 0.4, 0.4)}


class EnsembleError(ValueError):
    """The runs cannot be fused (different examples, a missing file, bad weights)."""


def load_scores(run: str | pathlib.Path) -> dict[str, Any]:
    """Reads ``<run>/test_logits.npz`` (or the ``.npz`` file itself) and the run's label."""
    path = pathlib.Path(run)
    file = path / "test_logits.npz" if path.is_dir() else path
    if not file.exists():
        raise EnsembleError(
            f"{file} does not exist: train the run first (experiments.main writes it at the end)."
        )
    with np.load(file, allow_pickle=False) as archive:
        scores = {k: archive[k] for k in archive.files}
    results = file.parent / "results.json"
    name = file.parent.name
    if results.exists():
        info = json.loads(results.read_text())
        name = f"{info.get('model', name)} {info.get('stream', '')}".strip()
    scores["run_name"] = name
    scores["path"] = str(file)
    return scores


def fuse(runs: Sequence[dict[str, Any]], weights: Sequence[float] | None = None) -> dict[str, Any]:
    """Weighted sum of the runs' logits and a report for each run and for the fusion.

    Args:
      runs: outputs of ``load_scores``.
      weights: one per run; default ``FUSION_WEIGHTS[len(runs)]`` or equal weights.

    Returns:
      ``{"streams": {name: report}, "fusion": report, "weights": [...],
      "fused_logits": (N, K), "labels": (N,), "names": (N,)}``.
    """
    if not runs:
        raise EnsembleError("No runs to fuse.")
    if weights is None:
        weights = FUSION_WEIGHTS.get(len(runs), (1.0,) * len(runs))
    if len(weights) != len(runs):
        raise EnsembleError(f"{len(weights)} weights given for {len(runs)} runs.")
    reference = runs[0]
    for run in runs[1:]:
        if run["logits"].shape != reference["logits"].shape:
            raise EnsembleError(
                f"{run['path']} has logits {run['logits'].shape}, {reference['path']} has "
                f"{reference['logits'].shape}: the runs did not score the same test set."
            )
        if not np.array_equal(run["names"], reference["names"]) or not np.array_equal(
            run["labels"], reference["labels"]
        ):
            raise EnsembleError(
                f"{run['path']} and {reference['path']} list different test examples or "
                "labels: fuse only runs evaluated on the same split of the same dataset."
            )
    class_names = [str(c) for c in reference.get("class_names", [])] or None
    streams: dict[str, Any] = {}
    for index, run in enumerate(runs):
        key = run["run_name"] if run["run_name"] not in streams else f"{run['run_name']} #{index}"
        streams[key] = metrics.classification_report(run["logits"], run["labels"], class_names)
    fused = sum(
        float(w) * run["logits"].astype(np.float64) for w, run in zip(weights, runs, strict=True)
    )
    fusion = metrics.classification_report(fused, reference["labels"], class_names)
    return {
        "streams": streams,
        "fusion": fusion,
        "weights": [float(w) for w in weights],
        "fused_logits": fused,
        "labels": reference["labels"],
        "names": reference["names"],
    }
