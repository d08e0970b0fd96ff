"""What every task builds before it trains: model, data preset, initial variables, predictions.

The classification loop, the vmapped seeds, the emotion trainer and the
sweep all make their model, preset and variables here from the same config
sections, and refuse to resume a workdir that holds a run of another config
with the same check.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from smg_jax import metrics, models
from smg_jax.data import pipeline, transforms
from smg_jax.train import checkpoint, engine, monitor, parallel
from smg_jax.train import state as state_lib
from smg_jax.train.errors import ConfigError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Model, preset and variables.
# ---------------------------------------------------------------------------


def make_preset(config: ml_collections.ConfigDict) -> transforms.Preset:
    """The data preset: ``data.preset`` with every non-``None`` preset field of ``data`` applied."""
    fields = {f.name for f in dataclasses.fields(transforms.Preset)} - {"name"}
    options = {}
    for key in fields:
        if key in config.data and config.data[key] is not None:
            value = config.data[key]
            options[key] = None if key == "center_joint" and value == -1 else value
    return transforms.get_preset(config.data.preset, **options)


def planned_steps(config: ml_collections.ConfigDict, num_train_examples: int) -> tuple[int, int]:
    """``(steps per epoch, total optimizer steps)`` of a run over this many training examples.

    An epoch drops the last partial batch; ``train.max_steps`` cuts the run short.
    """
    tc = config.train
    steps_per_epoch = max(1, num_train_examples // int(tc.batch_size))
    total_steps = int(tc.epochs) * steps_per_epoch
    if tc.max_steps is not None:
        total_steps = min(total_steps, int(tc.max_steps))
    return steps_per_epoch, total_steps


def make_cadence(
    config: ml_collections.ConfigDict, num_train_examples: int, eval_every_epochs: int
) -> engine.Cadence:
    """The run's durations and intervals in steps (``train`` fields; evaluation every so many
    epochs, ``0``: only after the last step)."""
    tc = config.train
    steps_per_epoch, total_steps = planned_steps(config, num_train_examples)
    return engine.Cadence(
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        batch_size=int(tc.batch_size),
        log_every=int(tc.log_every_steps),
        eval_every=int(eval_every_epochs) * steps_per_epoch,
        checkpoint_every=int(tc.checkpoint_every_steps) or steps_per_epoch,
    )


def fresh_state(
    config: ml_collections.ConfigDict,
    model,
    num_classes: int,
    input_shape: tuple[int, ...],
    seed: int,
    tx,
) -> state_lib.TrainState:
    """The step-0 state of a run seeded ``seed``: its initial variables and dropout key.

    ``PRNGKey(seed)`` splits into the init key and the state's key, so a seed
    fixes the initial weights and every dropout mask of the run.
    """
    init_rng, state_rng = jax.random.split(jax.random.PRNGKey(seed))
    variables = initial_variables(config, model, num_classes, input_shape, init_rng)
    return state_lib.create_train_state(variables, tx, state_rng)


def make_member(
    config: ml_collections.ConfigDict,
    workdir: pathlib.Path,
    best_metric: str | None,
    primary: bool = True,
    label: str = "",
) -> engine.Member:
    """A run of the engine under ``workdir``: ``checkpoints/``, ``best/`` (with ``best_metric``)
    and ``tensorboard/`` (on process 0, when ``train.tensorboard``)."""
    tc = config.train
    best = None
    if best_metric is not None:
        best = checkpoint.Checkpointer(workdir / "best", max_to_keep=1, best_metric=best_metric)
    return engine.Member(
        label=label,
        latest=checkpoint.Checkpointer(
            workdir / "checkpoints", max_to_keep=int(tc.keep_checkpoints)
        ),
        best=best,
        board=monitor.TensorBoard(workdir / "tensorboard", bool(tc.tensorboard) and primary),
    )


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
# Resuming.
# ---------------------------------------------------------------------------


def _batch_norm_scope(fields: dict[str, Any]) -> str:
    per_device = fields.get("train.parallel", "none") == "pmap" and not fields.get(
        "train.cross_replica_bn", True
    )
    return "per-device" if per_device else "global batch"


# Fields that change how a classification run is watched or cut short, not what it computes.
WATCH_FIELDS = (
    "train.log_every_steps",
    "train.progress_bar",
    "train.max_steps",
    "data.num_threads",
    "train.parallel",
    "train.cross_replica_bn",
)


def _watch_field(key: str) -> bool:
    # Which hosts run it (and where the coordinator is), and how the process compiles and
    # allocates (the runtime profile), do not change the numbers either.
    return key in WATCH_FIELDS or key.startswith(("distributed.", "runtime."))


def config_changes(
    workdir: str | pathlib.Path,
    config: ml_collections.ConfigDict,
    may_change: Callable[[str], bool] = _watch_field,
) -> list[str]:
    """The fields in which ``config`` differs from the run saved in ``workdir`` (sorted).

    Empty when ``workdir`` holds no ``config.json`` yet or the same config.
    Fields for which ``may_change`` holds (by default those that change how a
    run is watched or cut short, not what it computes) are not compared; nor
    are fields the saved config does not have (added to smg-jax after the run
    started: a warning names them). The parallel mode may change (a run
    started with ``pmap`` on 8 GPUs can go on with ``mesh`` or ``none`` on
    fewer) as long as BatchNorm keeps its scope: only ``pmap`` without
    ``cross_replica_bn`` normalizes per device, and a change to or from that
    is reported as ``train.batch_norm_scope``.
    """
    path = pathlib.Path(workdir) / "config.json"
    if not path.exists():
        return []
    saved = _flatten(json.loads(path.read_text()))
    current = _flatten(json.loads(config.to_json_best_effort()))
    for fields in (saved, current):
        fields["train.batch_norm_scope"] = _batch_norm_scope(fields)
    newer = sorted(set(current) - set(saved))
    if newer:
        log.warning(
            "%s predates the config fields %s; the run continues with their current values.",
            path,
            newer,
        )
    return sorted(
        key for key in saved if not may_change(key) and saved.get(key) != current.get(key)
    )


def check_resume_config(
    workdir: pathlib.Path,
    config: ml_collections.ConfigDict,
    write: bool = True,
    *,
    may_change: Callable[[str], bool] = _watch_field,
    error: type[Exception] = ConfigError,
    overwrite: bool = False,
) -> None:
    """Refuses a ``workdir`` that holds a run of another config; records the config otherwise.

    The one resume check of every task: ``may_change`` names the fields free
    to differ (see ``config_changes``), ``error`` is the task's exception.
    ``config.json`` is written when absent, or every time with ``overwrite``
    (the latest settings of the fields free to change); ``write=False``
    (hosts other than process 0) only checks.
    """
    changed = config_changes(workdir, config, may_change)
    if changed:
        raise error(
            f"{workdir} holds a run with another config (fields differing: {changed[:8]}). "
            "Resume it with the same config, or choose a new --workdir."
        )
    path = pathlib.Path(workdir) / "config.json"
    if write and (overwrite or not path.exists()):
        metrics.write_json(json.loads(config.to_json_best_effort()), path)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}
