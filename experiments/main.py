"""Train and evaluate one model on SMG's cross-subject split.

    python -m experiments.main --config=experiments/configs/stgcn.py --workdir=runs/stgcn \\
        --config.data.manual_dir=/path/to/SMG

Run the same command again to resume an interrupted run; see README.md.
On several GPUs add ``--config.train.parallel=mesh``; on a Cloud TPU pod or
several nodes run the same command on every host with
``--config.distributed.enabled=True`` as well (docs/scaling.md). On CPU,
``--host_allocator=tcmalloc`` restarts the program under tcmalloc, which
trains faster than glibc's malloc (docs/performance.md). Compiled steps are
kept in ``<workdir>/jax_cache`` (``--compilation_cache``), so a resumed run
starts without compiling them again. Both are aliases of the config's
``runtime`` section (``smg_jax.runtime.profile``), which this program applies
first.
"""

from __future__ import annotations

import logging
import os

# TensorFlow (used by TFDS for I/O only) must not claim the accelerators JAX uses.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax
from absl import app, flags
from ml_collections import config_flags

from experiments import runtime_flags
from smg_jax.train import distributed, loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and results.")
flags.mark_flags_as_required(["config", "workdir"])
flags.adopt_module_key_flags(runtime_flags)  # --host_allocator, --compilation_cache in --help


def main(argv: list[str]) -> None:
    runtime_flags.start(argv, _CONFIG.value, _WORKDIR.value)  # starts no JAX backend
    # Multi-host: start the runtime first, so that only process 0 logs and prints.
    distributed.initialize(_CONFIG.value)
    if jax.process_index() != 0:
        for name in runtime_flags.OUR_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    results = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    if jax.process_index() == 0:
        for line in loop.summarize(results, _WORKDIR.value):
            print(line)


if __name__ == "__main__":
    app.run(main)
