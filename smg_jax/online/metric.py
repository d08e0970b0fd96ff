"""The online-recognition metric: temporal IoU matching, recall, precision, F1, reports.

A ground-truth MG counts as found when a predicted segment has the same
label and a temporal IoU strictly above the threshold (0.3 in the SMG
protocol). IoU is that of the spans ``[start, end]`` on the real line::

    IoU = (min(ends) - max(starts)) / (max(ends) - min(starts))

(negative for disjoint spans, so they never count; a pair of zero-length
spans at the same point has no union and counts as IoU 0).

Two matching rules:

``one_to_one`` (the correct one, our default)
    The largest set of disjoint (ground truth, prediction) pairs: a maximum
    bipartite matching (augmenting paths), so that one prediction can find
    at most one MG and no greedy order can lose a match.
    ``F1 = 2 R P / (R + P)`` (0 when both are 0).
``authors``
    The SMG authors' evaluation loop exactly: for each ground truth in
    order, the first prediction in order that qualifies counts, and stays
    available to later ground truths (their ``numpy.delete`` calls discard
    their result). ``F1 = 2 R P / (R + P + 1e-7)``.

Counts are pooled over recordings: recall = found / ground truths,
precision = found / predictions (the paper's "Acc"); no predictions gives
precision 0 and no ground truth gives recall 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from smg_jax.data.recordings import NUM_CLASSES, Segment, by_recording, check_segments
from smg_jax.online.errors import OnlineError

MATCHING_RULES = ("one_to_one", "authors")
AUTHORS_F1_EPSILON = 1e-7


def iou(a: Sequence[int], b: Sequence[int]) -> float:
    """Temporal IoU of the spans ``[start, end]`` of two ``(label, start, end)`` segments.

    Labels are ignored.

    Negative for disjoint spans; 0 when both are the same single point.
    """
    union = max(a[2], b[2]) - min(a[1], b[1])
    if union <= 0:
        return 0.0
    return (min(a[2], b[2]) - max(a[1], b[1])) / union


def _qualifies(gt: Segment, pred: Segment, threshold: float) -> bool:
    return gt[0] == pred[0] and iou(gt, pred) > threshold


def _candidates(gt: list[Segment], pred: list[Segment], threshold: float) -> list[list[int]]:
    """For each ground truth, the predictions (indices, in order) it may be matched with."""
    by_label: dict[int, list[int]] = {}
    for index, segment in enumerate(pred):
        by_label.setdefault(segment[0], []).append(index)
    return [[p for p in by_label.get(g[0], ()) if iou(g, pred[p]) > threshold] for g in gt]


def maximum_matching(candidates: Sequence[Sequence[int]], num_right: int) -> list[int]:
    """A maximum bipartite matching by augmenting paths (Kuhn's algorithm, iterative DFS).

    Args:
      candidates: for each left vertex (ground truth), its right neighbours (predictions).
      num_right: number of right vertices.

    Returns:
      ``match_of_left``: for each left vertex the matched right vertex, or -1.
    """
    match_of_right = [-1] * num_right
    match_of_left = [-1] * len(candidates)
    for root in range(len(candidates)):
        if not candidates[root]:
            continue
        # Depth-first search for an augmenting path from the unmatched `root`. The explicit
        # stack (no recursion: long chains of displaced matches are possible) always holds
        # the current alternating path: each left vertex above the root was reached through
        # the right vertex it owns now.
        visited = [False] * num_right
        stack: list[list[int]] = [[root, 0]]  # [left vertex, next candidate position]
        free_right = -1
        while stack:
            top = stack[-1]
            left, position = top
            if position >= len(candidates[left]):
                stack.pop()
                continue
            top[1] += 1
            right = candidates[left][position]
            if visited[right]:
                continue
            visited[right] = True
            if match_of_right[right] < 0:
                free_right = right
                break
            stack.append([match_of_right[right], 0])
        if free_right < 0:
            continue
        # Augment: the deepest left vertex takes the free right vertex, every other one on
        # the path takes the right vertex its successor owned.
        right = free_right
        for left, _ in reversed(stack):
            previous = match_of_left[left]
            match_of_left[left] = right
            match_of_right[right] = left
            right = previous
    return match_of_left


def matched_ground_truth(
    gt: list[Segment], pred: list[Segment], *, iou_threshold: float, matching: str
) -> np.ndarray:
    """``(len(gt),)`` bool: which ground truths of one recording count as found."""
    if matching not in MATCHING_RULES:
        raise OnlineError(f"Unknown matching rule {matching!r}; choose from {MATCHING_RULES}.")
    found = np.zeros(len(gt), bool)
    if matching == "authors":
        for g, segment in enumerate(gt):
            found[g] = any(_qualifies(segment, p, iou_threshold) for p in pred)
        return found
    match = maximum_matching(_candidates(gt, pred, iou_threshold), len(pred))
    return np.asarray(match, np.int64) >= 0 if gt else found


def _rates(matched: int, num_gt: int, num_pred: int, matching: str) -> dict[str, float]:
    recall = matched / num_gt if num_gt else 0.0
    precision = matched / num_pred if num_pred else 0.0
    if matching == "authors":
        f1 = 2 * recall * precision / (recall + precision + AUTHORS_F1_EPSILON)
    else:
        f1 = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
    return {"recall": recall, "precision": precision, "f1": f1}


def _check_threshold(iou_threshold: float) -> float:
    value = float(iou_threshold)
    if not 0.0 <= value < 1.0:
        raise OnlineError(f"iou_threshold must lie in [0, 1), got {iou_threshold}.")
    return value


def _paired(
    ground_truth: Mapping[str, Iterable[Sequence[Any]]] | Sequence[Iterable[Sequence[Any]]],
    predictions: Mapping[str, Iterable[Sequence[Any]]] | Sequence[Iterable[Sequence[Any]]],
    num_classes: int,
) -> list[tuple[str, list[Segment], list[Segment]]]:
    """Validated ``(name, gt, pred)`` per recording, in ground-truth order."""
    gt_items = by_recording(ground_truth)
    pred_items = by_recording(predictions)
    if set(gt_items) != set(pred_items):
        missing = sorted(set(gt_items) - set(pred_items))
        extra = sorted(set(pred_items) - set(gt_items))
        raise OnlineError(
            f"ground_truth and predictions must cover the same recordings; predictions miss "
            f"{missing[:5]} and have extra {extra[:5]}."
        )
    return [
        (
            name,
            check_segments(segs, recording=f"{name} (ground truth)", num_classes=num_classes),
            check_segments(
                pred_items[name], recording=f"{name} (predictions)", num_classes=num_classes
            ),
        )
        for name, segs in gt_items.items()
    ]


def score_segments(
    ground_truth: Mapping[str, Iterable[Sequence[Any]]] | Sequence[Iterable[Sequence[Any]]],
    predictions: Mapping[str, Iterable[Sequence[Any]]] | Sequence[Iterable[Sequence[Any]]],
    *,
    iou_threshold: float = 0.3,
    matching: str = "one_to_one",
    num_classes: int = NUM_CLASSES,
) -> dict[str, float | int]:
    """Pooled online-recognition scores.

    Args:
      ground_truth: one item per recording (a sequence, or a mapping name ->
        item), each a sequence of ``(label, start, end)`` integer triples.
      predictions: the same recordings, in the same order (or with the same names).
      iou_threshold: a pair counts when IoU is strictly above it.
      matching: ``"one_to_one"`` or ``"authors"`` (see the module docstring).
      num_classes: labels must lie in ``[0, num_classes)``.

    Returns:
      ``{"matched", "ground_truth", "predicted"}`` (ints, pooled over
      recordings) and ``{"recall", "precision", "f1"}`` (floats).

    Raises:
      OnlineError: mismatched recordings, a malformed segment (the message names
        the recording and the row), an unknown rule or a threshold outside [0, 1).
    """
    threshold = _check_threshold(iou_threshold)
    if matching not in MATCHING_RULES:
        raise OnlineError(f"Unknown matching rule {matching!r}; choose from {MATCHING_RULES}.")
    matched = num_gt = num_pred = 0
    for _, gt, pred in _paired(ground_truth, predictions, num_classes):
        found = matched_ground_truth(gt, pred, iou_threshold=threshold, matching=matching)
        matched += int(found.sum())
        num_gt += len(gt)
        num_pred += len(pred)
    return {
        "matched": matched,
        "ground_truth": num_gt,
        "predicted": num_pred,
        **_rates(matched, num_gt, num_pred, matching),
    }


def online_report(
    ground_truth: Mapping[str, Iterable[Sequence[Any]]],
    predictions: Mapping[str, Iterable[Sequence[Any]]],
    *,
    iou_threshold: float = 0.3,
    num_classes: int = NUM_CLASSES,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Both rules, pooled and per recording, and per-class recall, as a JSON-ready dict.

    Returns:
      ``{"iou_threshold", "class_names", "pooled": {rule: scores},
      "per_recording": {name: {rule: scores}}, "per_class": {"support": [K],
      "recall": {rule: [K floats or None]}}}`` where ``scores`` is what
      ``score_segments`` returns and a class without ground truth has recall ``None``.
    """
    threshold = _check_threshold(iou_threshold)
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise OnlineError(f"{len(names)} class names for {num_classes} classes.")
    paired = _paired(ground_truth, predictions, num_classes)
    support = np.zeros(num_classes, np.int64)
    for _, gt, _ in paired:
        for label, _, _ in gt:
            support[label] += 1
    report: dict[str, Any] = {
        "iou_threshold": threshold,
        "class_names": names,
        "pooled": {},
        "per_recording": {name: {} for name, _, _ in paired},
        "per_class": {"support": support.tolist(), "recall": {}},
    }
    for rule in MATCHING_RULES:
        found_per_class = np.zeros(num_classes, np.int64)
        totals = [0, 0, 0]
        for name, gt, pred in paired:
            found = matched_ground_truth(gt, pred, iou_threshold=threshold, matching=rule)
            for (label, _, _), hit in zip(gt, found, strict=True):
                found_per_class[label] += int(hit)
            counts = (int(found.sum()), len(gt), len(pred))
            report["per_recording"][name][rule] = {
                "matched": counts[0],
                "ground_truth": counts[1],
                "predicted": counts[2],
                **_rates(*counts, rule),
            }
            totals = [t + c for t, c in zip(totals, counts, strict=True)]
        report["pooled"][rule] = {
            "matched": totals[0],
            "ground_truth": totals[1],
            "predicted": totals[2],
            **_rates(*totals, rule),
        }
        report["per_class"]["recall"][rule] = [
            float(found_per_class[c] / support[c]) if support[c] else None
            for c in range(num_classes)
        ]
    return report


# ---------------------------------------------------------------------------
# Markdown tables.
# ---------------------------------------------------------------------------


def _scores_cells(scores: Mapping[str, Any]) -> str:
    return (
        f"{scores['recall']:.3f} | {scores['precision']:.3f} | {scores['f1']:.3f} | "
        f"{scores['matched']}/{scores['ground_truth']}/{scores['predicted']}"
    )


_RULE_HEADER = "Rec | Prec | F1 | found/GT/pred"


def format_online_table(
    reports: Mapping[str, Mapping[str, Any]], title: str | None = None, note: str | None = None
) -> str:
    """Pooled scores of several methods, both matching rules side by side (Markdown)."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        f"| method | {_RULE_HEADER} (one-to-one) | {_RULE_HEADER} (authors' rule) |",
        "| --- |" + " ---: |" * 8,
    ]
    for method, report in reports.items():
        pooled = report["pooled"]
        lines.append(
            f"| {method} | {_scores_cells(pooled['one_to_one'])} | "
            f"{_scores_cells(pooled['authors'])} |"
        )
    if note:
        lines += ["", note]
    return "\n".join(lines)


def format_per_recording_table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """Per test recording (subject) and method, both rules side by side (Markdown)."""
    lines = [
        f"| recording | method | {_RULE_HEADER} (one-to-one) | {_RULE_HEADER} (authors' rule) |",
        "| --- | --- |" + " ---: |" * 8,
    ]
    names = list(next(iter(reports.values()))["per_recording"]) if reports else []
    for name in names:
        for method, report in reports.items():
            scores = report["per_recording"][name]
            lines.append(
                f"| {name} | {method} | {_scores_cells(scores['one_to_one'])} | "
                f"{_scores_cells(scores['authors'])} |"
            )
    return "\n".join(lines)


def format_per_class_table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """Per-class recall (one-to-one rule; authors' rule in brackets) of each method (Markdown)."""
    if not reports:
        return ""
    first = next(iter(reports.values()))
    methods = list(reports)
    lines = [
        "| class | GT | " + " | ".join(methods) + " |",
        "| --- | ---: |" + " ---: |" * len(methods),
    ]
    for c, (name, support) in enumerate(
        zip(first["class_names"], first["per_class"]["support"], strict=True)
    ):
        cells = []
        for method in methods:
            recall = reports[method]["per_class"]["recall"]
            one, authors = recall["one_to_one"][c], recall["authors"][c]
            cells.append("n/a" if one is None else f"{one:.2f} ({authors:.2f})")
        lines.append(f"| {name} | {support} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
