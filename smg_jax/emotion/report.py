"""The files a run writes: results tables (Markdown + JSON), the confusion matrix, class weights.

Also ``collect``: one comparison table from several finished runs (methods
as rows, grouped by protocol), the table that tests the paper's thesis that
MGs carry the hidden state.
"""

from __future__ import annotations

import csv
import json
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from smg_jax import metrics as cls_metrics
from smg_jax.emotion import scores
from smg_jax.emotion.data import STATE_NAMES, EmotionError


def class_weights_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: each MG class's weight (mean ± std over folds), most influential first."""
    lines = [
        "| MG class | weight (log-odds per std) | leans |",
        "| --- | ---: | --- |",
    ]
    for row in rows:
        spread = "" if not np.isfinite(row["std"]) else f" ± {row['std']:.2f}"
        mean = round(row["mean"], 2) + 0.0  # no "-0.00"
        lines.append(f"| {row['class']} | {mean:+.2f}{spread} | {row['leans']} |")
    return "\n".join(lines)


def plot_class_weights(
    rows: Sequence[Mapping[str, Any]], path: pathlib.Path, title: str
) -> pathlib.Path:
    """Horizontal bars of the class weights (error bars: std over folds), stressed to the right."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ordered = list(reversed(rows))  # most influential on top
    means = np.asarray([r["mean"] for r in ordered])
    stds = np.asarray([r["std"] if np.isfinite(r["std"]) else 0.0 for r in ordered])
    colors = ["tab:red" if m > 0 else "tab:blue" for m in means]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(ordered) + 1.5))
    ax.barh(range(len(ordered)), means, xerr=stds, color=colors, alpha=0.8, capsize=2)
    ax.set_yticks(range(len(ordered)), [r["class"] for r in ordered])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("weight: log-odds of stressed per std (red: stressed, blue: relaxed)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_predictions_csv(path: pathlib.Path, rows: Iterable[Mapping[str, Any]]) -> pathlib.Path:
    """One line per instance: its fold, true and predicted state, probability of stressed."""
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["instance"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_confusion(confusion: Sequence[Sequence[int]], path: pathlib.Path, title: str):
    report = scores.confusion_report(confusion, STATE_NAMES)
    return cls_metrics.plot_confusion_matrix(report, path, title=title)


# ---------------------------------------------------------------------------
# Comparing runs.
# ---------------------------------------------------------------------------


def collect(workdirs: Sequence[str | pathlib.Path]) -> tuple[str, dict[str, Any]]:
    """A comparison of finished runs: ``(markdown, json_ready)``.

    Reads each ``<workdir>/results.json``; groups the methods by protocol;
    adds each protocol's majority-class baseline once. Refuses to mix
    synthetic and real runs in one table.
    """
    runs = []
    for workdir in workdirs:
        path = pathlib.Path(workdir) / "results.json"
        if not path.is_file():
            raise EmotionError(f"{path} is missing: run the emotion command in {workdir} first.")
        runs.append(json.loads(path.read_text()))
    if not runs:
        raise EmotionError("collect: name at least one finished run's workdir.")
    kinds = {bool(r["synthetic"]) for r in runs}
    if len(kinds) > 1:
        raise EmotionError("collect: some runs are on synthetic data and some on SMG; split them.")
    synthetic = kinds.pop()
    by_protocol: dict[str, dict[str, Any]] = {}
    for workdir, run in zip(workdirs, runs, strict=True):
        table = by_protocol.setdefault(run["protocol"]["description"], {})
        label = run["method"]
        if label in table:  # the same method twice (e.g. other hyperparameters): say which run
            label = f"{label} [{pathlib.Path(workdir).name}]"
        table[label] = {
            "summary": run["summary"],
            "pooled": run["pooled"],
            "num_folds": len(run["folds"]),
        }
        baseline = run["majority_baseline"]
        table.setdefault(
            "majority class (chance)",
            {
                "summary": baseline["summary"],
                "pooled": baseline["pooled"],
                "num_folds": len(run["folds"]),
            },
        )
    data = sorted({r["data"] for r in runs})
    parts = [f"## Emotional state recognition, relaxed vs stressed ({', '.join(data)})"]
    if synthetic:
        parts.append("**SYNTHETIC data: these are not SMG results.**")
    for protocol, rows in by_protocol.items():
        ordered = {k: v for k, v in rows.items() if k != "majority class (chance)"}
        ordered["majority class (chance)"] = rows["majority class (chance)"]
        parts += [f"### {protocol}", scores.method_table(ordered)]
    parts.append(
        "Mean ± std over folds (std with ddof=1); pooled: every instance's out-of-fold "
        "prediction at once, p: one-sided exact binomial test of the pooled accuracy against 50 %."
    )
    return "\n\n".join(parts) + "\n", {"synthetic": synthetic, "data": data, "runs": by_protocol}
