"""``run``: online MG recognition from a config to tables, CSV files and timelines.

Everything a run writes goes under its ``workdir``::

    config.json                 the resolved config (a resumed run must agree on training fields)
    authors/                    the authors' recognizer: checkpoints/, tensorboard/, history.json,
                                standardizer.npz, hmm_counts.npz, training_rows.json
    detector/                   the window detector: checkpoints/, tensorboard/, history.json,
                                hmm_counts.npz, windows.json
    predictions/<method>/SampleNNNN.csv   predicted MGs, raw label layout (label 1-17,start,end)
    timelines/SampleNNNN.png    ground truth above every method's predictions
    results.json / results.md   both matching rules, per recording and pooled, per-class
                                recall, decoding speed

Run the same command again to resume: trained networks are restored from
their checkpoints (a killed run continues from its last checkpoint) and
the test recordings are decoded again, so decode-only fields (segment
rules, thresholds, the evaluation) may change between runs; fields that
change what a network learns may not.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import sys
from typing import Any

import ml_collections
from tqdm.auto import tqdm

from smg_jax import metrics
from smg_jax.data.recordings import write_csv
from smg_jax.online import data as data_lib
from smg_jax.online import detector, framework, hmm, plots, viterbi
from smg_jax.online.errors import OnlineError
from smg_jax.online.metric import (
    format_online_table,
    format_per_class_table,
    format_per_recording_table,
    online_report,
)
from smg_jax.train import setup

log = logging.getLogger(__name__)

RECOGNIZERS = ("authors", "detector")

# Config fields that do not change what a network learns: free to differ on resume.
_DECODE_ONLY = (
    "recognizers",
    "eval.",
    "data.num_threads",
    "authors.decode_batch_size",
    "authors.hmm.alignment",
    "authors.hmm.transitions",
    "authors.hmm.emission_scores",
    "authors.hmm.segment_rule",
    "authors.hmm.aes",
    "authors.hmm.mu",
    "authors.hmm.lam",
    "authors.hmm.boundary_rest_frames",
    "authors.hmm.min_length",
    "authors.hmm.score_threshold",
    "detector.decode.",
    "detector.hmm.",
    "detector.data.infer_stride",
)
_RUNTIME = (
    "train.progress_bar",
    "train.log_every_steps",
    "train.tensorboard",
    "train.keep_checkpoints",
    "train.checkpoint_every_steps",
    "train.max_steps",
)

# Published on the real SMG test set (Rec / Acc = precision / F1, the authors' rule).
PUBLISHED = {
    "FCN-sliding window": (0.082, 0.110, 0.094),
    "DBN-HMM": (0.128, 0.167, 0.145),
    "STABNet": (0.206, 0.164, 0.182),
    "AED-BiLSTM (the authors')": (0.173, 0.245, 0.203),
}


def _free_to_change(key: str) -> bool:
    # The runtime profile (``runtime.*``) changes how a run compiles, not what it computes.
    return key.startswith((*_DECODE_ONLY, "runtime.")) or any(key.endswith(r) for r in _RUNTIME)


def check_resume(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    """Refuses a workdir trained with other training fields; records the current config."""
    setup.check_resume_config(
        workdir, config, may_change=_free_to_change, error=OnlineError, overwrite=True
    )


def check_config(config: ml_collections.ConfigDict) -> list[str]:
    """Validates the choices of the recognizers to run (before any data is read); returns them.

    Unknown recognizers, HMM options, networks, models, presets or matching
    settings are errors that name the field and list the valid values.
    """
    recognizers = list(config.recognizers)
    unknown = sorted(set(recognizers) - set(RECOGNIZERS))
    if unknown or not recognizers:
        raise OnlineError(
            f"config.recognizers={recognizers}: choose one or more of {list(RECOGNIZERS)}."
        )
    if not 0.0 <= float(config.eval.iou_threshold) < 1.0:
        raise OnlineError(f"eval.iou_threshold={config.eval.iou_threshold} is not in [0, 1).")
    if "authors" in recognizers:
        hmm.options_from_mapping(config.authors.hmm)
        framework.window_of(config.authors)
        framework.make_network(config.authors, hmm.HMMOptions().num_states)
    if "detector" in recognizers:
        hmm.options_from_mapping(config.detector.hmm)
        detector.make_presets(config.detector)
        detector.make_model(config.detector, hmm.HMMOptions().num_classes)
    return recognizers


@dataclasses.dataclass
class _Method:
    name: str  # shown in tables
    predictions: dict[str, list[tuple[int, int, int]]]
    rows: int = 0
    network_seconds: float = 0.0
    viterbi_seconds: float = 0.0

    def speed(self) -> dict[str, float]:
        return {
            "decoded_rows": self.rows,
            "network_seconds": self.network_seconds,
            "viterbi_seconds": self.viterbi_seconds,
            "viterbi_rows_per_second": self.rows / self.viterbi_seconds
            if self.viterbi_seconds
            else float("nan"),
        }


def _corrections(options: hmm.HMMOptions) -> list[str]:
    """``field=value`` for every option that differs from the authors' choice."""
    faithful = hmm.HMMOptions(num_classes=options.num_classes)
    fields = (
        "frames",
        "alignment",
        "transitions",
        "emission_scores",
        "rest_frames",
        "segment_rule",
    )
    return [
        f"{f}={getattr(options, f)}" for f in fields if getattr(options, f) != getattr(faithful, f)
    ]


def _run_authors(config, data, workdir, progress) -> dict[str, _Method]:
    model = framework.train_authors(
        config, data.train, workdir / "authors", num_classes=len(data.class_names)
    )
    corrections = _corrections(model.options)
    mode = "faithful" if not corrections else "corrected: " + ", ".join(corrections)
    method = _Method(name=f"authors' HMM + {config.authors.network} ({mode})", predictions={})
    viterbi.warm_up(
        [hmm.decoded_rows(r.num_frames, model.options.frames) for r in data.test],
        model.options.num_states,
    )
    for recording in tqdm(data.test, desc="decode authors", disable=not progress, file=sys.stderr):
        decoded = framework.decode_recording(model, recording)
        method.predictions[recording.name] = decoded.segments
        method.rows += decoded.rows
        method.network_seconds += decoded.network_seconds
        method.viterbi_seconds += decoded.viterbi_seconds
    return {"authors": method}


def _run_detector(config, data, workdir, progress) -> dict[str, _Method]:
    model = detector.train_detector(
        config, data.train, workdir / "detector", num_classes=len(data.class_names)
    )
    label = f"detector {config.detector.model.name}"
    methods = {
        "detector_threshold": _Method(name=f"{label} + threshold/merge/NMS", predictions={}),
        "detector_hmm": _Method(name=f"{label} + HMM decoder", predictions={}),
    }
    viterbi.warm_up([r.num_frames for r in data.test], model.hmm_options.num_states)
    for recording in tqdm(data.test, desc="decode detector", disable=not progress, file=sys.stderr):
        segments, times = model.detect(recording)
        for decoder, key in (("threshold", "detector_threshold"), ("hmm", "detector_hmm")):
            method = methods[key]
            method.predictions[recording.name] = segments[decoder]
            method.rows += recording.num_frames
            method.network_seconds += times["network_seconds"]
        methods["detector_hmm"].viterbi_seconds += times["viterbi_seconds"]
    return methods


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, Any]:
    """Trains the configured recognizers, decodes the test recordings, writes every output.

    Returns the results dict also written to ``workdir/results.json``.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    recognizers = check_config(config)
    check_resume(workdir, config)
    data = data_lib.load(config.data)
    if not data.train or not data.test:
        raise OnlineError("Online recognition needs training and test recordings.")
    progress = bool(config.eval.progress_bar)
    log.info(
        "%s: %d train / %d test recordings (%d / %d frames)",
        data.description,
        len(data.train),
        len(data.test),
        sum(r.num_frames for r in data.train),
        sum(r.num_frames for r in data.test),
    )
    methods: dict[str, _Method] = {}
    if "authors" in recognizers:
        methods.update(_run_authors(config, data, workdir, progress))
    if "detector" in recognizers:
        methods.update(_run_detector(config, data, workdir, progress))
    return write_outputs(config, workdir, data, methods)


def _report_markdown(data, methods: dict[str, _Method], reports: dict, threshold: float) -> str:
    """``results.md``: the recognition tables, the decoding times and the published figures."""
    named = {methods[k].name: r for k, r in reports.items()}
    note = (
        f"Data: {data.description}, test participants {[r.subject for r in data.test]}, "
        f"{sum(len(r.segments) for r in data.test)} ground-truth MGs; IoU > {threshold}. "
        "Rec = found / ground truth, Prec = found / predicted (the paper's 'Acc')."
    )
    if data.synthetic:
        note += " SYNTHETIC data: these are not SMG results."
    published = "\n".join(
        f"| {name} | {r:.3f} | {a:.3f} | {f:.3f} |" for name, (r, a, f) in PUBLISHED.items()
    )
    speed_rows = "\n".join(
        f"| {m.name} | {m.rows} | {m.network_seconds:.2f} | "
        + (
            f"{m.viterbi_seconds:.3f} | {m.speed()['viterbi_rows_per_second']:.0f} |"
            if m.viterbi_seconds
            else "- | - |"
        )
        for m in methods.values()
    )
    return "\n\n".join(
        [
            format_online_table(
                named, title=f"Online MG recognition ({data.description})", note=note
            ),
            "### Per test recording\n\n" + format_per_recording_table(named),
            "### Per-class recall, one-to-one (authors' rule)\n\n" + format_per_class_table(named),
            "### Decoding time (seconds, all test recordings; Viterbi compiled beforehand)\n\n"
            "| method | rows decoded | network + features | Viterbi | Viterbi rows/s |\n"
            "| --- | ---: | ---: | ---: | ---: |\n" + speed_rows,
            "### Published on the real SMG test set (authors' rule; for reference)\n\n"
            "| method | Rec | Acc | F1 |\n| --- | ---: | ---: | ---: |\n" + published,
        ]
    )


def _write_timelines(workdir: pathlib.Path, data, methods: dict[str, _Method]) -> None:
    for recording in data.test:
        plots.plot_timeline(
            workdir / "timelines" / f"{recording.name}.png",
            title=f"{recording.name} ({data.description})",
            num_frames=recording.num_frames,
            ground_truth=recording.segments,
            predictions={m.name: m.predictions[recording.name] for m in methods.values()},
            class_names=data.class_names,
        )


def _write_tensorboard(workdir: pathlib.Path, reports: dict) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(workdir / "tensorboard"))
    for key, report in reports.items():
        for rule, scores in report["pooled"].items():
            for metric in ("recall", "precision", "f1"):
                writer.add_scalar(f"{key}/{rule}/{metric}", scores[metric], 0)
    writer.close()


def write_outputs(config, workdir: pathlib.Path, data, methods: dict[str, _Method]) -> dict:
    """CSV files, timelines, the reports (JSON + Markdown) and TensorBoard summaries."""
    ground_truth = {r.name: r.segments for r in data.test}
    threshold = float(config.eval.iou_threshold)
    reports = {}
    for key, method in methods.items():
        reports[key] = online_report(
            ground_truth,
            method.predictions,
            iou_threshold=threshold,
            num_classes=len(data.class_names),
            class_names=data.class_names,
        )
        for name, segments in method.predictions.items():
            write_csv(workdir / "predictions" / key / f"{name}.csv", segments)
    if config.eval.timelines:
        _write_timelines(workdir, data, methods)
    (workdir / "results.md").write_text(_report_markdown(data, methods, reports, threshold) + "\n")
    results = {
        "data": data.description,
        "synthetic": data.synthetic,
        "test_recordings": [r.name for r in data.test],
        "iou_threshold": threshold,
        "methods": {
            key: {"name": methods[key].name, "speed": methods[key].speed(), "report": reports[key]}
            for key in methods
        },
        "published_smg_authors_rule": {
            k: dict(zip(("recall", "precision", "f1"), v, strict=True))
            for k, v in PUBLISHED.items()
        },
        "config": json.loads(config.to_json_best_effort()),
    }
    metrics.write_json(results, workdir / "results.json")
    if config.eval.tensorboard:
        _write_tensorboard(workdir, reports)
    return results


def summarize(results: dict[str, Any], workdir: str | pathlib.Path) -> list[str]:
    """Lines that tell a person what happened and where the outputs are."""
    workdir = pathlib.Path(workdir)
    return [
        (workdir / "results.md").read_text(),
        f"Predictions (label,start,end; label 1-17): {workdir / 'predictions'}/<method>/",
        f"Timelines: {workdir / 'timelines'}/",
        f"TensorBoard: tensorboard --logdir {workdir}",
    ]
