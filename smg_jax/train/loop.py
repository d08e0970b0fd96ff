"""``train_and_evaluate``: the MG classification benchmark from a config to a results table.

Everything a run writes goes under its ``workdir``::

    config.json            the resolved config (a resumed run must match it)
    checkpoints/<step>/    the latest train state + data-iterator position (resume)
    best/<step>/           the state with the best test metric so far
    tensorboard/           event files (loss, lr, norms, eval metrics)
    history.json           one row per evaluation
    test_logits.npz        the final model's test logits, for ensembling
    results.json / .md     the final report, the majority baseline, per-class table
    confusion_matrix.png

A run killed at any moment and started again with the same command restores
the newest whole checkpoint and continues; because the data order, dropout
keys and augmentation draws are functions of the seed and the step, it ends
with the same numbers as an uninterrupted run. SIGTERM (a preempted VM)
saves a checkpoint before exiting.

``train.parallel`` spreads each step over several devices and
``distributed.enabled`` over several hosts (``parallel``, ``distributed``,
docs/scaling.md); every host runs this same function, and only process 0
writes reports, plots, TensorBoard and the progress bar.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from smg_jax import metrics
from smg_jax.data import pipeline, synthetic_source, transforms
from smg_jax.runtime import allocator
from smg_jax.train import distributed, engine, losses, optim, parallel, setup
from smg_jax.train import state as state_lib
from smg_jax.train.errors import ConfigError

log = logging.getLogger(__name__)

SMG_CONFIG = "clips"


# ---------------------------------------------------------------------------
# Data.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Data:
    """The two splits as random-access sources, and what is known about them."""

    train: Sequence[dict[str, Any]]
    test: Sequence[dict[str, Any]]
    train_labels: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    synthetic: bool
    description: str


def _labels_of(source: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.asarray([int(source[i]["label"]) for i in range(len(source))], np.int64)


def load_data(config: ml_collections.ConfigDict) -> Data:
    """Opens (building if needed) the TFDS ``smg/clips`` splits named by ``config.data``."""
    import tensorflow_datasets as tfds

    import tfds_smg  # noqa: F401  (registers 'smg')

    data_config = config.data
    manual_dir = synthetic_source.ensure_raw_data(data_config, ConfigError)
    train = pipeline.load_split(
        data_config.data_dir, SMG_CONFIG, data_config.train_split, manual_dir=manual_dir
    )
    test = pipeline.load_split(
        data_config.data_dir, SMG_CONFIG, data_config.test_split, manual_dir=manual_dir
    )
    builder = tfds.builder(f"smg/{SMG_CONFIG}", data_dir=data_config.data_dir)
    metadata = dict(builder.info.metadata or {})
    class_names = list(builder.info.features["label"].names)
    synthetic = bool(metadata.get("synthetic", False))
    description = (
        f"SYNTHETIC SMG ({(metadata.get('synthetic_marker') or {}).get('scale', '?')} scale)"
        if synthetic
        else "SMG"
    )
    return Data(
        train=train,
        test=test,
        train_labels=_labels_of(train),
        test_labels=_labels_of(test),
        class_names=class_names,
        synthetic=synthetic,
        description=description,
    )


# ---------------------------------------------------------------------------
# The run's pieces.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Recipe:
    """What a classification run builds from its config and data, whichever seed it trains."""

    preset: transforms.Preset
    model: Any
    num_classes: int
    input_shape: tuple[int, ...]
    cadence: engine.Cadence
    schedule: Any
    tx: Any
    loss_fn: Any


def make_recipe(config: ml_collections.ConfigDict, data: Data) -> Recipe:
    """The preset, model, optimizer, loss and durations of a run on ``data``."""
    num_classes = len(data.class_names)
    preset = setup.make_preset(config)
    cadence = setup.make_cadence(config, len(data.train), max(1, int(config.eval.every_epochs)))
    schedule = optim.make_schedule(config, cadence.steps_per_epoch, int(config.train.epochs))
    class_counts = np.bincount(data.train_labels, minlength=num_classes)
    num_joints = len(preset.layout.joint_names)
    return Recipe(
        preset=preset,
        model=setup.make_model(config, num_classes),
        num_classes=num_classes,
        input_shape=(1, int(config.model.get("num_persons", 1)), *preset.output_shape(num_joints)),
        cadence=cadence,
        schedule=schedule,
        tx=optim.make_optimizer(config, schedule),
        loss_fn=losses.make_loss(config, class_counts=class_counts),
    )


def test_evaluator(config, data: Data, preset, eval_fn, placement=parallel.SINGLE_DEVICE):
    """The evaluator of the test split: every member's logits (``(N, S, K)`` when stacked)."""

    def evaluate(state, members: Sequence[engine.Member]) -> list[engine.Evaluation]:
        logits = setup.predict(
            eval_fn,
            state,
            data.test,
            preset,
            int(config.eval.batch_size),
            int(config.data.num_threads),
            placement,
        )
        found = []
        for member in members:
            own = logits if member.index is None else logits[:, member.index]
            report = metrics.classification_report(own, data.test_labels, data.class_names)
            scores = {k: report[k] for k in ("top1", "top5", "mean_class_accuracy")}
            summary = (
                f"test top-1 {100 * report['top1']:.2f} %, top-5 {100 * report['top5']:.2f} %, "
                f"mean class {100 * report['mean_class_accuracy']:.2f} %"
            )
            found.append(
                engine.Evaluation(
                    metrics=scores,
                    scalars={f"test/{k}": v for k, v in scores.items()},
                    summary=summary,
                    outputs={"logits": own, "report": report},
                )
            )
        return found

    return evaluate


# ---------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Trains ``config.model`` on SMG's cross-subject train split and evaluates on test.

    Returns the final report (also written to ``workdir/results.json``).
    """
    distributed.initialize(config)  # before anything touches a device
    placement = parallel.make_placement(config)
    primary = placement.is_primary
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    setup.check_resume_config(workdir, config, write=primary)
    if placement.process_count > 1:
        # Process 0 builds the TFDS dataset (or synthetic data) if needed while the others
        # wait, so that hosts sharing a data_dir do not build it at the same time.
        if primary:
            load_data(config)
        multihost_utils.sync_global_devices("smg_jax: data ready")
    data = load_data(config)
    recipe = make_recipe(config, data)
    tc = config.train
    fresh = setup.fresh_state(
        config, recipe.model, recipe.num_classes, recipe.input_shape, int(tc.seed), recipe.tx
    )
    num_params = state_lib.count_params(fresh.params)
    train_state = placement.put_state(fresh)

    member = setup.make_member(config, workdir, config.eval.best_metric, primary)
    step = 0
    restored = member.restore(placement.checkpoint_state(train_state))
    if restored is not None:
        step = int(restored.step)
        train_state = placement.put_state(restored)
        log.info("Resumed from %s at step %d", member.latest.directory, step)

    train_step, eval_fn = parallel.make_steps(
        placement,
        parallel.training_model(recipe.model, config),
        tx=recipe.tx,
        loss_fn=recipe.loss_fn,
        schedule=recipe.schedule,
        accum_steps=int(tc.accum_steps),
        model_name=config.model.name,
    )
    # Every host draws the same global batches and reads only its slice of each.
    member.iterator = pipeline.train_iterator(
        data.train,
        recipe.preset,
        batch_size=recipe.cadence.batch_size,
        seed=int(tc.seed),
        num_threads=int(config.data.num_threads),
        state=member.record.data,
        slice_index=placement.process_index,
        slice_count=placement.process_count,
        micro_batches=int(tc.accum_steps),
    )
    _log_start(config, data, recipe, num_params, describe(placement))
    trainer = engine.Engine(
        train_step=train_step,
        next_batch=lambda: placement.put_train_batch(next(member.iterator)),
        members=[member],
        cadence=recipe.cadence,
        evaluator=test_evaluator(config, data, recipe.preset, eval_fn, placement),
        checkpoint_state=lambda state, _: placement.checkpoint_state(state),
        best_metric=config.eval.best_metric,
        description=f"train {config.model.name}",
        progress_bar=bool(tc.progress_bar),
        primary=primary,
    )
    train_state, step = trainer.run(train_state, step)
    (final,) = trainer.finish(train_state, step)
    return write_results(
        config, workdir, data, final.outputs, member.record, num_params, recipe.preset, primary
    )


def _log_start(config, data: Data, recipe: Recipe, num_params: int, where: str) -> None:
    log.info(
        "%s: %d train / %d test clips; model %s (%s parameters); %d steps of batch %d "
        "(%d per epoch); %s",
        data.description,
        len(data.train),
        len(data.test),
        config.model.name,
        f"{num_params:,}",
        recipe.cadence.total_steps,
        recipe.cadence.batch_size,
        recipe.cadence.steps_per_epoch,
        where,
    )
    if jax.default_backend() == "cpu" and allocator.in_use() == "system":
        log.info(
            "Training on CPU with the C library's malloc, which faults XLA's step buffers "
            "in again at every step; --host_allocator=tcmalloc (or hugepages) trained "
            "2s-AGCN about 15%% faster here (docs/performance.md)."
        )


def describe(placement: parallel.Placement) -> str:
    """``"1 device"``, ``"pmap over 8 devices (2 hosts x 4)"``, ...: for the log."""
    if placement.mode == "none":
        return "1 device"
    hosts = placement.process_count
    where = f" ({hosts} hosts x {len(placement.local_devices)})" if hosts > 1 else ""
    return f"{placement.mode} over {placement.num_devices} devices{where}"


def write_results(
    config,
    workdir: pathlib.Path,
    data: Data,
    final: dict[str, Any],
    record: engine.RunRecord,
    num_params: int,
    preset: transforms.Preset,
    write: bool = True,
) -> dict:
    """Writes a run's report files (see the module docstring) and returns ``results.json``'s dict.

    ``final`` holds the final model's test ``logits`` and ``report``; ``record``
    the run's history, best evaluation and train time. ``write=False`` (hosts
    other than process 0) only returns the dict.
    """
    report = final["report"]
    baseline = metrics.majority_baseline(data.train_labels, data.test_labels, len(data.class_names))
    results = {
        "model": config.model.name,
        "stream": preset.stream,
        "preset": config.data.preset,
        "data": data.description,
        "synthetic": data.synthetic,
        "num_params": num_params,
        # Training clips per second of train-step time, over all devices and hosts (None
        # when no step was timed).
        "train_clips_per_second": record.clips_per_second(int(config.train.batch_size)),
        "final": report,
        "majority_baseline": baseline,
        "best_test_epoch": record.best,
        "history": record.history,
    }
    if not write:
        return results
    label = f"{config.model.name} ({config.data.preset} preset, {preset.stream} stream)"
    rows = {label: report, "majority class (always the most frequent train class)": baseline}
    note = (
        f"Data: {data.description}; {len(data.test)} test clips, each counted once. "
        "Final-epoch model; the best test epoch (selected on test, so optimistic, as the "
        "PyTorch repositories print it) is in results.json."
    )
    if data.synthetic:
        note += " SYNTHETIC data: these are not SMG results."
    table = metrics.format_report_table(
        rows, title=f"MG classification, cross-subject ({data.description})", note=note
    )
    per_class = metrics.format_per_class_table(report)
    (workdir / "results.md").write_text(f"{table}\n\n### Per class\n\n{per_class}\n")
    png = metrics.plot_confusion_matrix(
        report,
        workdir / "confusion_matrix.png",
        title=f"{config.model.name} on {data.description} test",
    )
    sample_ids = [_example_name(data.test[i]) for i in range(len(data.test))]
    np.savez(
        workdir / "test_logits.npz",
        logits=final["logits"],
        labels=data.test_labels,
        names=np.asarray(sample_ids),
        class_names=np.asarray(data.class_names),
    )
    metrics.write_json(results, workdir / "results.json")
    metrics.write_json({"history": record.history}, workdir / "history.json")
    log.info("Results: %s, %s, %s", workdir / "results.md", workdir / "results.json", png)
    return results


def _example_name(example: dict[str, Any]) -> str:
    """``Sample0036:12``: the recording and the row of its label file."""
    sample = example.get("sample_id", "")
    sample = sample.decode() if isinstance(sample, bytes) else str(sample)
    return f"{sample}:{int(example.get('segment_index', -1))}"


def summarize(results: dict, workdir: str | pathlib.Path) -> Iterator[str]:
    """Lines that tell a person what happened and where the outputs are."""
    workdir = pathlib.Path(workdir)
    yield (workdir / "results.md").read_text()
    yield f"Confusion matrix: {workdir / 'confusion_matrix.png'}"
    yield f"Checkpoints: {workdir / 'checkpoints'} (latest), {workdir / 'best'} (best test)"
    yield f"TensorBoard: tensorboard --logdir {workdir / 'tensorboard'}"
