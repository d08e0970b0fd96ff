"""Relaxed-vs-stressed metrics per fold, their mean and spread, and the Markdown tables.

Per fold: accuracy, balanced accuracy (the mean of the two states' recalls)
and macro F1 (the mean of the two states' F1). Over folds: the mean and the
sample standard deviation (``ddof=1``; undefined for one fold). Beside them,
``pooled``: the same metrics over every instance's out-of-fold prediction at
once (each instance is tested exactly once), which is steadier than a mean
over small folds, with a one-sided exact binomial test of its accuracy
against the 50 % of guessing (instances of one participant are not
independent, so read the p-value as a guide, not a proof).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from smg_jax import metrics as cls_metrics

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
METRIC_TITLES = {
    "accuracy": "accuracy (%)",
    "balanced_accuracy": "balanced acc. (%)",
    "macro_f1": "macro F1 (%)",
}


def binary_scores(predictions: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1 and the confusion matrix of 0/1 predictions.

    Args:
      predictions, labels: ``(N,)`` in ``{0, 1}`` (1 = stressed).

    Returns:
      A JSON-ready dict. A state absent from ``labels`` is left out of the
      balanced accuracy; a state neither present nor predicted is left out of
      the macro F1 (its F1 is undefined); ``nan`` when nothing is left.
    """
    predictions = np.asarray(predictions, np.int64)
    labels = np.asarray(labels, np.int64)
    if predictions.shape != labels.shape or predictions.ndim != 1:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} must be (N,).")
    confusion = cls_metrics.confusion_matrix(predictions, labels, 2)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    recalls, f1s = [], []
    for c in range(2):
        tp = confusion[c, c]
        if support[c]:
            recalls.append(tp / support[c])
        if support[c] or predicted[c]:
            f1s.append(2 * tp / (support[c] + predicted[c]))
    n = int(labels.size)
    return {
        "num_instances": n,
        "accuracy": float(np.trace(confusion) / n) if n else float("nan"),
        "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "correct": int(np.trace(confusion)),
        "confusion_matrix": confusion.tolist(),
    }


def binomial_p_value(correct: int, total: int, chance: float = 0.5) -> float:
    """One-sided exact ``P[X >= correct]`` for ``X ~ Binomial(total, chance)``."""
    if total <= 0:
        return float("nan")
    tail = sum(
        math.comb(total, k) * chance**k * (1 - chance) ** (total - k)
        for k in range(correct, total + 1)
    )
    return float(min(1.0, tail))


def aggregate(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std"}}`` over folds (``std`` with ``ddof=1``; ``nan`` for one fold)."""
    out = {}
    for metric in METRICS:
        values = np.asarray([fold[metric] for fold in per_fold], np.float64)
        values = values[np.isfinite(values)]
        out[metric] = {
            "mean": float(values.mean()) if values.size else float("nan"),
            "std": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
        }
    return out


def pooled(predictions: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``binary_scores`` over all out-of-fold predictions, plus the binomial p-value."""
    scores = binary_scores(predictions, labels)
    scores["p_value_vs_chance"] = binomial_p_value(scores["correct"], scores["num_instances"])
    return scores


def majority_predictions(train_labels: np.ndarray, num_test: int) -> np.ndarray:
    """The training majority state for every test instance (ties: relaxed, state 0)."""
    counts = np.bincount(np.asarray(train_labels, np.int64), minlength=2)
    return np.full(num_test, int(np.argmax(counts)), np.int64)


# ---------------------------------------------------------------------------
# Tables.
# ---------------------------------------------------------------------------


def percent(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{100 * value:.1f}"


def mean_std(summary: Mapping[str, float]) -> str:
    """``"71.3 ± 4.2"`` (percent), ``"71.3"`` when the spread is undefined."""
    mean, std = summary["mean"], summary["std"]
    return percent(mean) if not np.isfinite(std) else f"{percent(mean)} ± {100 * std:.1f}"


def fold_table(per_fold: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    """One row per fold (its test participants and counts), then the mean ± std row."""
    lines = [
        "| fold | test participants | instances | "
        + " | ".join(METRIC_TITLES[m] for m in METRICS)
        + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in METRICS) + " |",
    ]
    for row in per_fold:
        subjects = ", ".join(str(s) for s in row["test_subjects"])
        cells = " | ".join(percent(row[m]) for m in METRICS)
        lines.append(f"| {row['fold']} | {subjects} | {row['num_instances']} | {cells} |")
    cells = " | ".join(mean_std(summary[m]) for m in METRICS)
    lines.append(f"| **mean ± std** | | | {cells} |")
    return "\n".join(lines)


def method_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Methods side by side: mean ± std over folds, pooled accuracy and its p-value.

    ``rows`` maps a method's label to ``{"summary": aggregate(...), "pooled":
    pooled(...), "num_folds": K}``.
    """
    lines = [
        "| method | folds | "
        + " | ".join(METRIC_TITLES[m] for m in METRICS)
        + " | pooled acc. (%) | p (vs 50 %) |",
        "| --- | ---: | " + " | ".join("---:" for _ in METRICS) + " | ---: | ---: |",
    ]
    for name, row in rows.items():
        cells = " | ".join(mean_std(row["summary"][m]) for m in METRICS)
        pool = row["pooled"]
        p = pool.get("p_value_vs_chance", float("nan"))
        shown_p = "-" if not np.isfinite(p) else f"{p:.2g}"
        lines.append(
            f"| {name} | {row['num_folds']} | {cells} | {percent(pool['accuracy'])} | {shown_p} |"
        )
    return "\n".join(lines)


def confusion_report(confusion: Sequence[Sequence[int]], state_names: Sequence[str]) -> dict:
    """A dict that ``smg_jax.metrics.plot_confusion_matrix`` draws."""
    return {"confusion_matrix": [list(r) for r in confusion], "class_names": list(state_names)}
