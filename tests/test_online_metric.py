"""The online metric on hand-made cases: IoU, both matching rules, pooling, errors, reports."""

from __future__ import annotations

import itertools
import random

import pytest

from smg_jax.data.recordings import RecordingError, check_segments, read_csv, write_csv
from smg_jax.online import metric
from smg_jax.online.errors import OnlineError
from smg_jax.online.metric import online_report, score_segments


def scores(gt, pred, **kw):
    return score_segments([gt], [pred], **kw)


def test_iou_of_spans_on_the_real_line():
    assert metric.iou((0, 0, 10), (0, 5, 15)) == pytest.approx(5 / 15)
    assert metric.iou((0, 0, 10), (3, 0, 10)) == 1.0  # labels are not IoU's business
    assert metric.iou((0, 0, 10), (0, 20, 30)) < 0  # disjoint: negative, never counts
    assert metric.iou((0, 0, 10), (0, 10, 20)) == 0.0  # touching
    assert metric.iou((0, 5, 5), (0, 5, 5)) == 0.0  # no union


def test_perfect_prediction_scores_one_under_both_rules():
    gt = [(0, 0, 10), (3, 20, 40)]
    one = scores(gt, gt)
    assert (one["matched"], one["ground_truth"], one["predicted"]) == (2, 2, 2)
    assert one["recall"] == one["precision"] == one["f1"] == 1.0
    authors = scores(gt, gt, matching="authors")
    assert authors["f1"] == pytest.approx(2 / (2 + 1e-7))  # their epsilon in the denominator


def test_one_prediction_covering_two_ground_truths():
    gt = [(0, 0, 10), (0, 12, 22)]
    pred = [(0, 0, 22)]  # IoU 10/22 with each
    one = scores(gt, pred)
    assert (one["matched"], one["recall"], one["precision"]) == (1, 0.5, 1.0)
    assert one["f1"] == pytest.approx(2 / 3)
    # The authors' rule finds both with the same prediction: precision above 1.
    authors = scores(gt, pred, matching="authors")
    assert (authors["matched"], authors["recall"], authors["precision"]) == (2, 1.0, 2.0)
    assert authors["f1"] == pytest.approx(4 / (3 + 1e-7))


def test_maximum_matching_beats_a_first_come_greedy_pass():
    a, b = (0, 0, 10), (0, 5, 15)
    p1, p2 = (0, 4, 14), (0, 0, 9)
    # p1 qualifies for both; p2 only for a. Greedy in order gives a-p1 and leaves b alone.
    assert metric.iou(a, p1) > 0.3 and metric.iou(b, p1) > 0.3
    assert metric.iou(a, p2) > 0.3 and metric.iou(b, p2) <= 0.3
    assert scores([a, b], [p1, p2])["matched"] == 2
    assert scores([a, b], [p2, p1])["matched"] == 2


def test_iou_exactly_at_the_threshold_does_not_count():
    gt = [(0, 0, 10)]
    assert scores(gt, [(0, 0, 3)])["matched"] == 0  # IoU 0.3 exactly
    assert scores(gt, [(0, 0, 3)], matching="authors")["matched"] == 0
    assert scores(gt, [(0, 0, 4)])["matched"] == 1
    assert scores(gt, [(0, 0, 5)], iou_threshold=0.5)["matched"] == 0
    assert scores(gt, [(0, 0, 6)], iou_threshold=0.5)["matched"] == 1


def test_label_mismatch_never_counts():
    result = scores([(0, 0, 10)], [(1, 0, 10)])
    assert result["matched"] == 0 and result["f1"] == 0.0
    assert scores([(0, 0, 10)], [(1, 0, 10)], matching="authors")["matched"] == 0


def test_counts_are_pooled_over_recordings_not_averaged():
    gt = {"a": [(0, 0, 10), (1, 20, 30)], "b": [(2, 0, 10)]}
    pred = {"a": [(0, 0, 10)], "b": [(2, 0, 10), (2, 50, 60), (3, 70, 80)]}
    result = score_segments(gt, pred)
    assert (result["matched"], result["ground_truth"], result["predicted"]) == (2, 3, 4)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["precision"] == pytest.approx(0.5)
    assert result["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    per_a = score_segments({"a": gt["a"]}, {"a": pred["a"]})["f1"]
    per_b = score_segments({"b": gt["b"]}, {"b": pred["b"]})["f1"]
    assert result["f1"] != pytest.approx((per_a + per_b) / 2)
    # A sequence of recordings is the same as a mapping in that order.
    assert score_segments(list(gt.values()), list(pred.values())) == result


def test_matches_never_cross_recordings():
    result = score_segments([[(0, 0, 10)], []], [[], [(0, 0, 10)]])
    assert result["matched"] == 0


def test_no_predictions_gives_zero_precision_not_a_crash():
    for rule in metric.MATCHING_RULES:
        result = score_segments([[(0, 0, 10)]], [[]], matching=rule)
        assert result == {
            "matched": 0,
            "ground_truth": 1,
            "predicted": 0,
            "recall": 0.0,
            "precision": 0.0,
            "f1": 0.0,
        }
    empty = score_segments([[]], [[]])
    assert empty["recall"] == empty["precision"] == empty["f1"] == 0.0


def test_f1_formulas_differ_by_the_authors_epsilon():
    gt = [(0, 0, 10), (1, 20, 30)]
    pred = [(0, 0, 10), (2, 40, 50)]
    assert scores(gt, pred)["f1"] == 0.5
    assert scores(gt, pred, matching="authors")["f1"] == pytest.approx(0.5 / (1 + 1e-7), rel=1e-12)
    assert scores(gt, pred, matching="authors")["f1"] < 0.5


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ((0, 10, 5), "start 10 > end 5"),
        ((0, -1, 5), "negative frame"),
        ((17, 0, 5), r"outside \[0, 17\)"),
        ((-1, 0, 5), r"outside \[0, 17\)"),
        ((0, 1.5, 5), "not an integer"),
        ((0, 1), "has 2 values"),
    ],
)
def test_bad_segments_name_the_recording_and_the_row(segment, message):
    with pytest.raises(RecordingError, match=message) as info:
        score_segments({"Sample0036": [(0, 0, 5)]}, {"Sample0036": [(1, 0, 4), segment]})
    assert "Sample0036 (predictions), segment row 1" in str(info.value)
    with pytest.raises(RecordingError, match="Sample0037 \\(ground truth\\), segment row 0"):
        score_segments({"Sample0037": [segment]}, {"Sample0037": []})


def test_bad_arguments_are_clear_errors():
    with pytest.raises(OnlineError, match="same recordings"):
        score_segments({"a": []}, {"b": []})
    with pytest.raises(OnlineError, match="matching rule"):
        score_segments([[]], [[]], matching="greedy")
    with pytest.raises(OnlineError, match="iou_threshold"):
        score_segments([[]], [[]], iou_threshold=1.0)


def _brute_force_matching(gt, pred, threshold):
    best = 0
    for size in range(min(len(gt), len(pred)), 0, -1):
        for chosen in itertools.permutations(range(len(pred)), size):
            for gts in itertools.combinations(range(len(gt)), size):
                if all(
                    gt[g][0] == pred[p][0] and metric.iou(gt[g], pred[p]) > threshold
                    for g, p in zip(gts, chosen, strict=True)
                ):
                    return size
    return best


def test_one_to_one_is_a_maximum_matching_on_random_cases():
    rng = random.Random(0)
    for _ in range(300):
        make = lambda n: [  # noqa: E731
            (rng.randint(0, 1), s, s + rng.randint(1, 12))
            for s in (rng.randint(0, 30) for _ in range(n))
        ]
        gt, pred = make(rng.randint(0, 5)), make(rng.randint(0, 5))
        one = scores(gt, pred)["matched"]
        assert one == _brute_force_matching(gt, pred, 0.3)
        # Every ground truth matched one-to-one also has a qualifying prediction.
        assert scores(gt, pred, matching="authors")["matched"] >= one


def test_maximum_matching_handles_long_augmenting_chains():
    # Ground truth i may take prediction i or i + 1; in order, each displaces the last.
    n = 3000
    candidates = [[i, i + 1] if i + 1 < n else [i] for i in range(n)]
    candidates = [list(reversed(c)) for c in candidates]
    match = metric.maximum_matching(candidates, n)
    assert sorted(match) == list(range(n))


def test_report_gives_both_rules_per_recording_and_per_class():
    gt = {"Sample0036": [(0, 0, 10), (0, 12, 22)], "Sample0037": [(2, 0, 10)]}
    pred = {"Sample0036": [(0, 0, 22)], "Sample0037": []}
    report = online_report(gt, pred, num_classes=3, class_names=["a", "b", "c"])
    assert report["pooled"]["one_to_one"]["matched"] == 1
    assert report["pooled"]["authors"]["matched"] == 2
    assert report["per_recording"]["Sample0037"]["one_to_one"]["predicted"] == 0
    assert report["per_class"]["support"] == [2, 0, 1]
    assert report["per_class"]["recall"]["one_to_one"] == [0.5, None, 0.0]
    assert report["per_class"]["recall"]["authors"] == [1.0, None, 0.0]
    reports = {"mine": report}
    table = metric.format_online_table(reports, title="t")
    assert "| mine | 0.333 | 1.000 | 0.500 | 1/3/1 | 0.667 | 2.000 |" in table
    assert "Sample0037 | mine" in metric.format_per_recording_table(reports)
    assert "| a | 2 | 0.50 (1.00) |" in metric.format_per_class_table(reports)


def test_segment_csv_round_trip_in_the_raw_label_layout(tmp_path):
    path = write_csv(tmp_path / "Sample0036.csv", [(0, 5, 40), (16, 100, 150)])
    assert path.read_text().splitlines() == ["1,5,40", "17,100,150"]
    assert read_csv(path) == [(0, 5, 40), (16, 100, 150)]
    with pytest.raises(RecordingError, match="beyond the recording"):
        check_segments([(0, 5, 40)], recording="r", num_frames=30)
