"""The authors' online recognizer alone: HMM + emission network, exactly as their code runs it.

    python -m experiments.online --config=experiments/configs/online_authors.py \\
        --workdir=runs/online_authors --config.data.manual_dir=/path/to/SMG

Config arguments (after a colon, comma-separated) change it:
``corrected`` turns on every correction of their code
(``--config=experiments/configs/online_authors.py:corrected``), ``att_bigru`` uses
the paper's attention BiGRU instead of the released MLP.
"""

from __future__ import annotations

from experiments.configs import online_base

# Every correction of the authors' code, by field (docs/online.md explains each one).
CORRECTIONS = {
    "frames": "zero_based",
    "alignment": "consistent",
    "transitions": "normalized",
    "emission_scores": "scaled_likelihood",
    "rest_frames": "anywhere",
    "segment_rule": "class_runs",
}
ARGUMENTS = ("corrected", "att_bigru")


def apply_arguments(config, arg: str | None):
    """Applies ``corrected`` / ``att_bigru`` (comma-separated) to ``config``."""
    for item in filter(None, (arg or "").split(",")):
        if item == "corrected":
            config.authors.hmm.update(CORRECTIONS)
        elif item == "att_bigru":
            config.authors.network = "att_bigru"
        else:
            raise ValueError(f"Unknown config argument {item!r}; choose from {ARGUMENTS}.")
    return config


def get_config(arg: str | None = None):
    config = online_base.get_config()
    config.recognizers = ("authors",)
    return apply_arguments(config, arg)
