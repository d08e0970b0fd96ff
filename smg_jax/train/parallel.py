"""Data parallelism: the pure train and eval steps on one device, with pmap, or on a mesh.

``train.parallel`` picks one of three placements of the same computation:

* ``"none"``: one device, ``xla.jit`` (single-host only; the loop's path
  before this module existed).
* ``"pmap"``: ``jax.pmap`` over each host's devices; gradients (and, with
  ``train.cross_replica_bn``, BatchNorm statistics) are averaged with
  collectives over every device of every host.
* ``"mesh"``: ``xla.jit`` over a one-axis ``Mesh`` of every device; the
  batch is sharded over it, params, optimizer state and BatchNorm
  statistics are replicated, and XLA inserts the collectives. jit keeps the
  single-device semantics, so BatchNorm statistics are always global.

Shapes below use ``B`` = ``train.batch_size`` (the global batch), ``A`` =
``train.accum_steps``, ``H`` hosts (processes), ``L`` devices per host and
``D = H * L``. Each host's training iterator yields its rows of every global
batch as ``A`` blocks of ``p = B / (A * H)`` rows, block ``j`` being this
host's part of micro-batch ``j`` (``pipeline.train_dataset`` with slices);
on one host that is the batch itself. Placement keeps the micro-batches
intact, so every mode computes the one-device step on the same global batch
(up to float summation order; pmap also draws its dropout masks per device).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from smg_jax.runtime import xla
from smg_jax.train import steps
from smg_jax.train.errors import ConfigError
from smg_jax.train.state import TrainState

MODES = ("none", "pmap", "mesh")
AXIS = "data"  # the device axis: pmap's axis_name and the mesh's only axis

Batch = dict[str, Any]
TrainFn = Callable[[Any, Batch], tuple[Any, dict[str, jax.Array]]]
EvalFn = Callable[[Any, Batch], jax.Array]


# ---------------------------------------------------------------------------
# Config checks.
# ---------------------------------------------------------------------------


def parallel_mode(config: ml_collections.ConfigDict) -> str:
    """``config.train.parallel``, checked against the other fields it constrains."""
    mode = config.train.get("parallel", "none")
    if mode not in MODES:
        raise ConfigError(f"train.parallel={mode!r} is not a parallel mode; choose from {MODES}.")
    if mode == "mesh" and not config.train.get("cross_replica_bn", True):
        raise ConfigError(
            "train.cross_replica_bn=False with train.parallel='mesh': jit over a mesh computes "
            "BatchNorm statistics over the global batch, as on one device. Use "
            "train.parallel='pmap' for per-device statistics, or set cross_replica_bn=True."
        )
    if mode == "none" and jax.process_count() > 1:
        raise ConfigError(
            f"train.parallel='none' trains on one device, but this run has "
            f"{jax.process_count()} processes (distributed.enabled): set train.parallel to "
            "'mesh' or 'pmap'."
        )
    return mode


def check_batch_size(batch_size: int, accum_steps: int, num_devices: int) -> None:
    """Refuses a global batch that does not split into ``accum_steps`` x ``num_devices`` parts."""
    parts = accum_steps * num_devices
    if batch_size % parts:
        larger = math.ceil(batch_size / parts) * parts
        raise ConfigError(
            f"train.batch_size={batch_size} (the global batch) does not split evenly over "
            f"{num_devices} devices x train.accum_steps={accum_steps}: use a multiple of "
            f"{parts} (e.g. {larger}), or run on fewer devices (e.g. CUDA_VISIBLE_DEVICES)."
        )


def training_model(model: nn.Module, config: ml_collections.ConfigDict) -> nn.Module:
    """``model`` with ``bn_axis_name`` set where BatchNorm must average over devices (pmap)."""
    if parallel_mode(config) == "pmap" and config.train.get("cross_replica_bn", True):
        return model.clone(bn_axis_name=AXIS)
    return model


def data_mesh() -> Mesh:
    """A one-axis mesh of every device of every host, host-major (``jax.devices()`` order).

    Host-major order puts each host's devices in one contiguous block, which
    ``jax.make_array_from_process_local_data`` needs to place a host's rows.
    """
    return Mesh(np.asarray(jax.devices()), (AXIS,))


# ---------------------------------------------------------------------------
# State placement.
# ---------------------------------------------------------------------------


def replicate_local(tree: Any, devices: list[jax.Device]) -> Any:
    """Each leaf ``(...)`` -> ``(len(devices), ...)``, one copy per device, as pmap takes it."""
    sharding = NamedSharding(Mesh(np.asarray(devices), (AXIS,)), P(AXIS))

    def put(leaf):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(
            (len(devices), *host.shape), sharding, lambda index: host[None]
        )

    return jax.tree_util.tree_map(put, tree)


def unreplicate_local(tree: Any) -> Any:
    """Leaves ``(L, ...)`` -> this host's first device's copy ``(...)``, as NumPy."""
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf.addressable_data(0))[0], tree)


def replicate_global(tree: Any, mesh: Mesh) -> Any:
    """Each leaf as one ``jax.Array`` replicated on every device of ``mesh`` (every host).

    Every host must pass the same values. Orbax saves such arrays once from
    many hosts; it refuses host-local arrays (pmap's, or single-device ones)
    when there are several processes.
    """
    sharding = NamedSharding(mesh, P())

    def put(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding.is_equivalent_to(sharding, leaf.ndim):
            return leaf
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(put, tree)


def broadcast_first(tree: Any, axis_name: str) -> Any:
    """Inside pmap: every device gets device 0's values (exact: a psum of one copy and zeros)."""
    first = jax.lax.axis_index(axis_name) == 0
    return jax.tree_util.tree_map(
        lambda x: jax.lax.psum(jax.numpy.where(first, x, jax.numpy.zeros_like(x)), axis_name),
        tree,
    )


# ---------------------------------------------------------------------------
# Batch placement.
# ---------------------------------------------------------------------------


def split_for_devices(batch: Batch, num_devices: int, micro_batches: int = 1) -> Batch:
    """Host rows ``(A * p, ...)`` -> ``(num_devices, A * p / num_devices, ...)`` for pmap.

    Device ``d`` gets its part of each of the ``A = micro_batches`` blocks, in
    block order, so its micro-batch ``j`` (``steps.train_step`` splits rows
    in order) is a part of the global micro-batch ``j``.
    """

    def split(a):
        a = np.asarray(a)
        blocks = a.reshape((micro_batches, num_devices, -1, *a.shape[1:]))
        return blocks.swapaxes(0, 1).reshape((num_devices, -1, *a.shape[1:]))

    return {k: split(v) for k, v in batch.items()}


def as_micro_blocks(batch: Batch, micro_batches: int) -> Batch:
    """Host rows ``(A * p, ...)`` -> ``(A, p, ...)``, the blocks the mesh step shards on axis 1."""
    return {
        k: np.asarray(v).reshape((micro_batches, -1, *np.shape(v)[1:])) for k, v in batch.items()
    }


def to_global(batch: Batch, sharding: NamedSharding) -> Batch:
    """Every host's rows -> one global ``jax.Array`` per key, hosts in order on the sharded axis."""
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }


def host_rows(array: jax.Array) -> np.ndarray:
    """This host's rows ``(L * r, ...)``, in order, of a row-sharded global ``(D * r, ...)``."""
    shards = sorted(array.addressable_shards, key=lambda shard: shard.index[0].start or 0)
    return np.concatenate([np.asarray(shard.data) for shard in shards])


# ---------------------------------------------------------------------------
# Steps.
# ---------------------------------------------------------------------------


def pmap_train_step(train_fn: TrainFn) -> TrainFn:
    """``train_fn`` (bound with ``axis_name=AXIS``) over this host's devices.

    Takes the state with a leading device axis (``replicate_local``) and the
    batch from ``split_for_devices``; returns the new state (device axis
    kept) and the metrics once (they are the same on every device). Compiled
    with ``xla.jit``'s XLA options (``xla.pmap``).
    """
    return xla.pmap(train_fn, axis_name=AXIS, out_axes=(0, None), donate_argnums=(0,))


def pmap_eval_step(eval_fn: EvalFn, model_name: str | None = None) -> EvalFn:
    """Logits ``(L, E / L, K)`` for the batch from ``split_for_devices``.

    Every device evaluates with device 0's BatchNorm statistics: with
    per-device statistics (``cross_replica_bn=False``) devices would
    otherwise score with different models; this is the copy checkpoints keep.
    ``model_name`` (the registry's) chooses the inference compiler options (``xla.pmap``).
    """

    def evaluate(state: TrainState, batch: Batch) -> jax.Array:
        state = state.replace(batch_stats=broadcast_first(state.batch_stats, AXIS))
        return eval_fn(state, batch)

    return xla.pmap(evaluate, inference=True, model_name=model_name, axis_name=AXIS)


def mesh_train_step(train_fn: TrainFn, mesh: Mesh) -> TrainFn:
    """``train_fn`` jitted over ``mesh``: replicated state, batch blocks ``(A, B / A, ...)``.

    The blocks are sharded on axis 1, so each device holds its part of every
    micro-batch; the step sees them merged back into ``(B, ...)`` in global
    order, exactly the one-device batch.
    """
    replicated = NamedSharding(mesh, P())

    def step(state: TrainState, blocks: Batch):
        batch = {k: v.reshape((-1, *v.shape[2:])) for k, v in blocks.items()}
        return train_fn(state, batch)

    return xla.jit(
        step,
        in_shardings=(replicated, NamedSharding(mesh, P(None, AXIS))),
        out_shardings=(replicated, replicated),
        donate_argnums=(0,),
    )


def mesh_eval_step(eval_fn: EvalFn, mesh: Mesh, model_name: str | None = None) -> EvalFn:
    """``eval_fn`` jitted over ``mesh``: replicated state, batch and logits sharded on rows."""
    rows = NamedSharding(mesh, P(AXIS))
    return xla.jit(
        eval_fn,
        inference=True,
        model_name=model_name,
        in_shardings=(NamedSharding(mesh, P()), rows),
        out_shardings=rows,
    )


# ---------------------------------------------------------------------------
# One object the loop asks where things go.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run's state and batches live, and which host this is.

    Attributes:
      mode: ``"none"``, ``"pmap"`` or ``"mesh"``.
      micro_batches: ``train.accum_steps`` (the blocks of a host's batch).
      process_index, process_count: this host and the number of hosts.
      local_devices: this host's devices the step runs on.
      mesh: every device (mesh mode: the step's mesh; pmap: for checkpoints).
    """

    mode: str = "none"
    micro_batches: int = 1
    process_index: int = 0
    process_count: int = 1
    local_devices: tuple[jax.Device, ...] = ()
    mesh: Mesh | None = None

    @property
    def is_primary(self) -> bool:
        """Process 0: the one that writes reports, plots and TensorBoard."""
        return self.process_index == 0

    @property
    def num_devices(self) -> int:
        return max(1, len(self.local_devices)) * self.process_count

    def put_state(self, state: TrainState) -> Any:
        """A host-side or checkpoint-form state -> the form the train step takes."""
        if self.mode == "pmap":
            return replicate_local(state, list(self.local_devices))
        if self.mode == "mesh":
            return replicate_global(state, self.mesh)
        return state

    def checkpoint_state(self, state: Any) -> TrainState:
        """The train step's state -> what orbax saves (and the form to restore into).

        ``none``: unchanged. ``mesh``: already global and replicated. ``pmap``:
        device 0's copy (BatchNorm statistics broadcast from process 0, which
        matters with per-device statistics), replicated over every device of
        every host.
        """
        if self.mode != "pmap":
            return state
        host = unreplicate_local(state)
        if self.process_count > 1:
            stats = multihost_utils.broadcast_one_to_all(host.batch_stats)
            host = host.replace(batch_stats=stats)
        return replicate_global(host, self.mesh)

    def put_train_batch(self, batch: Batch) -> Batch:
        """This host's rows ``(A * p, ...)`` -> the train step's batch."""
        if self.mode == "pmap":
            return split_for_devices(batch, len(self.local_devices), self.micro_batches)
        if self.mode == "mesh":
            blocks = as_micro_blocks(batch, self.micro_batches)
            return to_global(blocks, NamedSharding(self.mesh, P(None, AXIS)))
        return batch

    def eval_rows(self, eval_batch_size: int) -> int:
        """Rows per host per evaluation batch: ``eval.batch_size`` (global) over the hosts.

        Rounded up to a multiple of the host's devices; the extra rows are padding.
        """
        if self.mode == "none":
            return eval_batch_size
        per_device = math.ceil(eval_batch_size / self.num_devices)
        return per_device * len(self.local_devices)

    def put_eval_batch(self, batch: Batch) -> Batch:
        """This host's evaluation rows ``(E, ...)`` -> the eval step's batch."""
        if self.mode == "pmap":
            return split_for_devices(batch, len(self.local_devices))
        if self.mode == "mesh":
            return to_global(batch, NamedSharding(self.mesh, P(AXIS)))
        return batch

    def host_rows(self, out: jax.Array) -> np.ndarray:
        """The eval step's output -> this host's rows ``(E, ...)``, in batch order."""
        if self.mode == "pmap":
            out = np.asarray(out)
            return out.reshape((-1, *out.shape[2:]))
        if self.mode == "mesh":
            return host_rows(out)
        return np.asarray(out)

    def gather(self, tree: Any) -> Any:
        """Every host's arrays (same shapes), concatenated on axis 0, on every host."""
        if self.process_count == 1:
            return tree
        return multihost_utils.process_allgather(tree, tiled=True)


SINGLE_DEVICE = Placement()


def make_placement(config: ml_collections.ConfigDict) -> Placement:
    """The placement ``config.train.parallel`` asks for, checked against the devices.

    Raises:
      ConfigError: an unknown mode, a combination that cannot run, or a
        global batch that does not split over the devices.
    """
    mode = parallel_mode(config)
    if mode == "none":
        return SINGLE_DEVICE
    placement = Placement(
        mode=mode,
        micro_batches=int(config.train.accum_steps),
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        local_devices=tuple(jax.local_devices()),
        mesh=data_mesh(),
    )
    check_batch_size(int(config.train.batch_size), placement.micro_batches, placement.num_devices)
    return placement


def make_steps(
    placement: Placement,
    model: nn.Module,
    *,
    tx: optax.GradientTransformation,
    loss_fn: steps.LossFn,
    schedule: optax.Schedule | None,
    accum_steps: int,
    model_name: str | None = None,
) -> tuple[TrainFn, EvalFn]:
    """``(train_step, eval_step)`` for ``placement``, from the pure steps in ``steps``.

    ``model`` is the training model (``training_model``). The train step
    takes ``placement.put_state``/``put_train_batch`` outputs and returns
    ``(state, metrics)`` with scalar metrics; the eval step takes
    ``put_eval_batch`` output and gives logits for ``placement.host_rows``.
    ``model_name`` (the registry's) chooses the eval step's compiler options.
    """
    train_fn = functools.partial(
        steps.train_step,
        model=model,
        tx=tx,
        loss_fn=loss_fn,
        schedule=schedule,
        accum_steps=accum_steps,
        axis_name=AXIS if placement.mode == "pmap" else None,
    )
    eval_fn = functools.partial(steps.eval_step, model=model)
    if placement.mode == "pmap":
        return pmap_train_step(train_fn), pmap_eval_step(eval_fn, model_name)
    if placement.mode == "mesh":
        return mesh_train_step(train_fn, placement.mesh), mesh_eval_step(
            eval_fn, placement.mesh, model_name
        )
    return xla.jit(train_fn, donate_argnums=(0,)), xla.jit(
        eval_fn, inference=True, model_name=model_name
    )
