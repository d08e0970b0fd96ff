"""Training and evaluation batches over any random-access source of SMG clips.

A *source* is anything with ``__len__`` and ``__getitem__`` returning one
TFDS ``smg/clips`` example as a dict of NumPy values (``tfds.data_source``,
or a plain list of dicts in tests): ``joints`` ``(T, 25, 3)`` float32
metres, ``label`` int in ``[0, 17)``, and, for error messages,
``sample_id`` / ``segment_index`` / ``start`` / ``end``.

A batch is ``{"x": (B, M, T, V, C) float32, "label": (B,) int32, "mask":
(B,) bool}`` with ``M = 1`` body; evaluation batches add ``"index": (B,)
int64``, the example's position in the source (``-1`` for padding), so that
per-example scores can be put back in dataset order across hosts.

Built on ``grain.MapDataset``: random access makes every batch a pure
function of ``(seed, step)``, so the iterator's state is one integer and
resuming is exact; grain also gives per-epoch reshuffling
(``shuffle().repeat()`` reseeds each epoch) and threaded prefetch.

Two ways to spread training over hosts. *Shards* (``shard_index`` /
``shard_count``) split the source: each host shuffles its own examples and
``batch_size`` is the per-host batch. *Slices* (``slice_index`` /
``slice_count``) split each batch: every host draws the same global order
and augmentation and builds only its part of each global batch of
``batch_size``, so H hosts train on exactly the batches of one host (the
training loop uses slices).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grain
import numpy as np

from smg_jax.data.joints import DataError, describe_example
from smg_jax.data.transforms import Preset

Example = Mapping[str, Any]
Batch = dict[str, np.ndarray]

# Separates the augmentation seeds from any other use of the user's seed.
_AUGMENT_SALT = 0x5E6A


def example_rng(seed: int, shard_index: int, position: int) -> np.random.Generator:
    """The generator of one training element: a function of seed, shard and stream position.

    ``position`` counts elements of the repeated stream (epoch e, slot i is
    ``e * n + i``), so an example gets a fresh augmentation every epoch and
    the same one whenever the same step is replayed.
    """
    return np.random.default_rng([_AUGMENT_SALT, seed, shard_index, position])


def make_element(
    example: Example,
    preset: Preset,
    *,
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """One example -> ``{"x": (1, T, V, C) float32, "label": () int32, "mask": () bool}``."""
    where = describe_example(example)
    if "joints" not in example or "label" not in example:
        raise DataError(
            f"{where}: an example needs 'joints' and 'label'; got keys {sorted(example)}. "
            "Use the TFDS smg/clips config (tfds.data_source('smg/clips'))."
        )
    label = int(example["label"])
    if label < 0:
        raise DataError(f"{where}: label {label} is negative; labels are 0-based class indices.")
    x = preset.apply(np.asarray(example["joints"]), train=train, rng=rng, where=where)
    return {"x": x[None], "label": np.int32(label), "mask": np.bool_(True)}


def _check_shard(shard_index: int, shard_count: int) -> None:
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise DataError(
            f"shard_index={shard_index}, shard_count={shard_count}: need shard_count >= 1 and "
            "0 <= shard_index < shard_count (e.g. jax.process_index(), jax.process_count())."
        )


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}.")


def _check_slice(batch_size: int, slice_index: int, slice_count: int, micro_batches: int) -> None:
    if slice_count < 1 or not 0 <= slice_index < slice_count:
        raise DataError(
            f"slice_index={slice_index}, slice_count={slice_count}: need slice_count >= 1 and "
            "0 <= slice_index < slice_count (e.g. jax.process_index(), jax.process_count())."
        )
    if micro_batches < 1 or batch_size % (micro_batches * slice_count):
        raise DataError(
            f"batch_size={batch_size} does not split into micro_batches={micro_batches} x "
            f"slice_count={slice_count} equal parts; choose a batch size divisible by "
            f"{max(micro_batches, 1) * slice_count}."
        )


def _merge_micro_batches(batch: Batch) -> Batch:
    """``(A, p, ...)`` pieces -> ``(A * p, ...)``: one host's rows of one global batch."""
    return {k: v.reshape((-1, *v.shape[2:])) for k, v in batch.items()}


def shard_indices(num_examples: int, shard_index: int, shard_count: int) -> np.ndarray:
    """Source positions of one shard: ``shard_index, shard_index + shard_count, ...``.

    Strided rather than contiguous, so every shard samples all participants
    and shard sizes differ by at most one.
    """
    _check_shard(shard_index, shard_count)
    return np.arange(shard_index, num_examples, shard_count)


# ---------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------


def train_dataset(
    source: Sequence[Example],
    preset: Preset,
    *,
    batch_size: int,
    seed: int,
    shard_index: int = 0,
    shard_count: int = 1,
    num_epochs: int | None = None,
    slice_index: int = 0,
    slice_count: int = 1,
    micro_batches: int = 1,
) -> grain.MapDataset:
    """Random-access training batches: element ``i`` is batch ``i`` of this shard.

    The shard's examples are reshuffled every epoch (grain's
    ``shuffle(seed).repeat()`` uses seed ``seed + epoch``), augmented with
    ``example_rng(seed, shard_index, position)``, and batched with
    ``drop_remainder=True``. Batches run across epoch boundaries, so no
    example is ever skipped and every batch is full; with ``num_epochs`` set
    the final partial batch is dropped.

    With ``slice_count > 1`` element ``i`` is this host's slice of batch
    ``i``: the batch is read as ``micro_batches`` consecutive micro-batches
    of ``m = batch_size / micro_batches`` rows, and this host gets rows
    ``[slice_index * p, (slice_index + 1) * p)`` of each (``p = m /
    slice_count``), concatenated: ``micro_batches * p`` rows. Only those
    examples are read and augmented. Cutting every micro-batch (not the
    whole batch) lets each device hold its part of every micro-batch of a
    gradient-accumulation step.

    Args:
      source: random-access examples (see module docstring).
      preset: the per-example transform (``augment`` applies here).
      batch_size: per-shard batch size (with slices: the global batch size).
      seed: shuffle and augmentation seed, in ``[0, 2**32)``.
      shard_index: this host's shard of the source.
      shard_count: number of shards.
      num_epochs: ``None`` repeats forever.
      slice_index: this host's slice of every batch, ``jax.process_index()``.
      slice_count: number of slices, ``jax.process_count()``.
      micro_batches: gradient-accumulation micro-batches per batch
        (``train.accum_steps``); only matters with ``slice_count > 1``.

    Returns:
      A ``grain.MapDataset`` of batches ``{"x", "label", "mask"}``.
    """
    _check_batch_size(batch_size)
    _check_shard(shard_index, shard_count)
    _check_slice(batch_size, slice_index, slice_count, micro_batches)
    if not 0 <= seed < 2**32:
        raise DataError(f"seed must be in [0, 2**32), got {seed}.")
    if num_epochs is not None and num_epochs < 1:
        raise DataError(f"num_epochs must be >= 1 or None, got {num_epochs}.")
    if len(source) < shard_count:
        raise DataError(
            f"The training source has {len(source)} examples, fewer than shard_count="
            f"{shard_count}: some shards would be empty. Use fewer hosts or more data."
        )

    def transform(position: int, example: Example) -> dict[str, np.ndarray]:
        rng = example_rng(seed, shard_index, position) if preset.augment else None
        return make_element(example, preset, train=True, rng=rng)

    dataset = grain.MapDataset.source(source)[shard_index::shard_count]
    dataset = dataset.shuffle(seed=seed).repeat(num_epochs)
    dataset = dataset.map_with_index(transform)
    if slice_count == 1:
        return dataset.batch(batch_size, drop_remainder=True)
    # Pieces of p consecutive stream elements: piece (i * micro_batches + j) * slice_count + h
    # is host h's part of micro-batch j of batch i. Slicing is lazy, so a host reads only
    # its pieces; cutting to whole batches first keeps every host at the same batch count.
    per_batch = micro_batches * slice_count
    pieces = dataset.batch(batch_size // per_batch, drop_remainder=True)
    pieces = pieces[: len(pieces) // per_batch * per_batch]
    mine = pieces[slice_index::slice_count].batch(micro_batches)
    return mine.map(_merge_micro_batches)


@dataclasses.dataclass(frozen=True)
class _TrainSpec:
    """What a saved iterator state must agree with to resume the same stream."""

    seed: int
    batch_size: int
    shard_index: int
    shard_count: int
    num_examples: int
    num_epochs: int | None


class TrainIterator(Iterator[Batch]):
    """An iterator over training batches whose position is a small, JSON-able state.

    ``get_state()`` returns ``{"step": next batch index, "seed", "batch_size",
    "shard_index", "shard_count", "num_examples", "num_epochs"}`` (ints or
    None); ``set_state`` on an iterator built with the same arguments
    continues with exactly the batches the saved one would have produced.
    The extra fields make a restore with a different seed, batch size,
    sharding or dataset fail instead of silently changing the data order.
    Save it beside the model, e.g. ``ocp.args.JsonSave(it.get_state())``.
    Slices are not part of the state: it is the position in the global
    stream, the same on every host, so one host's copy resumes them all
    (also on another number of hosts).
    """

    def __init__(
        self,
        source: Sequence[Example],
        preset: Preset,
        *,
        num_threads: int = 2,
        prefetch: int = 4,
        **stream: Any,
    ) -> None:
        """The batches of ``train_dataset(source, preset, **stream)``.

        Args:
          source, preset, stream: ``train_dataset``'s arguments (``batch_size``
            and ``seed`` required; sharding, epochs, slices, micro-batches).
          num_threads: grain reader threads that build batches ahead of the
            consumer; 0 builds each batch on ``next()`` in the calling thread.
          prefetch: batches buffered ahead (with ``num_threads > 0``).
        """
        self._batches = train_dataset(source, preset, **stream)
        bound = inspect.signature(train_dataset).bind(source, preset, **stream)
        bound.apply_defaults()
        spec = {f.name: bound.arguments.get(f.name) for f in dataclasses.fields(_TrainSpec)}
        self._spec = _TrainSpec(**{**spec, "num_examples": len(source)})
        shard_index, shard_count = self._spec.shard_index, self._spec.shard_count
        self._shard_size = len(shard_indices(len(source), shard_index, shard_count))
        self._read_options = grain.ReadOptions(
            num_threads=num_threads, prefetch_buffer_size=max(prefetch, 1)
        )
        self._step = 0
        self._iterator = self._start(0)

    def _start(self, step: int) -> Iterator[Batch]:
        # Slicing a MapDataset keeps element i at batch step + i, so the
        # restarted stream is the original one from `step` on.
        remaining = self._batches[step:]
        return iter(remaining.to_iter_dataset(self._read_options))

    def __iter__(self) -> TrainIterator:
        return self

    def __next__(self) -> Batch:
        batch = next(self._iterator)
        self._step += 1
        return batch

    @property
    def step(self) -> int:
        """Index of the next batch."""
        return self._step

    @property
    def steps_per_epoch(self) -> float:
        """Batches per pass over this shard (a fraction: batches cross epoch ends)."""
        return self._shard_size / self._spec.batch_size

    @property
    def epoch(self) -> float:
        """Passes over this shard completed so far (fractional)."""
        return self._step / self.steps_per_epoch

    def __len__(self) -> int:
        """Total batches (only with ``num_epochs`` set)."""
        if self._spec.num_epochs is None:
            raise TypeError("An infinite training iterator (num_epochs=None) has no length.")
        return len(self._batches)

    def get_state(self) -> dict[str, int | None]:
        return {"step": self._step, **dataclasses.asdict(self._spec)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Moves to ``state["step"]``; the other fields must match this iterator's arguments."""
        if "step" not in state:
            raise DataError(f"Iterator state {dict(state)} has no 'step'.")
        mine = dataclasses.asdict(self._spec)
        differ = {k: (state[k], v) for k, v in mine.items() if k in state and state[k] != v}
        if differ:
            text = ", ".join(f"{k}: saved {s!r} vs now {n!r}" for k, (s, n) in differ.items())
            raise DataError(
                f"Cannot resume the training iterator: {text}. Rebuild it with the saved "
                "arguments (or start a fresh run) so that the batch order stays the same."
            )
        step = int(state["step"])
        if step < 0:
            raise DataError(f"Iterator state step={step} is negative.")
        self._step = step
        self._iterator = self._start(step)


def train_iterator(
    source: Sequence[Example],
    preset: Preset,
    *,
    state: Mapping[str, Any] | None = None,
    **options: Any,
) -> TrainIterator:
    """A ``TrainIterator(source, preset, **options)``, restored to ``state`` when one is given.

    ``options`` are ``TrainIterator``'s keyword arguments (``batch_size`` and
    ``seed`` required).
    """
    iterator = TrainIterator(source, preset, **options)
    if state is not None:
        iterator.set_state(state)
    return iterator


# ---------------------------------------------------------------------------
# Evaluation.
# ---------------------------------------------------------------------------


def num_eval_batches(num_examples: int, batch_size: int, shard_count: int = 1) -> int:
    """Batches every shard yields: ``ceil(ceil(N / shard_count) / batch_size)``.

    The same on every shard, so hosts running a collective eval step stay in
    lockstep; shards with fewer examples get more padding rows.
    """
    _check_batch_size(batch_size)
    return math.ceil(math.ceil(num_examples / shard_count) / batch_size)


def eval_dataset(
    source: Sequence[Example],
    preset: Preset,
    *,
    batch_size: int,
    shard_index: int = 0,
    shard_count: int = 1,
) -> grain.MapDataset:
    """Evaluation batches: each example of the shard exactly once, in source order.

    Never augments. The last batch (and, on smaller shards, whole batches) is
    filled with padding rows: ``x`` zeros, ``label`` 0, ``mask`` False,
    ``index`` -1. Across all shards every source example appears exactly once
    with ``mask`` True.

    Returns:
      A finite ``grain.MapDataset`` of ``num_eval_batches(...)`` batches
      ``{"x", "label", "mask", "index"}``.
    """
    _check_batch_size(batch_size)
    positions = shard_indices(len(source), shard_index, shard_count)
    total = num_eval_batches(len(source), batch_size, shard_count) * batch_size
    if total == 0:
        return grain.MapDataset.range(0).batch(batch_size)
    num_joints = int(np.asarray(source[0]["joints"]).shape[1])
    padding = {
        "x": np.zeros((1, *preset.output_shape(num_joints)), np.float32),
        "label": np.int32(0),
        "mask": np.bool_(False),
        "index": np.int64(-1),
    }

    def element(slot: int) -> dict[str, np.ndarray]:
        if slot >= len(positions):
            return dict(padding)
        index = int(positions[slot])
        out = make_element(source[index], preset, train=False)
        out["index"] = np.int64(index)
        return out

    return grain.MapDataset.range(total).map(element).batch(batch_size)


def eval_iterator(
    source: Sequence[Example],
    preset: Preset,
    *,
    batch_size: int,
    shard_index: int = 0,
    shard_count: int = 1,
    num_threads: int = 2,
    prefetch: int = 4,
) -> Iterator[Batch]:
    """Iterates ``eval_dataset`` with ``num_threads`` background readers (0: none)."""
    dataset = eval_dataset(
        source, preset, batch_size=batch_size, shard_index=shard_index, shard_count=shard_count
    )
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(prefetch, 1))
    return iter(dataset.to_iter_dataset(options))


# ---------------------------------------------------------------------------
# TFDS.
# ---------------------------------------------------------------------------


def prepared_builder(data_dir: str | None, config: str, manual_dir: str | None = None) -> Any:
    """The TFDS builder of ``smg/<config>`` in ``data_dir``, built first from ``manual_dir``.

    Raises:
      DataError: the dataset is not built and no ``manual_dir`` was given.
    """
    import tensorflow_datasets as tfds

    import tfds_smg  # noqa: F401  (registers the 'smg' builder with TFDS)

    name = f"smg/{config}"
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        if manual_dir is None:
            raise DataError(
                f"TFDS dataset {name!r} is not built in {builder.data_dir!r}. Build it with "
                f"load_split(..., manual_dir=<raw SMG folder>) or `tfds build tfds_smg "
                f"--config {config} --manual_dir <raw SMG folder> --data_dir {data_dir}`."
            )
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    _restore_alternative_formats(builder.info)
    return builder


def load_split(
    data_dir: str | None,
    config: str = "clips",
    split: str = "train",
    *,
    manual_dir: str | None = None,
) -> Sequence[Example]:
    """Opens ``tfds.data_source('smg/<config>', split=split)`` (random access, array_record).

    Args:
      data_dir: TFDS data directory; ``None`` is TFDS's default (``~/tensorflow_datasets``).
      config: builder config name (``"clips"`` for classification).
      split: e.g. ``"train"``, ``"test"`` or a TFDS slice such as ``"train[:10%]"``.
      manual_dir: the raw SMG folder; when given, the dataset is built first
        if ``data_dir`` does not hold it yet.

    Raises:
      DataError: the dataset is not built and no ``manual_dir`` was given.
    """
    return prepared_builder(data_dir, config, manual_dir).as_data_source(split=split)


def _restore_alternative_formats(info: Any) -> None:
    """Makes a reopened dataset's ArrayRecord copy visible to ``as_data_source``.

    The ``smg`` builder writes TFRecord plus an ArrayRecord copy listed in
    ``dataset_info.json`` as an alternative format. TFDS 4.9.10's
    ``DatasetInfo.read_from_directory`` restores that list into
    ``info.as_proto`` but not into ``info.alternative_file_formats``, so a
    builder opened on an already built ``data_dir`` reports TFRecord only and
    ``as_data_source`` refuses it. Re-register what the proto lists; a no-op
    when TFDS (or the builder) already did.
    """
    registered = {f.value for f in info.alternative_file_formats}
    for value in list(info.as_proto.alternative_file_formats):
        if value not in registered:
            info.add_alternative_file_format(value)  # appends to the list and the proto
            del info.as_proto.alternative_file_formats[-1]  # the proto had it already
            registered.add(value)
