"""Sweep plans (variants x seeds, checked before anything runs) and running them."""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import dataclasses
import importlib.util
import itertools
import json
import logging
import pathlib
import queue
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections

from smg_jax import ensemble, metrics
from smg_jax.sweep import report, runs
from smg_jax.sweep.fields import (
    SweepError,
    apply_overrides,
    coerce_value,
    field_type,
    folder_name,
    format_value,
    parse_sweep,
    resolve_field,
)
from smg_jax.train import loop, multiseed, setup

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Variants, studies, plans.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
    """One point of a sweep: a name and the config overrides it makes."""

    name: str
    overrides: dict[str, Any]

    @property
    def folder(self) -> str:
        return folder_name(self.name)

    def describe(self) -> str:
        """``model.strategy=uniform, data.preset=authors`` (or ``config as given``)."""
        items = [f"{k}={format_value(v)}" for k, v in self.overrides.items()]
        return ", ".join(items) or "config as given"


@dataclasses.dataclass(frozen=True)
class Fusion:
    """A score fusion of finished variants, per seed (``smg_jax.ensemble.fuse``).

    ``weights`` default to the published ones for 2 and 4 streams.
    """

    name: str
    variants: tuple[str, ...]
    weights: tuple[float, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Study:
    """What a study file's ``get_study()`` returns.

    Attributes:
      name: short name (the table's title).
      description: the question the study answers, in a sentence or two.
      variants: ``{variant name: {field: value}}``; an empty dict is the
        config as given. Values are Python values or strings to parse.
      grid: ``{field: [values]}``, every combination added after ``variants``.
      baseline: the variant the differences refer to (default: the variant
        with the config's own values, else the first).
      fusions: score fusions of variants, reported as extra rows.
    """

    name: str
    description: str = ""
    variants: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    baseline: str | None = None
    fusions: Sequence[Fusion] = ()


def load_study(path: str | pathlib.Path) -> Study:
    """Imports a study file and returns its ``get_study()``."""
    file = pathlib.Path(path)
    if not file.is_file():
        here = file.parent if file.parent.is_dir() else pathlib.Path(".")
        others = sorted(p.name for p in here.glob("*.py") if p.name != "__init__.py")
        raise SweepError(f"Study file {file} does not exist; study files in {here}: {others}.")
    spec = importlib.util.spec_from_file_location(f"smg_study_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_study"):
        raise SweepError(f"{file} defines no get_study() returning smg_jax.sweep.Study.")
    study = module.get_study()
    if not isinstance(study, Study):
        raise SweepError(f"{file}: get_study() returned {type(study).__name__}, not a Study.")
    return study


def _grid_variants(config: ml_collections.ConfigDict, axes: list[tuple[str, list[Any]]]):
    leaves = [path.rsplit(".", 1)[-1] for path, _ in axes]
    # The short field name when it is unambiguous in this grid: strategy=uniform.
    labels = [
        leaf if leaves.count(leaf) == 1 else path
        for leaf, (path, _) in zip(leaves, axes, strict=True)
    ]
    variants = []
    for values in itertools.product(*(vals for _, vals in axes)):
        overrides = {path: v for (path, _), v in zip(axes, values, strict=True)}
        name = ",".join(f"{lab}={format_value(v)}" for lab, v in zip(labels, values, strict=True))
        variants.append(Variant(name, overrides))
    return variants


def _typed_overrides(config, overrides: Mapping[str, Any]) -> dict[str, Any]:
    typed = {}
    for field, value in overrides.items():
        path = resolve_field(config, field)
        typed[path] = coerce_value(value, field_type(config, path), path)
    return typed


def smoke_overrides(config: ml_collections.ConfigDict, data_root: str | pathlib.Path) -> dict:
    """The tests' small form: a tiny synthetic SMG, a two-block model, two short epochs.

    The synthetic data is written once into ``data_root`` (``raw/`` and ``tfds/``).
    """
    root = pathlib.Path(data_root)
    overrides: dict[str, Any] = {
        "data.manual_dir": str(root / "raw"),
        "data.data_dir": str(root / "tfds"),
        "data.synthetic_scale": "tiny",
        "data.num_frames": 16,
        "data.num_threads": 0,
        "train.epochs": 2,
        "train.batch_size": 16,
        "train.accum_steps": 1,
        "train.max_steps": None,
        "train.checkpoint_every_steps": 0,
        "train.log_every_steps": 2,
        "train.progress_bar": False,
        "train.tensorboard": False,
        "schedule.milestones": (1,),
        "schedule.warmup_epochs": 0,
        "eval.batch_size": 32,
        "eval.every_epochs": 1,
        "init.checkpoint": None,
    }
    model = config.model
    if "channels" in model and "strides" in model:
        # MS-G3D splits each width into len(tcn_dilations) + 2 = 6 temporal branches.
        overrides["model.channels"] = (12, 24) if model.name == "msg3d" else (8, 16)
        overrides["model.strides"] = (1, 2)
    if "cells" in model:  # GCN-NAS: one searched cell per block
        overrides["model.cells"] = tuple(model.cells[:2])
    return overrides


@dataclasses.dataclass
class Plan:
    """Everything a sweep will run, checked: the base config, variants, seeds, baseline."""

    config: ml_collections.ConfigDict
    workdir: pathlib.Path
    variants: list[Variant]
    seeds: list[int]
    baseline: str
    title: str
    description: str = ""
    fusions: list[Fusion] = dataclasses.field(default_factory=list)
    named: bool = False  # variants named by a study (not generated from their overrides)

    def run_dir(self, variant: Variant, seed: int) -> pathlib.Path:
        """``<workdir>/<variant folder>/seed_<seed>``: a ``train_and_evaluate`` workdir."""
        return self.workdir / variant.folder / f"seed_{seed}"

    def run_config(self, variant: Variant, seed: int) -> ml_collections.ConfigDict:
        """The base config with the variant's overrides and ``train.seed = seed``."""
        return apply_overrides(self.config, {**variant.overrides, "train.seed": int(seed)})

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "description": self.description,
            "seeds": self.seeds,
            "baseline": self.baseline,
            "named": self.named,
            "variants": [
                {"name": v.name, "folder": v.folder, "overrides": v.overrides}
                for v in self.variants
            ],
            "fusions": [dataclasses.asdict(f) for f in self.fusions],
            "config": json.loads(self.config.to_json_best_effort()),
        }


def make_plan(
    config: ml_collections.ConfigDict,
    workdir: str | pathlib.Path,
    *,
    sweeps: Sequence[str] = (),
    study: Study | None = None,
    seeds: int = 1,
    baseline: str | None = None,
    smoke: bool = False,
    keep: Sequence[str] = (),
) -> Plan:
    """Checks and expands a sweep; raises ``SweepError`` before anything runs.

    Args:
      config: the base config (with any command-line overrides applied).
      workdir: the sweep's folder.
      sweeps: grid axes ``"FIELD=V1,V2,..."``; every combination is a variant.
      study: named variants, grid and fusions (see ``Study``).
      seeds: runs per variant, seeds ``train.seed, train.seed + 1, ...``.
      baseline: the variant the differences refer to (default: see ``Study``).
      smoke: shrink to the tests' small form on a tiny synthetic SMG written
        into ``workdir/smoke_data`` (see ``smoke_overrides``).
      keep: fields set on the command line, which ``smoke`` leaves alone.
    """
    workdir = pathlib.Path(workdir)
    base = copy.deepcopy(config)
    if smoke:
        shrink = smoke_overrides(base, workdir / "smoke_data")
        base = apply_overrides(base, {k: v for k, v in shrink.items() if k not in set(keep)})
    if sweeps and study is not None:
        raise SweepError("Give either --sweep axes or a --study file, not both.")
    if seeds < 1:
        raise SweepError(f"--seeds={seeds}: need at least one seed.")
    fusions: list[Fusion] = []
    if study is not None:
        variants = [Variant(n, _typed_overrides(base, o)) for n, o in study.variants.items()]
        axes = [(resolve_field(base, f), list(vals)) for f, vals in study.grid.items()]
        axes = [(p, [coerce_value(v, field_type(base, p), p) for v in vals]) for p, vals in axes]
        variants += _grid_variants(base, axes) if axes else []
        title, description = study.name, study.description
        baseline = baseline or study.baseline
        fusions = list(study.fusions)
    elif sweeps:
        axes = [parse_sweep(base, spec) for spec in sweeps]
        fields = [p for p, _ in axes]
        if len(set(fields)) != len(fields):
            raise SweepError(f"A field appears in two --sweep axes: {fields}.")
        variants = _grid_variants(base, axes)
        title = " × ".join(
            f"{p} ∈ {{{', '.join(format_value(x) for x in vals)}}}" for p, vals in axes
        )
        description = ""
    else:
        variants = [Variant("config", {})]
        title, description = "seeds of one config", ""
    if not variants:
        raise SweepError("The sweep has no variants.")
    _check_names(variants, fusions)
    if baseline is None:
        own = [
            v for v in variants if all(_config_value(base, k) == x for k, x in v.overrides.items())
        ]
        baseline = (own or variants)[0].name
    if baseline not in {v.name for v in variants} | {f.name for f in fusions}:
        raise SweepError(
            f"Baseline {baseline!r} is not a variant; variants: {[v.name for v in variants]}."
        )
    seed_list = [int(base.train.seed) + i for i in range(seeds)]
    plan = Plan(
        base, workdir, variants, seed_list, baseline, title, description, fusions, study is not None
    )
    for variant in variants:  # every run's config is built (and type-checked) up front
        plan.run_config(variant, seed_list[0])
    return plan


def _config_value(config: ml_collections.ConfigDict, path: str) -> Any:
    """The value at a dotted path, lists as tuples (how sweep values are typed)."""
    node = config
    for key in path.split("."):
        node = node[key]
    return tuple(node) if isinstance(node, list) else node


def _check_names(variants: list[Variant], fusions: list[Fusion]) -> None:
    names = [v.name for v in variants] + [f.name for f in fusions]
    folders = [folder_name(n) for n in names]
    for label, items in (("name", names), ("folder", folders)):
        repeated = sorted({x for x in items if items.count(x) > 1})
        if repeated:
            raise SweepError(f"Two variants share the {label} {repeated}; rename one.")
    known = {v.name for v in variants}
    for fusion in fusions:
        missing = [n for n in fusion.variants if n not in known]
        if missing or len(fusion.variants) < 2:
            raise SweepError(
                f"Fusion {fusion.name!r} needs two or more variants of the study; "
                f"unknown: {missing}; variants: {sorted(known)}."
            )
        if fusion.weights is not None and len(fusion.weights) != len(fusion.variants):
            raise SweepError(f"Fusion {fusion.name!r}: one weight per variant.")


def check_workdirs(plan: Plan) -> None:
    """Stops a sweep whose folders hold runs of other configs (a changed base config or
    ``--config.x`` override): their results would be mixed into the table."""
    conflicts = []
    for variant in plan.variants:
        for seed in plan.seeds:
            run_dir = plan.run_dir(variant, seed)
            changed = setup.config_changes(run_dir, plan.run_config(variant, seed))
            if changed:
                conflicts.append(f"{run_dir} ({', '.join(changed[:4])})")
    if conflicts:
        raise SweepError(
            f"{len(conflicts)} run folder(s) hold runs of another config, e.g. {conflicts[:3]}. "
            "Use a new --workdir, or the same config and overrides as before. Nothing was run."
        )


# ---------------------------------------------------------------------------
# Running.
# ---------------------------------------------------------------------------


# loop.train_and_evaluate and multiseed.train_and_evaluate_seeds (tests pass their own).
TrainFn = Callable[[ml_collections.ConfigDict, pathlib.Path], dict]
SeedsFn = Callable[[ml_collections.ConfigDict, Mapping[int, pathlib.Path]], dict]


@dataclasses.dataclass(frozen=True)
class Job:
    """One variant's seeds that run together: one seed, or several in one vmapped program."""

    variant: Variant
    seeds: tuple[int, ...]
    vmapped: bool


def pending_jobs(plan: Plan, vmap_seeds: bool) -> list[Job]:
    """The runs still to do (no ``results.json``), grouped per variant when vmapping."""
    jobs = []
    for variant in plan.variants:
        todo = tuple(s for s in plan.seeds if not runs.is_finished(plan.run_dir(variant, s)))
        if vmap_seeds and len(todo) > 1:
            jobs.append(Job(variant, todo, True))
        else:
            jobs += [Job(variant, (s,), False) for s in todo]
    return jobs


def run_job(plan: Plan, job: Job, train_fn: TrainFn, seeds_fn: SeedsFn) -> None:
    """Runs one job; a failure is written to the run's ``error.txt``, never raised."""
    dirs = {s: plan.run_dir(job.variant, s) for s in job.seeds}
    log.info("Variant %r seeds %s -> %s", job.variant.name, list(job.seeds), dirs[job.seeds[0]])
    try:
        if job.vmapped:
            outcome = seeds_fn(plan.run_config(job.variant, job.seeds[0]), dirs)
        else:
            seed = job.seeds[0]
            outcome = {seed: train_fn(plan.run_config(job.variant, seed), dirs[seed])}
    except Exception as err:  # the sweep goes on; KeyboardInterrupt/SIGTERM still stop it
        outcome = dict.fromkeys(job.seeds, err)
    for seed, result in outcome.items():
        if isinstance(result, BaseException):
            runs.record_failure(dirs[seed], result)
        else:
            runs.record_success(dirs[seed])


def execute(
    jobs: Sequence[Job],
    run: Callable[[Job], None],
    devices: Sequence[Any] | None = None,
) -> None:
    """Runs ``jobs`` in sequence, or one per device at a time when several devices are given.

    Each worker thread pins its job to a free device with
    ``jax.default_device``, so single-device programs spread over the host's
    accelerators.
    """
    if not devices or len(devices) < 2 or len(jobs) < 2:
        for job in jobs:
            run(job)
        return
    free: queue.Queue = queue.Queue()
    for device in devices:
        free.put(device)

    def work(job: Job) -> None:
        device = free.get()
        try:
            with jax.default_device(device):
                run(job)
        finally:
            free.put(device)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(devices)) as pool:
        for future in [pool.submit(work, job) for job in jobs]:
            future.result()


def _fusion_runs(plan: Plan, fusion: Fusion) -> runs.RowRuns:
    """Fuses the component variants' test logits seed by seed; the fusion's row of records."""
    components = [plan.variant(n) for n in fusion.variants]
    folder = folder_name(fusion.name)
    records = {
        seed: runs.fuse_runs(
            fusion.variants,
            [plan.run_dir(v, seed) for v in components],
            fusion.weights,
            plan.workdir / folder / f"seed_{seed}",
            seed,
        )
        for seed in plan.seeds
    }
    weights = fusion.weights or ensemble.FUSION_WEIGHTS.get(len(components))
    text = " + ".join(
        f"{w:g} x {n}" if weights else n
        for n, w in zip(fusion.variants, weights or [None] * len(components), strict=True)
    )
    return runs.RowRuns(fusion.name, folder, "fusion", text, records)


def collect_runs(plan: Plan) -> runs.SweepRuns:
    """The record of every run of ``plan`` (fusions of finished seeds computed and written)."""
    rows = [
        runs.RowRuns(
            variant.name,
            variant.folder,
            "run",
            variant.describe(),
            {s: runs.read_run(plan.run_dir(variant, s)) for s in plan.seeds},
        )
        for variant in plan.variants
    ]
    rows += [_fusion_runs(plan, f) for f in plan.fusions]
    return runs.SweepRuns(
        title=plan.title,
        description=plan.description,
        workdir=plan.workdir,
        seeds=plan.seeds,
        baseline=plan.baseline,
        named_variants=plan.named,
        rows=rows,
    )


def summarize(plan: Plan) -> dict[str, Any]:
    """``report.summarize_runs`` of ``plan``'s run records (see there for the keys)."""
    return report.summarize_runs(collect_runs(plan))


def _prepare_data(plan: Plan) -> None:
    """Builds each dataset once before runs start in parallel (two threads must not both
    write the same TFDS folder). A failure here is left to the runs to record."""
    seen = set()
    for variant in plan.variants:
        config = plan.run_config(variant, plan.seeds[0])
        key = tuple(str(config.data[k]) for k in ("manual_dir", "data_dir", "synthetic_scale"))
        if key not in seen:
            seen.add(key)
            with contextlib.suppress(Exception):
                loop.load_data(config)


def run_sweep(
    plan: Plan,
    *,
    vmap_seeds: bool = False,
    devices: Sequence[Any] | None = None,
    train_fn: TrainFn | None = None,
    seeds_fn: SeedsFn | None = None,
) -> dict[str, Any]:
    """Runs what is left of ``plan`` and writes the table and the plot.

    Args:
      plan: from ``make_plan``.
      vmap_seeds: train a variant's pending seeds in one vmapped program
        (``smg_jax.train.multiseed``).
      devices: run one job per device at a time (``jax.local_devices()``);
        None or one device: in sequence.
      train_fn, seeds_fn: the single-run and multi-seed trainers (default
        ``loop.train_and_evaluate`` and ``multiseed.train_and_evaluate_seeds``).

    Returns:
      The summary (see ``summarize``); also in ``ablation.json``.
    """
    train_fn = train_fn or loop.train_and_evaluate
    seeds_fn = seeds_fn or multiseed.train_and_evaluate_seeds
    check_workdirs(plan)
    plan.workdir.mkdir(parents=True, exist_ok=True)
    metrics.write_json(plan.to_json(), plan.workdir / "sweep.json")
    jobs = pending_jobs(plan, vmap_seeds)
    total = len(plan.variants) * len(plan.seeds)
    pending = sum(len(j.seeds) for j in jobs)
    log.info("%d runs: %d finished before, %d to run", total, total - pending, pending)
    if devices and len(devices) > 1 and len(jobs) > 1:
        _prepare_data(plan)
    execute(jobs, lambda job: run_job(plan, job, train_fn, seeds_fn), devices)
    summary = summarize(plan)
    report.write_report(summary, plan.workdir)
    return summary
