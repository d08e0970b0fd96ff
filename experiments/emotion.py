"""Emotional stress state recognition (relaxed vs stressed) under a subject-independent protocol.

    python -m experiments.emotion --config=experiments/configs/emotion_mg_gt.py \\
        --workdir=runs/emotion_mg_gt --config.data.manual_dir=/path/to/SMG
    python -m experiments.emotion --config=experiments/configs/emotion_windows.py:synthetic \\
        --workdir=runs/emotion_windows_cv --config.protocol.name=cv

Run the same command again to resume an interrupted run. Compare finished runs:

    python -m experiments.emotion --collect=runs/emotion_mg_gt,runs/emotion_windows \\
        --workdir=runs/emotion_summary

See docs/emotion.md.
"""

from __future__ import annotations

import os
import pathlib

# TensorFlow (used by TFDS for I/O only) must not claim the accelerators JAX uses.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags
from ml_collections import config_flags

from experiments import runtime_flags
from smg_jax import metrics
from smg_jax.emotion import report, run
from smg_jax.online import recognizers

_CONFIG = config_flags.DEFINE_config_file("config", None, "Emotion config file (:arg allowed).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and results.")
_COLLECT = flags.DEFINE_list(
    "collect", None, "Finished runs' workdirs: write their comparison table to --workdir instead."
)
flags.mark_flags_as_required(["workdir"])
flags.adopt_module_key_flags(runtime_flags)  # --host_allocator, --compilation_cache in --help


def _train_recognizer(config) -> recognizers.Train | None:
    """The online recognizer the MG-based method trains per fold, when it trains one."""
    if config.method != "mg_features" or config.mg.source != "recognizer":
        return None
    return recognizers.trainer(config.online, config.mg.recognizer)


def main(argv: list[str]) -> None:
    runtime_flags.start(argv, _CONFIG.value, _WORKDIR.value)
    if _COLLECT.value:
        text, data = report.collect(_COLLECT.value)
        out = pathlib.Path(_WORKDIR.value)
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.md").write_text(text)
        metrics.write_json(data, out / "comparison.json")
        print(text)
        print(f"Written: {out / 'comparison.md'}, {out / 'comparison.json'}")
        return
    if _CONFIG.value is None:
        raise app.UsageError("--config is required (or --collect to compare finished runs).")
    config = _CONFIG.value
    results = run.run(config, _WORKDIR.value, train_recognizer=_train_recognizer(config))
    for line in run.summarize(results, _WORKDIR.value):
        print(line)


if __name__ == "__main__":
    app.run(main)
