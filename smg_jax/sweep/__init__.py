"""Ablation sweeps: variants of one config, several seeds each, one table and one plot.

A *variant* is a set of config-field overrides (``{"model.strategy":
"uniform"}``); a sweep trains every variant with every seed through the same
``loop.train_and_evaluate`` and summarises the finished runs: mean and
standard deviation over seeds of top-1, top-5 and mean class accuracy, the
parameter count, the training throughput and each variant's difference to a
baseline variant. Variants come from a grid (``--sweep=FIELD=V1,V2``, one
axis per flag, every combination) or from a study file that names them.

Layout of a sweep's workdir::

    sweep.json                      the plan: variants, overrides, seeds, baseline
    <variant>/seed_<s>/             one train_and_evaluate workdir per run
        results.json ...            as the loop writes them (resumable, skipped once there)
        error.txt                   the traceback of a run that failed
    <fusion>/seed_<s>/fusion.json   score fusions of finished variants (study files)
    ablation.md / .csv / .json      the table (Markdown, CSV, everything)
    ablation.png                    bars with error bars (standard deviation over seeds)

Started again, a sweep skips finished runs, resumes interrupted ones from
their checkpoints and retries failed ones. Every field name and value is
checked before the first run: a mistyped field stops the sweep with the
closest real field names.

``plan`` checks and runs the variants; ``runs`` reads what each run folder
holds (a run record: finished with its results, failed, or missing) and
computes the score fusions; ``report`` turns the records into the table and
the plot, knowing nothing of the plan.

Nothing here imports ``experiments``; ``experiments/sweep.py`` is the
command line and ``experiments/studies/*.py`` hold the ready-made studies.
"""

from smg_jax.sweep.fields import (
    ALIASES,
    SweepError,
    apply_overrides,
    field_paths,
    folder_name,
    parse_sweep,
    parse_value,
    resolve_field,
    split_values,
)
from smg_jax.sweep.plan import (
    Fusion,
    Job,
    Plan,
    Study,
    Variant,
    check_workdirs,
    collect_runs,
    execute,
    load_study,
    make_plan,
    pending_jobs,
    run_sweep,
    smoke_overrides,
    summarize,
)
from smg_jax.sweep.report import (
    METRICS,
    format_markdown,
    plot_summary,
    summarize_runs,
    write_csv,
    write_report,
)
from smg_jax.sweep.runs import RowRuns, SweepRuns, is_finished, read_run

__all__ = [
    "ALIASES",
    "METRICS",
    "Fusion",
    "Job",
    "Plan",
    "RowRuns",
    "Study",
    "SweepError",
    "SweepRuns",
    "Variant",
    "apply_overrides",
    "check_workdirs",
    "collect_runs",
    "execute",
    "field_paths",
    "folder_name",
    "format_markdown",
    "is_finished",
    "load_study",
    "make_plan",
    "parse_sweep",
    "parse_value",
    "pending_jobs",
    "plot_summary",
    "read_run",
    "resolve_field",
    "run_sweep",
    "smoke_overrides",
    "split_values",
    "summarize",
    "summarize_runs",
    "write_csv",
    "write_report",
]
