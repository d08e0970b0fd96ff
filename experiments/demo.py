"""The main job (``make demo``): synthetic SMG -> TFDS -> train ST-GCN -> evaluate -> table.

    python -m experiments.demo                              # synthetic SMG, a few CPU minutes
    python -m experiments.demo --manual_dir /path/to/SMG    # the same on the real data

Without ``--manual_dir`` it writes a small synthetic SMG into ``data/synthetic_raw``
(once), builds the TFDS ``smg/clips`` dataset into ``data/tfds``, trains the
small ST-GCN of ``experiments/configs/demo.py``, evaluates on the test
subjects (36-40) and prints the result table beside the majority-class
baseline. Run it again to resume or, once finished, to print the table again.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import logging as absl_logging

from experiments.configs import demo as demo_config
from smg_jax import runtime
from smg_jax.train import loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/demo", help="run folder (default runs/demo)")
    parser.add_argument(
        "--manual_dir", default=None, help="a real SMG folder; default: a synthetic one"
    )
    parser.add_argument("--data_dir", default="data/tfds", help="TFDS data_dir")
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    args = parser.parse_args(argv)

    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("smg_jax", "tfds_smg", "experiments"):
        logging.getLogger(name).setLevel(logging.INFO)

    config = demo_config.get_config()
    config.data.data_dir = args.data_dir
    if args.manual_dir:
        config.data.manual_dir = args.manual_dir
        config.data.synthetic_scale = None
        if args.data_dir == "data/tfds":
            # Never mix real and synthetic builds in one TFDS data_dir.
            config.data.data_dir = "data/tfds_real"
    if args.epochs is not None:
        config.train.epochs = args.epochs
    runtime.setup(config.runtime, args.workdir)
    try:
        results = loop.train_and_evaluate(config, args.workdir)
    except (loop.ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in loop.summarize(results, args.workdir):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
