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
starts without compiling them again.
"""

from __future__ import annotations

import logging
import os

# TensorFlow (used by TFDS for I/O only) must not claim the accelerators JAX uses.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from experiments import allocator_flag
from smg_jax.train import distributed, loop, runtime

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and results.")
_CACHE = flags.DEFINE_string(
    "compilation_cache",
    "auto",
    "JAX persistent compilation cache: a folder, 'auto' (<workdir>/jax_cache) or '' (off). "
    "A resumed run loads its compiled steps from it instead of compiling them again.",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    allocator_flag.apply()
    # Our progress at INFO; the libraries' (orbax, TFDS) chatter only from WARNING up.
    absl_logging.set_verbosity(absl_logging.WARNING)
    # Multi-host: start the runtime first, so that only process 0 logs and prints.
    distributed.initialize(_CONFIG.value)
    runtime.use_compilation_cache(_CACHE.value, _WORKDIR.value)
    primary = jax.process_index() == 0
    for name in ("smg_jax", "tfds_smg", "experiments"):
        logging.getLogger(name).setLevel(logging.INFO if primary else logging.WARNING)
    results = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    if primary:
        for line in loop.summarize(results, _WORKDIR.value):
            print(line)


if __name__ == "__main__":
    app.run(main)
