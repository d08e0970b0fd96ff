"""Classification metrics on hand-made scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smg_jax import metrics

SCORES = np.array(
    [
        [0.9, 0.1, 0.0, 0.0],  # true 0, predicted 0
        [0.3, 0.2, 0.7, 0.0],  # true 1, predicted 2, label at rank 3
        [0.0, 0.1, 0.8, 0.1],  # true 2, predicted 2
        [0.5, 0.4, 0.1, 0.0],  # true 1, predicted 0, label rank 2
    ]
)
LABELS = np.array([0, 1, 2, 1])


def test_top_k():
    assert metrics.top_k_accuracy(SCORES, LABELS, 1) == pytest.approx(0.5)
    assert metrics.top_k_accuracy(SCORES, LABELS, 2) == pytest.approx(0.75)
    assert metrics.top_k_accuracy(SCORES, LABELS, 3) == pytest.approx(1.0)
    assert metrics.top_k_accuracy(SCORES, LABELS, 10) == pytest.approx(1.0)


def test_ties_go_to_the_lower_index():
    scores = np.zeros((2, 3))
    assert metrics.top_k_accuracy(scores, np.array([0, 1]), 1) == pytest.approx(0.5)


def test_report_per_class_and_confusion():
    report = metrics.classification_report(SCORES, LABELS, ["a", "b", "c", "d"])
    assert report["num_examples"] == 4
    assert report["per_class_accuracy"] == [1.0, 0.0, 1.0, None]
    assert report["mean_class_accuracy"] == pytest.approx(2 / 3)
    assert report["mean_class_accuracy_all"] == pytest.approx(2 / 4)
    assert report["classes_present"] == 3
    assert report["confusion_matrix"] == [[1, 0, 0, 0], [1, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    json.dumps(report)  # JSON-ready


def test_majority_baseline_on_smg_test_distribution():
    # The official test set's per-class counts (../shared/smg/README.md).
    counts = [13, 3, 15, 2, 49, 1, 3, 191, 243, 34, 8, 30, 4, 5, 0, 0, 9]
    test_labels = np.repeat(np.arange(17), counts)
    assert test_labels.size == 610
    train_labels = np.repeat(np.arange(17), [c + 1 for c in counts])  # class 8 most frequent
    report = metrics.majority_baseline(train_labels, test_labels, 17)
    assert report["top1"] == pytest.approx(243 / 610)  # 39.8 %
    assert round(100 * report["top1"], 1) == 39.8
    assert report["mean_class_accuracy"] == pytest.approx(1 / 15)
    assert report["mean_class_accuracy_all"] == pytest.approx(1 / 17)
    top5 = (243 + 191 + 49 + 34 + 30) / 610
    assert report["top5"] == pytest.approx(top5)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        metrics.classification_report(SCORES, np.array([0, 1, 2, 4]))
    bad = SCORES.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite scores \(first rows: \[2\]\)"):
        metrics.classification_report(bad, LABELS)
    with pytest.raises(ValueError, match="class names"):
        metrics.classification_report(SCORES, LABELS, ["a"])


def test_tables_plot_and_json(tmp_path):
    report = metrics.classification_report(SCORES, LABELS)
    table = metrics.format_report_table({"model": report}, title="t", note="synthetic")
    assert "| model | 50.00 | 100.00 | 66.67 | 4 |" in table
    assert "| 3 | 0 | n/a |" in metrics.format_per_class_table(report)
    png = metrics.plot_confusion_matrix(report, tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = metrics.write_json(report, tmp_path / "r.json")
    assert json.loads(path.read_text())["top1"] == 0.5
