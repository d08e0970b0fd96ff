"""Ablations: train variants of one config with several seeds; write one table and one plot.

    # A grid: every combination of the --sweep axes, 3 seeds each.
    python -m experiments.sweep --config=experiments/configs/stgcn.py \\
        --sweep="model.strategy=uniform,distance,spatial" \\
        --sweep="data.preset=authors,resample" --seeds=3 --workdir=runs/ablations/grid \\
        --config.data.manual_dir=/path/to/SMG

    # A study file: named variants (and fusions) where a grid does not fit.
    python -m experiments.sweep --config=experiments/configs/stgcn.py \\
        --study=experiments/studies/stgcn_partition.py --seeds=3 --vmap_seeds \\
        --workdir=runs/ablations/partition --config.data.manual_dir=/path/to/SMG

    # The same in the tests' small form on a tiny synthetic SMG (a few minutes on a CPU).
    python -m experiments.sweep --config=experiments/configs/stgcn.py \\
        --study=experiments/studies/stgcn_partition.py --seeds=2 --smoke --workdir=/tmp/abl

``--config.x=y`` overrides apply to every run. Run the same command again to
skip finished runs, resume interrupted ones and retry failed ones. Outputs:
``<workdir>/ablation.{md,csv,json,png}``; see docs/ablations.md.
"""

from __future__ import annotations

import os
import pathlib
import sys

# TensorFlow (used by TFDS for I/O only) must not claim the accelerators JAX uses.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax
from absl import app, flags
from ml_collections import config_flags

from experiments import runtime_flags
from smg_jax import sweep

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Base experiment config; --config.x=y overrides apply to every run."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "The sweep's folder (one sub-folder per run).")
_SWEEP = flags.DEFINE_multi_string(
    "sweep", [], "A grid axis FIELD=V1,V2,... (repeat for more axes; tuples as (32,64))."
)
_STUDY = flags.DEFINE_string("study", None, "A study file, experiments/studies/<name>.py.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Seeds per variant: train.seed, train.seed + 1, ...")
_VMAP = flags.DEFINE_boolean(
    "vmap_seeds", False, "Train a variant's seeds in one program, jax.vmap over the seed axis."
)
_BASELINE = flags.DEFINE_string(
    "baseline", None, "The variant the differences refer to (default: the config's own values)."
)
_SMOKE = flags.DEFINE_boolean(
    "smoke", False, "The tests' small form: tiny synthetic SMG in <workdir>/smoke_data, tiny model."
)
_PER_DEVICE = flags.DEFINE_boolean(
    "one_run_per_device", True, "With several local devices, run one job on each at a time."
)
_DRY_RUN = flags.DEFINE_boolean("dry_run", False, "Check the sweep, list its runs, run nothing.")
flags.mark_flags_as_required(["config", "workdir"])
# --host_allocator and --compilation_cache (seeds of a variant compile the same
# programs; the cache compiles them once) in --help.
flags.adopt_module_key_flags(runtime_flags)


def main(argv: list[str]) -> int:
    workdir = pathlib.Path(_WORKDIR.value)
    # A dry run keeps no compilation cache: it compiles nothing.
    runtime_flags.start(argv, _CONFIG.value, None if _DRY_RUN.value else workdir)
    try:
        study = sweep.load_study(_STUDY.value) if _STUDY.value else None
        plan = sweep.make_plan(
            _CONFIG.value,
            workdir,
            sweeps=_SWEEP.value,
            study=study,
            seeds=_SEEDS.value,
            baseline=_BASELINE.value,
            smoke=_SMOKE.value,
            keep=list(flags.FLAGS["config"].override_values),
        )
        if _DRY_RUN.value:
            sweep.check_workdirs(plan)
            for variant in plan.variants:
                for seed in plan.seeds:
                    run_dir = plan.run_dir(variant, seed)
                    state = "finished" if sweep.is_finished(run_dir) else "to run"
                    print(f"{variant.name:40s} seed {seed}: {state:8s} {run_dir}")
            print(f"baseline: {plan.baseline}")
            return 0
        devices = jax.local_devices() if _PER_DEVICE.value else None
        summary = sweep.run_sweep(plan, vmap_seeds=_VMAP.value, devices=devices)
    except sweep.SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(sweep.format_markdown(summary))
    print(f"\nTable: {workdir / 'ablation.md'}, {workdir / 'ablation.csv'}")
    print(f"Plot: {workdir / 'ablation.png'}")
    return 0


if __name__ == "__main__":
    app.run(main)  # exits with main's return value
