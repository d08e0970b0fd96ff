"""``run``: one emotion method under one protocol, from a config to tables and plots.

Everything a run writes goes under its ``workdir``::

    config.json                the resolved config (a resumed run must match it)
    folds.json                 every fold's training and test participants
    folds/fold<k>/outcome.json a finished fold's test instances and logits (resume skips it)
    folds/fold<k>/checkpoints/ end-to-end: the latest train state + data position
    folds/fold<k>/tensorboard/ end-to-end: loss, learning rate, gradient norm
    folds/fold<k>/features.npz MG-based: the fold's feature matrices and labels
    recognizers/...            MG-based from the recognizer: trained recognizers, decoded CSVs
    predictions.csv            every instance's out-of-fold prediction
    results.json / results.md  per fold and mean ± std, pooled, the majority baseline,
                               MG class weights
    confusion_matrix.png       pooled over folds
    class_weights.png          MG-based: which MG classes weigh most

Run the same command again to resume: finished folds are read back, an
interrupted end-to-end fold continues from its last checkpoint, trained
recognizers and their decoded recordings are reused.
"""

from __future__ import annotations

import json
import logging
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import ml_collections
import numpy as np
from tqdm.auto import tqdm

from smg_jax import metrics as cls_metrics
from smg_jax.emotion import data as data_lib
from smg_jax.emotion import end_to_end, features, mg_method, protocols, recognized, report, scores
from smg_jax.emotion.data import STATE_NAMES, EmotionData, EmotionError
from smg_jax.train import setup
from smg_jax.train.errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("end_to_end", "mg_features")


def describe_protocol(protocol: ml_collections.ConfigDict) -> str:
    if protocol.name == "cross_subject":
        return f"cross-subject (train participants {protocol.train_subjects}, test the rest)"
    return f"{int(protocol.num_folds)}-fold subject-wise cross-validation (seed {protocol.seed})"


def describe_method(config: ml_collections.ConfigDict) -> str:
    """The method's row label in the tables."""
    if config.method == "mg_features":
        return mg_method.describe(config.mg)
    window = config.window
    if window.mode == "first":
        what = f"first {window.length} frames"
        preset = end_to_end.make_preset(config)
        faithful = (
            preset.temporal == "resample"
            and preset.num_frames == window.length
            and not preset.fill_missing
            and preset.center_joint is None
            and preset.view is None
            and preset.stream == "joint"
            and not preset.augment
        )
        if faithful and window.length == 90:
            what += " (the authors' preset)"
    else:
        what = (
            f"{window.length}-frame windows every {window.stride} ({config.data.preset} preset, "
            f"{config.data.num_frames} frames), mean of window logits"
        )
    return f"end-to-end {config.model.name}, {what}"


def short_title(config: ml_collections.ConfigDict, data: EmotionData) -> str:
    """Two short lines for plot titles: the method, then the protocol and the data."""
    if config.method == "mg_features":
        mg = config.mg
        source = (
            "ground truth"
            if mg.source == "ground_truth"
            else f"{mg.recognizer if mg.source == 'recognizer' else 'CSV'}, {mg.train_on}"
        )
        method = f"MG features ({source})"
    else:
        window = "first" if config.window.mode == "first" else "windows"
        method = f"end-to-end {config.model.name} ({window} {config.window.length})"
    protocol = (
        "cross-subject"
        if config.protocol.name == "cross_subject"
        else f"{int(config.protocol.num_folds)}-fold CV"
    )
    scale = "SYNTHETIC" if data.synthetic else "SMG"
    return f"{method}\n{protocol}, {scale}"


def check_config(config: ml_collections.ConfigDict) -> None:
    if config.method not in METHODS:
        raise EmotionError(f"method={config.method!r}; choose from {list(METHODS)}.")
    if config.protocol.name not in protocols.PROTOCOLS:
        raise EmotionError(
            f"protocol.name={config.protocol.name!r}; choose from {list(protocols.PROTOCOLS)}."
        )
    if config.method == "mg_features":
        mg_method.check_config(config.mg)
    elif config.window.mode not in end_to_end.WINDOW_MODES:
        raise EmotionError(
            f"window.mode={config.window.mode!r}; choose from {list(end_to_end.WINDOW_MODES)}."
        )


def _positions(data: EmotionData, subjects: tuple[int, ...]) -> np.ndarray:
    chosen = set(subjects)
    return np.asarray(
        [i for i, inst in enumerate(data.instances) if inst.subject in chosen], np.int64
    )


def _outcome_path(workdir: pathlib.Path, fold: protocols.Fold) -> pathlib.Path:
    return workdir / "folds" / fold.name() / "outcome.json"


def _mg_fold(config, data: EmotionData, fold, train_pos, test_pos, source, fold_dir):
    """One fold of the MG-based method: its result, and what its outcome file adds."""
    result = mg_method.run_fold(config, data, fold, train_pos, test_pos, source)
    fold_dir.mkdir(parents=True, exist_ok=True)
    np.savez(
        fold_dir / "features.npz",
        train_features=result["train_features"],
        test_features=result["test_features"],
        train_labels=data.states[train_pos],
        test_labels=data.states[test_pos],
        feature_names=np.asarray(features.feature_names(config.mg.features, data.class_names)),
    )
    extra = {
        "coef": result["coef"].tolist(),
        "intercept": result["intercept"],
        "solver_iterations": result["iterations"],
        "mean_mgs_per_train_instance": result["mean_mgs_train"],
        "mean_mgs_per_test_instance": result["mean_mgs_test"],
        "recognition": result["recognition"],
    }
    return result, extra


def _run_folds(
    config, data: EmotionData, folds, workdir: pathlib.Path, train_recognizer=None
) -> list[dict[str, Any]]:
    """Every fold's outcome (read back when finished before), in fold order."""
    progress = bool(config.train.progress_bar)
    source = None
    if config.method == "mg_features":
        source = mg_method.make_source(
            config,
            data,
            workdir,
            lambda: data_lib.load_recordings(config.data),
            train_recognizer,
        )
    outcomes = []
    window = config.window
    for fold in tqdm(folds, desc="folds", unit="fold", disable=not progress, file=sys.stderr):
        path = _outcome_path(workdir, fold)
        train_pos = _positions(data, fold.train_subjects)
        test_pos = _positions(data, fold.test_subjects)
        fold_dir = path.parent
        if config.method == "end_to_end":
            train = end_to_end.WindowSource(
                [data.instances[i] for i in train_pos], window.length, window.stride, window.mode
            )
            test = end_to_end.WindowSource(
                [data.instances[i] for i in test_pos], window.length, window.stride, window.mode
            )
        if path.is_file():
            outcome = json.loads(path.read_text())
            if outcome["test_keys"] != [data.instances[i].key for i in test_pos]:
                raise EmotionError(
                    f"{path} was written for other instances than the dataset now holds "
                    "(the data changed since); choose a new --workdir."
                )
            # A finished fold is reused unless train.max_steps now asks for more steps
            # (then it resumes from its last checkpoint and goes on).
            if (
                config.method != "end_to_end"
                or outcome["steps"] == (setup.planned_steps(config, len(train))[1])
            ):
                outcomes.append(outcome)
                continue
        if config.method == "mg_features":
            result, extra = _mg_fold(config, data, fold, train_pos, test_pos, source, fold_dir)
        else:
            result = end_to_end.train_fold(
                config, fold_dir, train, test, fold_index=fold.index, description=data.description
            )
            extra = {
                k: result[k]
                for k in ("history", "steps", "train_windows", "test_windows", "num_params")
            }
        outcome = {
            "fold": fold.to_dict(),
            "train_positions": train_pos.tolist(),
            "test_positions": test_pos.tolist(),
            "test_keys": [data.instances[i].key for i in test_pos],
            "logits": np.asarray(result["logits"], np.float64).tolist(),
            **extra,
        }
        cls_metrics.write_json(outcome, path)
        outcomes.append(outcome)
    return outcomes


def run(
    config: ml_collections.ConfigDict,
    workdir: str | pathlib.Path,
    *,
    train_recognizer: recognized.TrainRecognizer | None = None,
) -> dict[str, Any]:
    """Runs ``config.method`` under ``config.protocol`` and writes every output (module docstring).

    ``train_recognizer`` fits the MG recognizer that ``mg.source='recognizer'``
    needs (``smg_jax.online.recognizers.trainer(config.online, config.mg.recognizer)``).

    Returns the dict also written to ``workdir/results.json``.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    check_config(config)
    try:
        setup.check_resume_config(workdir, config)
    except ConfigError as err:
        raise EmotionError(str(err)) from None
    data = data_lib.load(config.data)
    folds = protocols.make_folds(config.protocol, [inst.subject for inst in data.instances])
    protocols.check_folds(folds)
    cls_metrics.write_json({"folds": [f.to_dict() for f in folds]}, workdir / "folds.json")
    log.info(
        "%s: %d instances of %d participants (%d relaxed, %d stressed); %s; %s",
        data.description,
        len(data.instances),
        len(data.subjects),
        int((data.states == 0).sum()),
        int((data.states == 1).sum()),
        describe_protocol(config.protocol),
        describe_method(config),
    )
    outcomes = _run_folds(config, data, folds, workdir, train_recognizer)
    return write_results(config, workdir, data, outcomes)


def _fold_rows(data: EmotionData, outcomes, predict) -> list[dict[str, Any]]:
    rows = []
    for outcome in outcomes:
        labels = data.states[outcome["test_positions"]]
        row = scores.binary_scores(predict(outcome), labels)
        row["fold"] = outcome["fold"]["index"]
        row["test_subjects"] = outcome["fold"]["test_subjects"]
        rows.append(row)
    return rows


def _predict(outcome) -> np.ndarray:
    return np.argmax(np.asarray(outcome["logits"]), axis=1)


def _scores(data: EmotionData, outcomes) -> dict[str, Any]:
    """Per-fold and pooled scores of the method and of the majority-class baseline."""

    def majority(outcome) -> np.ndarray:
        return scores.majority_predictions(
            data.states[outcome["train_positions"]], len(outcome["test_positions"])
        )

    per_fold = _fold_rows(data, outcomes, _predict)
    baseline_folds = _fold_rows(data, outcomes, majority)
    all_positions = np.concatenate([np.asarray(o["test_positions"], np.int64) for o in outcomes])
    all_labels = data.states[all_positions]
    return {
        "per_fold": per_fold,
        "summary": scores.aggregate(per_fold),
        "pooled": scores.pooled(np.concatenate([_predict(o) for o in outcomes]), all_labels),
        "baseline": {
            "summary": scores.aggregate(baseline_folds),
            "pooled": scores.pooled(np.concatenate([majority(o) for o in outcomes]), all_labels),
            "per_fold": baseline_folds,
        },
    }


def _data_note(data: EmotionData) -> str:
    note = (
        f"Data: {data.description}, {len(data.instances)} instances of {len(data.subjects)} "
        f"participants; each instance tested once, by the fold that did not train on its "
        "participant. Pooled: all out-of-fold predictions at once; p: one-sided exact binomial "
        "test of the pooled accuracy against 50 %. State 0 = relaxed is our reading of the "
        "authors' code (docs/data.md)."
    )
    if data.synthetic:
        note += " **SYNTHETIC data: these are not SMG results.**"
    return note


def _mg_results(config, workdir: pathlib.Path, data: EmotionData, outcomes):
    """The MG-based method's extra results and report sections (class weights, MG counts)."""
    coefs = np.asarray([o["coef"] for o in outcomes], np.float64)
    weights = mg_method.class_weights(coefs, tuple(config.mg.features), data.class_names)
    png = report.plot_class_weights(
        weights, workdir / "class_weights.png", title=short_title(config, data)
    )
    mgs_train = np.mean([o["mean_mgs_per_train_instance"] for o in outcomes])
    mgs_test = np.mean([o["mean_mgs_per_test_instance"] for o in outcomes])
    truth = np.mean([len(inst.segments) for inst in data.instances])
    sections = [
        f"MGs per instance (mean over folds): {mgs_train:.2f} in the classifier's training "
        f"instances, {mgs_test:.2f} in its test instances; the ground truth holds "
        f"{truth:.2f}."
    ]
    results: dict[str, Any] = {}
    recognition = _pooled_recognition(outcomes)
    if recognition is not None:
        results["recognition_of_test_mgs"] = recognition
        sections.append(
            "Recognized MGs inside the test instances against the annotated ones (IoU > 0.3, "
            f"one-to-one, pooled over folds): recall {recognition['recall']:.3f}, precision "
            f"{recognition['precision']:.3f}, F1 {recognition['f1']:.3f} "
            f"({recognition['matched']} of {recognition['ground_truth']} found, "
            f"{recognition['predicted']} predicted)."
        )
    sections.append(
        "### Which MG classes weigh most (standardised logistic-regression weights, "
        "mean ± std over folds; positive = towards stressed)\n\n"
        + report.class_weights_table(weights)
    )
    results["class_weights"] = weights
    results["feature_names"] = features.feature_names(config.mg.features, data.class_names)
    results["coefficients_per_fold"] = coefs.tolist()
    results["class_weights_png"] = str(png)
    results["mean_mgs_per_test_instance"] = [o["mean_mgs_per_test_instance"] for o in outcomes]
    return results, sections


def _prediction_rows(data: EmotionData, outcomes) -> list[dict[str, Any]]:
    """One ``predictions.csv`` row per tested instance: its state, prediction, P(stressed)."""
    rows = []
    for outcome in outcomes:
        logits = np.asarray(outcome["logits"], np.float64)
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        for position, key, prob in zip(
            outcome["test_positions"], outcome["test_keys"], probs[:, 1], strict=True
        ):
            inst = data.instances[position]
            rows.append(
                {
                    "instance": key,
                    "subject": inst.subject,
                    "fold": outcome["fold"]["index"],
                    "state": STATE_NAMES[inst.state],
                    "predicted": STATE_NAMES[int(prob > 0.5)],
                    "p_stressed": f"{prob:.4f}",
                }
            )
    return rows


def write_results(config, workdir: pathlib.Path, data: EmotionData, outcomes) -> dict[str, Any]:
    """Tables, plots, predictions; returns the results dict (see the module docstring)."""
    method = describe_method(config)
    protocol = describe_protocol(config.protocol)
    scored = _scores(data, outcomes)
    summary, pooled, baseline = scored["summary"], scored["pooled"], scored["baseline"]
    title = f"Emotional state, relaxed vs stressed: {protocol} ({data.description})"
    confusion_png = report.write_confusion(
        pooled["confusion_matrix"],
        workdir / "confusion_matrix.png",
        title=short_title(config, data),
    )
    sections = [
        f"### {title}",
        scores.method_table(
            {
                method: {"summary": summary, "pooled": pooled, "num_folds": len(outcomes)},
                "majority class (chance)": {**baseline, "num_folds": len(outcomes)},
            }
        ),
        _data_note(data),
        "### Per fold\n\n" + scores.fold_table(scored["per_fold"], summary),
    ]
    results: dict[str, Any] = {
        "method": method,
        "method_kind": config.method,
        "protocol": {
            "description": protocol,
            **json.loads(config.protocol.to_json_best_effort()),
        },
        "data": data.description,
        "synthetic": data.synthetic,
        "num_instances": len(data.instances),
        "summary": summary,
        "pooled": pooled,
        "folds": scored["per_fold"],
        "majority_baseline": baseline,
        "confusion_matrix_png": str(confusion_png),
    }
    if config.method == "mg_features":
        extra, more_sections = _mg_results(config, workdir, data, outcomes)
        results.update(extra)
        sections += more_sections
    else:
        results["training"] = [
            {k: o[k] for k in ("steps", "train_windows", "test_windows", "num_params", "history")}
            for o in outcomes
        ]
    (workdir / "results.md").write_text("\n\n".join(sections) + "\n")
    cls_metrics.write_json(results, workdir / "results.json")
    report.write_predictions_csv(workdir / "predictions.csv", _prediction_rows(data, outcomes))
    log.info("Results: %s, %s, %s", workdir / "results.md", workdir / "results.json", confusion_png)
    return results


def _pooled_recognition(outcomes) -> dict[str, Any] | None:
    """The folds' recognition counts summed, with recall, precision and F1 (None: ground truth)."""
    per_fold = [o.get("recognition") for o in outcomes]
    if any(r is None for r in per_fold):
        return None
    matched, truth, predicted = (
        sum(r[k] for r in per_fold) for k in ("matched", "ground_truth", "predicted")
    )
    recall = matched / truth if truth else 0.0
    precision = matched / predicted if predicted else 0.0
    f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    return {
        "matched": matched,
        "ground_truth": truth,
        "predicted": predicted,
        "recall": recall,
        "precision": precision,
        "f1": f1,
    }


def summarize(results: dict[str, Any], workdir: str | pathlib.Path) -> Iterator[str]:
    """Lines that tell a person what happened and where the outputs are."""
    workdir = pathlib.Path(workdir)
    yield (workdir / "results.md").read_text()
    yield f"Confusion matrix: {workdir / 'confusion_matrix.png'}"
    if "class_weights_png" in results:
        yield f"MG class weights: {results['class_weights_png']}"
    yield f"Per-instance predictions: {workdir / 'predictions.csv'}"
