"""Online MG recognition: train the recognizers, decode the test recordings, write the tables.

    python -m experiments.online --config=experiments/configs/online_base.py \\
        --workdir=runs/online --config.data.manual_dir=/path/to/SMG

Run the same command again to resume an interrupted run; see docs/online.md.
"""

from __future__ import annotations

import os

# TensorFlow (used by TFDS for I/O only) must not claim the accelerators JAX uses.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags
from ml_collections import config_flags

from experiments import runtime_flags
from smg_jax.online import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Online-recognition config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and results.")
flags.mark_flags_as_required(["config", "workdir"])
flags.adopt_module_key_flags(runtime_flags)  # --host_allocator, --compilation_cache in --help


def main(argv: list[str]) -> None:
    runtime_flags.start(argv, _CONFIG.value, _WORKDIR.value)
    results = loop.run(_CONFIG.value, _WORKDIR.value)
    for line in loop.summarize(results, _WORKDIR.value):
        print(line)


if __name__ == "__main__":
    app.run(main)
