"""Classification metrics and reports for the MG classification benchmark (NumPy only).

SMG's test set is long-tailed (two classes are 71 % of it), so every report
gives mean class accuracy beside top-1 and top-5. Metrics are computed from
the full ``(N, K)`` score matrix of the test set so that each example counts
exactly once, whatever the batch size, padding or number of hosts.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np


def _check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(
            f"scores must be (N, K) and labels (N,); got {scores.shape} and {labels.shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {scores.shape[1]}); found {labels.min()}..{labels.max()}."
        )
    if not np.all(np.isfinite(scores)):
        bad = np.flatnonzero(~np.isfinite(scores).all(axis=1))
        raise ValueError(
            f"{bad.size} example(s) have non-finite scores (first rows: {bad[:5].tolist()}); "
            "the model diverged or the input held NaNs."
        )
    return scores, labels


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of examples whose label is among the ``k`` highest scores.

    Ties are broken towards the lower class index (stable sort), as
    ``torch.topk`` does on CPU for the published evaluation code.
    """
    scores, labels = _check_scores(scores, labels)
    if labels.size == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return matrix


def classification_report(
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Top-1, top-5, mean class accuracy, per-class accuracy and the confusion matrix.

    Args:
      scores: ``(N, K)`` logits or probabilities, one row per test example.
      labels: ``(N,)`` true classes in ``[0, K)``.
      class_names: ``K`` names; defaults to ``"0" .. "K-1"``.

    Returns:
      A JSON-ready dict. ``mean_class_accuracy`` averages over the classes
      present in ``labels`` (balanced accuracy; SMG's official test set has no
      example of two classes); ``mean_class_accuracy_all`` divides by all
      ``K`` classes, counting absent ones as 0 (the convention under which the
      majority class scores 1/17 on SMG). ``per_class_accuracy`` is ``None``
      for absent classes.
    """
    scores, labels = _check_scores(scores, labels)
    num_classes = scores.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names given for {num_classes} classes.")
    predictions = np.argmax(scores, axis=1)
    confusion = confusion_matrix(predictions, labels, num_classes)
    support = confusion.sum(axis=1)
    correct = np.diag(confusion)
    per_class = [
        float(correct[c] / support[c]) if support[c] > 0 else None for c in range(num_classes)
    ]
    present = [acc for acc in per_class if acc is not None]
    return {
        "num_examples": int(labels.size),
        "top1": top_k_accuracy(scores, labels, 1),
        "top5": top_k_accuracy(scores, labels, 5),
        "mean_class_accuracy": float(np.mean(present)) if present else float("nan"),
        "mean_class_accuracy_all": float(np.sum(present) / num_classes),
        "classes_present": len(present),
        "class_names": names,
        "support": support.tolist(),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def majority_baseline(
    train_labels: np.ndarray, test_labels: np.ndarray, num_classes: int
) -> dict[str, Any]:
    """The classifier that always answers the most frequent training class.

    Its top-5 answers the five most frequent training classes. On SMG's
    official split this scores 39.8 % top-1, and a mean class accuracy of
    1/15 over the 15 classes present in the test set (1/17 over all).
    """
    counts = np.bincount(np.asarray(train_labels, np.int64), minlength=num_classes)
    # Higher score for more frequent classes; ties go to the lower index.
    scores = np.tile(counts.astype(np.float64), (len(test_labels), 1))
    return classification_report(scores, np.asarray(test_labels))


def format_report_table(
    rows: dict[str, dict[str, Any]], title: str | None = None, note: str | None = None
) -> str:
    """A Markdown table of top-1 / top-5 / mean class accuracy (percent), one row per entry."""
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += [
        "| method | top-1 (%) | top-5 (%) | mean class acc. (%) | examples |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, report in rows.items():
        lines.append(
            f"| {name} | {100 * report['top1']:.2f} | {100 * report['top5']:.2f} | "
            f"{100 * report['mean_class_accuracy']:.2f} | {report['num_examples']} |"
        )
    if note:
        lines += ["", note]
    return "\n".join(lines)


def format_per_class_table(report: dict[str, Any]) -> str:
    """A Markdown table with each class's support and accuracy."""
    lines = ["| class | support | accuracy (%) |", "| --- | ---: | ---: |"]
    for name, support, accuracy in zip(
        report["class_names"], report["support"], report["per_class_accuracy"], strict=True
    ):
        shown = "n/a" if accuracy is None else f"{100 * accuracy:.1f}"
        lines.append(f"| {name} | {support} | {shown} |")
    return "\n".join(lines)


def plot_confusion_matrix(
    report: dict[str, Any], path: str | pathlib.Path, title: str = "Confusion matrix"
) -> pathlib.Path:
    """Writes the row-normalised confusion matrix (counts annotated) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    confusion = np.asarray(report["confusion_matrix"], dtype=np.float64)
    names = report["class_names"]
    row_sums = confusion.sum(axis=1, keepdims=True)
    normalized = np.divide(confusion, row_sums, out=np.zeros_like(confusion), where=row_sums > 0)
    size = max(5.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(
        range(len(names)), [f"{n} ({int(s)})" for n, s in zip(names, row_sums[:, 0], strict=True)]
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (support)")
    ax.set_title(title)
    for (row, col), count in np.ndenumerate(confusion):
        if count:
            color = "white" if normalized[row, col] > 0.5 else "black"
            ax.text(col, row, int(count), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_json(data: dict[str, Any], path: str | pathlib.Path) -> pathlib.Path:
    """Writes ``data`` as indented JSON (atomically, so a killed run leaves no half file)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path
