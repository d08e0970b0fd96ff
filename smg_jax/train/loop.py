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
import json
import logging
import pathlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from smg_jax import metrics, models
from smg_jax.data import pipeline, synthetic_source, transforms
from smg_jax.runtime import allocator
from smg_jax.train import checkpoint, distributed, losses, optim, parallel, runtime
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


def make_preset(config: ml_collections.ConfigDict) -> transforms.Preset:
    """The data preset: ``data.preset`` with every non-``None`` preset field of ``data`` applied."""
    fields = {f.name for f in dataclasses.fields(transforms.Preset)} - {"name"}
    options = {}
    for key in fields:
        if key in config.data and config.data[key] is not None:
            value = config.data[key]
            options[key] = None if key == "center_joint" and value == -1 else value
    return transforms.get_preset(config.data.preset, **options)


# ---------------------------------------------------------------------------
# Model and state.
# ---------------------------------------------------------------------------

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def make_model(config: ml_collections.ConfigDict, num_classes: int):
    """The model named by ``config.model.name`` with the other ``model`` fields as overrides."""
    fields = {k: v for k, v in config.model.items() if k != "name"}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    dtype_name = config.train.compute_dtype
    if dtype_name not in COMPUTE_DTYPES:
        raise ConfigError(
            f"train.compute_dtype={dtype_name!r}; choose from {sorted(COMPUTE_DTYPES)}."
        )
    if dtype_name != "float32":
        fields["dtype"] = COMPUTE_DTYPES[dtype_name]
    return models.create(config.model.name, num_classes=num_classes, **fields)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads the authors' PyTorch weights: ``.npz`` (names -> arrays) or ``.pt``/``.pth``."""
    file = pathlib.Path(path)
    if not file.exists():
        raise ConfigError(f"init.checkpoint {file} does not exist.")
    if file.suffix == ".npz":
        with np.load(file) as archive:
            return {k.removeprefix("params/"): archive[k] for k in archive.files}
    try:
        import torch
    except ImportError:
        raise ConfigError(
            f"Reading {file} needs PyTorch (pip install torch), or convert it once to .npz "
            "with {k: v.numpy() for k, v in torch.load(path).items()}."
        ) from None
    loaded = torch.load(file, map_location="cpu", weights_only=True)
    loaded = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    return {k: v.detach().cpu().numpy() for k, v in loaded.items()}


def merge_pretrained(fresh: Any, pretrained: Any) -> tuple[Any, list[str]]:
    """Takes every pretrained leaf whose path and shape match ``fresh``; keeps the rest fresh.

    Returns the merged tree and the paths left at their fresh initialisation
    (the classifier when the class count changes, e.g. NTU's 60 -> SMG's 17).
    """
    flat_pre = {
        jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(pretrained)
    }
    kept = []

    def pick(path, leaf):
        key = jax.tree_util.keystr(path)
        candidate = flat_pre.get(key)
        if candidate is not None and np.shape(candidate) == np.shape(leaf):
            return jnp.asarray(candidate, leaf.dtype)
        kept.append(key)
        return leaf

    return jax.tree_util.tree_map_with_path(pick, fresh), kept


def initial_variables(config, model, num_classes: int, input_shape, rng) -> dict:
    """Fresh variables, or the authors' weights from ``config.init.checkpoint`` with a new head."""
    variables = state_lib.init_variables(model, rng, input_shape)
    if not config.init.checkpoint:
        return variables
    state_dict = load_state_dict(config.init.checkpoint)
    fields = {k: v for k, v in config.model.items() if k != "name"}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    _, pretrained = models.from_torch(
        config.model.name, state_dict, num_classes=int(config.init.num_classes), **fields
    )
    merged, fresh_paths = merge_pretrained(dict(variables), pretrained)
    log.info(
        "Initialised from %s; %d leaves kept fresh (new head): %s",
        config.init.checkpoint,
        len(fresh_paths),
        fresh_paths[:6],
    )
    return merged


# ---------------------------------------------------------------------------
# Evaluation.
# ---------------------------------------------------------------------------


def predict(
    eval_fn,
    train_state,
    source: Sequence[dict[str, Any]],
    preset,
    batch_size: int,
    threads: int,
    placement: parallel.Placement = parallel.SINGLE_DEVICE,
) -> np.ndarray:
    """``(N, K)`` logits for every example of ``source``, in source order, each exactly once.

    With several hosts each evaluates its shard of ``source`` (``batch_size``
    is the global eval batch) and every host gets all the logits.
    """
    outs, indices, masks = [], [], []
    batches = pipeline.eval_iterator(
        source,
        preset,
        batch_size=placement.eval_rows(batch_size),
        shard_index=placement.process_index,
        shard_count=placement.process_count,
        num_threads=threads,
    )
    for batch in batches:
        out = eval_fn(train_state, placement.put_eval_batch({"x": batch["x"]}))
        outs.append(placement.host_rows(out))
        indices.append(batch["index"])
        masks.append(batch["mask"])
    logits_by_index: dict[int, np.ndarray] = {}
    if outs:
        # Every shard yields the same number of batches, so the hosts' arrays line up.
        out, index, mask = placement.gather(
            (np.concatenate(outs), np.concatenate(indices), np.concatenate(masks))
        )
        for row in np.flatnonzero(mask):
            if int(index[row]) in logits_by_index:
                raise RuntimeError(f"Evaluation saw example {int(index[row])} twice.")
            logits_by_index[int(index[row])] = out[row]
    if len(logits_by_index) != len(source):
        raise RuntimeError(
            f"Evaluation produced {len(logits_by_index)} predictions for {len(source)} examples."
        )
    return np.stack([logits_by_index[i] for i in range(len(source))])


# ---------------------------------------------------------------------------
# Logging helpers.
# ---------------------------------------------------------------------------


class Preempted(SystemExit):
    """Raised after a SIGTERM once the checkpoint is safely written."""


def _batch_norm_scope(fields: dict[str, Any]) -> str:
    per_device = fields.get("train.parallel", "none") == "pmap" and not fields.get(
        "train.cross_replica_bn", True
    )
    return "per-device" if per_device else "global batch"


def config_changes(workdir: str | pathlib.Path, config: ml_collections.ConfigDict) -> list[str]:
    """The fields in which ``config`` differs from the run saved in ``workdir`` (sorted).

    Empty when ``workdir`` holds no ``config.json`` yet or the same config.
    Fields that change how a run is watched or cut short, not what it
    computes, are not compared; nor are fields the saved config does not have
    (added to smg-jax after the run started: a warning names them). The
    parallel mode may change (a run started with ``pmap`` on 8 GPUs can go on
    with ``mesh`` or ``none`` on fewer) as long as BatchNorm keeps its scope:
    only ``pmap`` without ``cross_replica_bn`` normalizes per device, and a
    change to or from that is reported as ``train.batch_norm_scope``.
    """
    path = pathlib.Path(workdir) / "config.json"
    if not path.exists():
        return []
    saved = _flatten(json.loads(path.read_text()))
    current = _flatten(json.loads(config.to_json_best_effort()))
    for fields in (saved, current):
        fields["train.batch_norm_scope"] = _batch_norm_scope(fields)
    ignore = {"train.log_every_steps", "train.progress_bar", "train.max_steps", "data.num_threads",
              "train.parallel", "train.cross_replica_bn"}  # fmt: skip
    newer = sorted(set(current) - set(saved))
    if newer:
        log.warning(
            "%s predates the config fields %s; the run continues with their current values.",
            path,
            newer,
        )
    # Which hosts run it (and where the coordinator is), and how the process
    # compiles and allocates (the runtime profile), do not change the numbers.
    return sorted(
        key
        for key in saved
        if key not in ignore
        and not key.startswith(("distributed.", "runtime."))
        and saved.get(key) != current.get(key)
    )


def check_resume_config(
    workdir: pathlib.Path, config: ml_collections.ConfigDict, write: bool = True
) -> None:
    """Refuses a ``workdir`` that holds a run of another config; records the config otherwise.

    ``write=False`` (hosts other than process 0) only checks.
    """
    changed = config_changes(workdir, config)
    if changed:
        raise ConfigError(
            f"{workdir} holds a run with another config (fields differing: {changed[:8]}). "
            "Resume it with the same config, or choose a new --workdir."
        )
    path = workdir / "config.json"
    if write and not path.exists():
        metrics.write_json(json.loads(config.to_json_best_effort()), path)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


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
    check_resume_config(workdir, config, write=primary)
    if placement.process_count > 1:
        # Process 0 builds the TFDS dataset (or synthetic data) if needed while the others
        # wait, so that hosts sharing a data_dir do not build it at the same time.
        if primary:
            load_data(config)
        multihost_utils.sync_global_devices("smg_jax: data ready")
    data = load_data(config)
    num_classes = len(data.class_names)
    preset = make_preset(config)
    model = make_model(config, num_classes)
    tc = config.train

    batch_size = int(tc.batch_size)
    steps_per_epoch = max(1, len(data.train) // batch_size)
    total_steps = int(tc.epochs) * steps_per_epoch
    if tc.max_steps is not None:
        total_steps = min(total_steps, int(tc.max_steps))
    schedule = optim.make_schedule(config, steps_per_epoch, int(tc.epochs))
    tx = optim.make_optimizer(config, schedule)
    class_counts = np.bincount(data.train_labels, minlength=num_classes)
    loss_fn = losses.make_loss(config, class_counts=class_counts)

    rng = jax.random.PRNGKey(int(tc.seed))
    init_rng, state_rng = jax.random.split(rng)
    num_joints = len(preset.layout.joint_names)
    input_shape = (1, int(config.model.get("num_persons", 1)), *preset.output_shape(num_joints))
    variables = initial_variables(config, model, num_classes, input_shape, init_rng)
    train_state = placement.put_state(state_lib.create_train_state(variables, tx, state_rng))
    num_params = state_lib.count_params(variables["params"])

    latest = checkpoint.Checkpointer(workdir / "checkpoints", max_to_keep=int(tc.keep_checkpoints))
    best = checkpoint.Checkpointer(
        workdir / "best", max_to_keep=1, best_metric=config.eval.best_metric
    )
    # Everything besides the state that a resumed run needs to continue identically.
    # "train_time": [steps timed, seconds] of the train steps alone (no eval, no checkpoint,
    # no compilation), summed over the invocations of a resumed run: the throughput.
    meta: dict[str, Any] = {
        "history": [],
        "best": None,
        "data": None,
        "epoch_loss": [0.0, 0],
        "train_time": [0, 0.0],
    }
    step = 0
    restored = latest.restore(placement.checkpoint_state(train_state))
    if restored is not None:
        saved_state, meta = restored
        step = int(saved_state.step)
        train_state = placement.put_state(saved_state)
        meta.setdefault("train_time", [0, 0.0])  # checkpoints written before it existed
        log.info("Resumed from %s at step %d", latest.directory, step)

    train_step, eval_fn = parallel.make_steps(
        placement,
        parallel.training_model(model, config),
        tx=tx,
        loss_fn=loss_fn,
        schedule=schedule,
        accum_steps=int(tc.accum_steps),
        model_name=config.model.name,
    )
    threads = int(config.data.num_threads)
    # Every host draws the same global batches and reads only its slice of each.
    iterator = pipeline.train_iterator(
        data.train,
        preset,
        batch_size=batch_size,
        seed=int(tc.seed),
        num_threads=threads,
        state=meta.get("data"),
        slice_index=placement.process_index,
        slice_count=placement.process_count,
        micro_batches=int(tc.accum_steps),
    )
    board = runtime.TensorBoard(workdir / "tensorboard", bool(tc.tensorboard) and primary)
    log.info(
        "%s: %d train / %d test clips; model %s (%s parameters); %d steps of batch %d "
        "(%d per epoch); %s",
        data.description,
        len(data.train),
        len(data.test),
        config.model.name,
        f"{num_params:,}",
        total_steps,
        batch_size,
        steps_per_epoch,
        describe(placement),
    )
    if jax.default_backend() == "cpu" and allocator.in_use() == "system":
        log.info(
            "Training on CPU with the C library's malloc, which faults XLA's step buffers "
            "in again at every step; --host_allocator=tcmalloc (or hugepages) trained "
            "2s-AGCN about 15%% faster here (docs/performance.md)."
        )

    def evaluate_and_record(step: int) -> dict[str, Any]:
        logits = predict(
            eval_fn,
            train_state,
            data.test,
            preset,
            int(config.eval.batch_size),
            threads,
            placement,
        )
        report = metrics.classification_report(logits, data.test_labels, data.class_names)
        loss_sum, loss_count = meta["epoch_loss"]
        row = {
            "step": step,
            "epoch": round(step / steps_per_epoch, 3),
            "train_loss": loss_sum / max(loss_count, 1),
            "top1": report["top1"],
            "top5": report["top5"],
            "mean_class_accuracy": report["mean_class_accuracy"],
        }
        if not meta["history"] or meta["history"][-1]["step"] != step:
            meta["history"].append(row)
            meta["epoch_loss"] = [0.0, 0]
        board.scalars(step, {f"test/{k}": row[k] for k in ("top1", "top5", "mean_class_accuracy")})
        if primary:
            tqdm.write(
                f"epoch {row['epoch']:.1f}: test top-1 {100 * row['top1']:.2f} %, "
                f"top-5 {100 * row['top5']:.2f} %, "
                f"mean class {100 * row['mean_class_accuracy']:.2f} %",
                file=sys.stderr,
            )
        metric = config.eval.best_metric
        if meta["best"] is None or row[metric] > meta["best"][metric]:
            meta["best"] = row
            best.save(step, placement.checkpoint_state(train_state), {"metrics": row})
        return {"logits": logits, "report": report}

    eval_every = max(1, int(config.eval.every_epochs)) * steps_per_epoch
    checkpoint_every = int(tc.checkpoint_every_steps) or steps_per_epoch
    window_loss, window_count, window_start = 0.0, 0, time.perf_counter()
    with runtime.Preemption() as preemption:
        bar = tqdm(
            total=total_steps,
            initial=step,
            desc=f"train {config.model.name}",
            unit="step",
            dynamic_ncols=True,
            disable=not (tc.progress_bar and primary),
            file=sys.stderr,
        )
        compiled = False  # the first step of each invocation compiles: not timed
        while step < total_steps:
            step_start = time.perf_counter()
            batch = placement.put_train_batch(next(iterator))
            train_state, step_metrics = train_step(train_state, batch)
            step += 1
            loss = float(step_metrics["loss"])  # waits for the step to finish
            if compiled:
                timed_steps, timed_seconds = meta["train_time"]
                seconds = time.perf_counter() - step_start
                meta["train_time"] = [timed_steps + 1, timed_seconds + seconds]
            compiled = True
            window_loss += loss
            window_count += 1
            meta["epoch_loss"] = [meta["epoch_loss"][0] + loss, meta["epoch_loss"][1] + 1]
            if not bool(step_metrics["finite"]):
                raise FloatingPointError(
                    f"Non-finite loss or gradient at step {step} (loss "
                    f"{float(step_metrics['loss'])}); lower optimizer.lr or check the data."
                )
            if step % int(tc.log_every_steps) == 0 or step == total_steps:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                clips_per_s = window_count * batch_size / elapsed
                scalars = {
                    "train/loss": window_loss / window_count,
                    "train/lr": float(step_metrics["lr"]),
                    "train/grad_norm": float(step_metrics["grad_norm"]),
                    "train/param_norm": float(step_metrics["param_norm"]),
                    "train/clips_per_second": clips_per_s,
                }
                board.scalars(step, scalars)
                bar.set_postfix(
                    epoch=f"{step / steps_per_epoch:.1f}",
                    loss=f"{scalars['train/loss']:.3f}",
                    lr=f"{scalars['train/lr']:.2g}",
                    clips_s=f"{clips_per_s:.0f}",
                )
                window_loss, window_count, window_start = 0.0, 0, time.perf_counter()
            bar.update(1)

            if step % eval_every == 0 and step < total_steps:
                evaluate_and_record(step)
            preempted = distributed.preemption_requested(step, preemption.requested)
            if step % checkpoint_every == 0 or step == total_steps or preempted:
                meta["data"] = iterator.get_state()
                latest.save(step, placement.checkpoint_state(train_state), meta)
            if preempted:
                bar.close()
                board.close()
                raise Preempted(
                    f"SIGTERM: saved checkpoint at step {step} in {latest.directory}; run the "
                    "same command again to resume."
                )
        bar.close()

    final = evaluate_and_record(step)
    meta["data"] = iterator.get_state()
    saved_state = placement.checkpoint_state(train_state)
    if latest.latest_step() == step:
        latest.overwrite_meta(step, saved_state, meta)
    else:
        latest.save(step, saved_state, meta)
    board.close()
    return write_results(config, workdir, data, final, meta, num_params, preset, write=primary)


def describe(placement: parallel.Placement) -> str:
    """``"1 device"``, ``"pmap over 8 devices (2 hosts x 4)"``, ...: for the log."""
    if placement.mode == "none":
        return "1 device"
    hosts = placement.process_count
    where = f" ({hosts} hosts x {len(placement.local_devices)})" if hosts > 1 else ""
    return f"{placement.mode} over {placement.num_devices} devices{where}"


def write_results(
    config, workdir, data: Data, final, meta, num_params, preset, write: bool = True
) -> dict:
    """Writes a run's report files (see the module docstring) and returns ``results.json``'s dict.

    ``meta`` is the run's checkpoint metadata (``history``, ``best``, ``train_time``).
    ``write=False`` (hosts other than process 0) only returns the dict.
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
        "train_clips_per_second": _clips_per_second(meta, int(config.train.batch_size)),
        "final": report,
        "majority_baseline": baseline,
        "best_test_epoch": meta.get("best"),
        "history": meta.get("history", []),
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
    metrics.write_json({"history": meta.get("history", [])}, workdir / "history.json")
    log.info("Results: %s, %s, %s", workdir / "results.md", workdir / "results.json", png)
    return results


def _clips_per_second(meta: dict[str, Any], batch_size: int) -> float | None:
    steps, seconds = meta.get("train_time", [0, 0.0])
    return steps * batch_size / seconds if steps and seconds > 0 else None


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
