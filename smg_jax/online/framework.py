"""The authors' online recognizer end to end: training rows, emission network, decoding.

``train_authors`` builds the network's training rows from the training
recordings (forced-alignment targets for the MG rows, resampled rest rows),
fits the standardizer and the HMM counts, and trains the emission network;
``decode_recording`` turns one recording into segments. ``HMMOptions``
selects the authors' choices or the corrections (``hmm``).

Input shapes of the emission network (``window_input``):

``flat`` (the MLP)
    one standardized 2,775-value row;
``row_chunks`` (the BiGRU as the authors' code trains it)
    the same row cut into ``steps`` consecutive chunks (``(5, 555)``): their
    ``train_att_BiLSTM`` reshapes each row that way (and their test code
    reshapes to ``(5, 525)``, which fails for 2,775 values);
``frame_windows`` (the BiGRU as ``ONLINE.md`` and the paper describe it)
    ``steps`` consecutive rows centred on the row (edges repeated): ``(5, 2775)``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np
from tqdm.auto import tqdm

from smg_jax import metrics
from smg_jax.data.recordings import Recording
from smg_jax.online import emission, features, hmm, training, viterbi
from smg_jax.online.errors import OnlineError
from smg_jax.runtime import xla
from smg_jax.train import state as state_lib
from smg_jax.train import steps

log = logging.getLogger(__name__)

WINDOW_INPUTS = ("flat", "row_chunks", "frame_windows")


@dataclasses.dataclass
class TrainingRows:
    """The emission network's training data.

    Attributes:
      table: ``(R, D)`` float32 feature rows (standardized once ``standardize`` ran).
      examples: ``(N, W)`` int64 indices into ``table``: each example's window
        of rows (``W = 1`` unless ``frame_windows``), its own row in the middle.
      targets: ``(N,)`` int32 HMM state of each example.
      num_gesture_rows: how many examples are MG rows (the rest are rest rows).
      rest_pool: size of the pool the rest rows were drawn from.
    """

    table: np.ndarray
    examples: np.ndarray
    targets: np.ndarray
    num_gesture_rows: int
    rest_pool: int

    @property
    def centre(self) -> int:
        return self.examples.shape[1] // 2


def build_training_rows(
    recordings: Sequence[Recording],
    options: hmm.HMMOptions,
    *,
    window: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> TrainingRows:
    """MG rows with their forced-alignment states, then ``options.rest_samples`` rest rows.

    The rest rows are drawn uniformly with replacement from the pool of
    ``hmm.rest_rows`` of every recording (the authors draw 20,000 with
    ``numpy.random.randint``), with a generator seeded by ``seed``.
    """
    if window < 1 or window % 2 == 0:
        raise OnlineError(f"The row window must be a positive odd number, got {window}.")
    gesture_rows, gesture_targets, pool = [], [], []
    for index, recording in enumerate(recordings):
        num_rows = recording.num_frames - 1
        for label, start, end in recording.segments:
            first, count = hmm.gesture_rows(start, end, options.frames)
            if count <= 0:
                continue
            gesture_rows.append(np.stack([np.full(count, index), first + np.arange(count)], 1))
            gesture_targets.append(hmm.state_targets(count, label, options.states_per_class))
        rest = hmm.rest_rows(recording.num_frames, recording.segments, options)
        rest = rest[rest < num_rows]
        pool.append(np.stack([np.full(rest.size, index), rest], 1))
    if not gesture_rows:
        raise OnlineError("The training recordings hold no MG long enough to give feature rows.")
    mg = np.concatenate(gesture_rows).astype(np.int64)
    targets = np.concatenate(gesture_targets).astype(np.int32)
    pool_rows = np.concatenate(pool).astype(np.int64) if pool else np.zeros((0, 2), np.int64)
    if options.rest_samples and pool_rows.shape[0] == 0:
        raise OnlineError("No rest rows could be taken from the training recordings.")
    draws = np.random.default_rng(seed).integers(
        0, max(pool_rows.shape[0], 1), options.rest_samples
    )
    rest = pool_rows[draws] if options.rest_samples else np.zeros((0, 2), np.int64)
    chosen = np.concatenate([mg, rest])
    targets = np.concatenate([targets, np.full(len(rest), options.rest, np.int32)])

    # Each example's window of rows, then the features of every distinct row once.
    tables, examples = [], np.zeros((len(chosen), window), np.int64)
    offset = 0
    iterator = tqdm(
        range(len(recordings)), desc="training features", unit="recording", disable=not progress
    )
    for index in iterator:
        mine = np.flatnonzero(chosen[:, 0] == index)
        if mine.size == 0:
            continue
        recording = recordings[index]
        windows = features.window_rows(chosen[mine, 1], window, recording.num_frames - 1)
        needed = np.unique(windows)
        tables.append(features.row_features(recording.joints, needed, where=recording.name))
        examples[mine] = offset + np.searchsorted(needed, windows)
        offset += needed.size
    return TrainingRows(
        table=np.concatenate(tables),
        examples=examples,
        targets=targets,
        num_gesture_rows=len(mg),
        rest_pool=int(pool_rows.shape[0]),
    )


def model_input(table: np.ndarray, examples: np.ndarray, window_input: str, steps_: int):
    """The network input of a batch of examples (see the module docstring)."""
    if window_input == "frame_windows":
        return table[examples]
    rows = table[examples[:, examples.shape[1] // 2]]
    if window_input == "flat":
        return rows
    if rows.shape[1] % steps_:
        raise OnlineError(
            f"row_chunks cuts a {rows.shape[1]}-value row into {steps_} chunks: not divisible."
        )
    return rows.reshape(rows.shape[0], steps_, rows.shape[1] // steps_)


def window_of(section: ml_collections.ConfigDict) -> tuple[str, int]:
    """``(window_input, steps)`` of the configured emission network."""
    if section.network == "mlp":
        return "flat", 1
    window_input = section.att_bigru_input
    if window_input not in WINDOW_INPUTS[1:]:
        raise OnlineError(
            f"authors.att_bigru_input={window_input!r}; choose from {list(WINDOW_INPUTS[1:])}."
        )
    return window_input, int(section.att_bigru_steps)


def make_network(section: ml_collections.ConfigDict, num_states: int):
    """The emission network named by ``section.network`` with its section's fields."""
    name = section.network
    if name not in emission.EMISSION_MODELS:
        raise OnlineError(
            f"authors.network={name!r}; choose from {sorted(emission.EMISSION_MODELS)}."
        )
    return emission.create(name, num_states=num_states, **dict(section[name]))


@dataclasses.dataclass
class AuthorsModel:
    """A trained recognizer: everything ``decode_recording`` needs."""

    options: hmm.HMMOptions
    network: Any
    output: str
    state: state_lib.TrainState
    standardizer: features.Standardizer
    counts: hmm.HMMCounts
    log_state_prior: np.ndarray
    window_input: str
    steps: int
    history: list[dict[str, Any]]
    batch_size: int

    @functools.cached_property
    def _eval_fn(self):
        return xla.jit(functools.partial(steps.eval_step, model=self.network), inference=True)

    @functools.cached_property
    def transitions(self) -> tuple[np.ndarray, np.ndarray]:
        return hmm.log_transitions(self.counts, self.options)

    def log_outputs(self, joints: np.ndarray, rows: np.ndarray, where: str) -> np.ndarray:
        """``(len(rows), N)`` log network outputs for feature ``rows`` of a recording."""
        num_rows = joints.shape[0] - 1
        width = self.steps if self.window_input == "frame_windows" else 1
        out = np.empty((rows.size, self.options.num_states), np.float32)
        size = self.batch_size
        for begin in range(0, rows.size, size):
            chunk = rows[begin : begin + size]
            windows = features.window_rows(chunk, width, num_rows)
            needed = np.unique(windows)
            table = self.standardizer.apply(features.row_features(joints, needed, where=where))
            x = model_input(table, np.searchsorted(needed, windows), self.window_input, self.steps)
            padded = np.zeros((size, *x.shape[1:]), np.float32)
            padded[: len(x)] = x
            logits = self._eval_fn(self.state, {"x": padded})
            out[begin : begin + len(x)] = np.asarray(emission.log_outputs(logits, self.output))[
                : len(x)
            ]
        return out


def _fit_network(section, rows, workdir, network, loss_fn, window_input: str, steps_: int):
    """Fits the emission network on a seeded train/validation split of the training rows.

    Returns ``(state, history, (train rows, validation rows))``.
    """
    tc = section.train
    seed = int(tc.seed)
    order = np.random.default_rng([seed, 1]).permutation(len(rows.targets))
    num_val = round(float(tc.val_fraction) * len(order))
    val, train = order[:num_val], order[num_val:]
    if train.size == 0:
        raise OnlineError("authors.train.val_fraction leaves no training rows.")
    batch_size = int(tc.batch_size)
    steps_per_epoch = max(train.size // batch_size, 1)

    def batch_fn(step: int) -> dict[str, np.ndarray]:
        picks = train[
            training.epoch_batch_indices(train.size, batch_size, seed, step, steps_per_epoch)
        ]
        return {
            "x": model_input(rows.table, rows.examples[picks], window_input, steps_),
            "label": rows.targets[picks],
            "mask": np.ones(batch_size, bool),
        }

    eval_fn = xla.jit(functools.partial(steps.eval_step, model=network), inference=True)

    def val_batches():
        for begin in range(0, val.size, batch_size):
            picks = val[begin : begin + batch_size]
            x = model_input(rows.table, rows.examples[picks], window_input, steps_)
            padded = np.zeros((batch_size, *x.shape[1:]), np.float32)
            padded[: len(x)] = x
            labels = np.zeros(batch_size, np.int32)
            labels[: len(x)] = rows.targets[picks]
            yield {"x": padded, "label": labels, "mask": np.arange(batch_size) < len(x)}

    state, history = training.fit_network(
        section,
        name=f"authors {section.network}",
        workdir=workdir,
        model=network,
        loss_fn=loss_fn,
        input_shape=model_input(rows.table, rows.examples[:1], window_input, steps_).shape,
        steps_per_epoch=steps_per_epoch,
        batch_fn=batch_fn,
        validate=(
            (lambda s: training.evaluate_rows(eval_fn, s, val_batches(), loss_fn))
            if val.size
            else None
        ),
    )
    return state, history, (int(train.size), int(val.size))


def train_authors(
    config: ml_collections.ConfigDict,
    recordings: Sequence[Recording],
    workdir: pathlib.Path,
    *,
    num_classes: int,
) -> AuthorsModel:
    """Trains the authors' recognizer (or resumes / reloads it from ``workdir``).

    Writes ``standardizer.npz`` and ``hmm_counts.npz`` (the authors' saved
    normalization and ``.mat`` files) beside the network's checkpoints.
    """
    section = config.authors
    options = hmm.options_from_mapping(section.hmm, num_classes=num_classes)
    window_input, steps_ = window_of(section)
    tc = section.train
    seed = int(tc.seed)
    progress = bool(tc.progress_bar)
    started = time.perf_counter()
    rows = build_training_rows(
        recordings,
        options,
        window=steps_ if window_input == "frame_windows" else 1,
        seed=seed,
        progress=progress,
    )
    centre_rows = rows.examples[:, rows.centre]
    standardizer = features.fit_standardizer(rows.table, centre_rows)
    rows.table = standardizer.apply(rows.table)
    standardizer.save(workdir / "standardizer.npz")
    counts = hmm.count_statistics([(r.num_frames, r.segments) for r in recordings], options)
    counts.save(workdir / "hmm_counts.npz")
    state_counts = np.bincount(rows.targets, minlength=options.num_states)
    with np.errstate(divide="ignore"):  # unseen states: -inf, never emitted
        log_state_prior = np.log(state_counts / state_counts.sum())
    log.info(
        "authors: %d MG rows + %d rest rows (pool %d), %d distinct feature rows, built in %.1f s",
        rows.num_gesture_rows,
        len(rows.targets) - rows.num_gesture_rows,
        rows.rest_pool,
        len(rows.table),
        time.perf_counter() - started,
    )

    network = make_network(section, options.num_states)
    output = emission.output_of(section.network)
    loss_fn = emission.keras_categorical_crossentropy(output)
    state, history, (train_rows, val_rows) = _fit_network(
        section, rows, workdir, network, loss_fn, window_input, steps_
    )
    metrics.write_json(
        {
            "gesture_rows": rows.num_gesture_rows,
            "rest_rows": int(len(rows.targets) - rows.num_gesture_rows),
            "rest_pool": rows.rest_pool,
            "train_rows": train_rows,
            "val_rows": val_rows,
            "state_counts": state_counts.tolist(),
        },
        workdir / "training_rows.json",
    )
    return AuthorsModel(
        options=options,
        network=network,
        output=output,
        state=state,
        batch_size=int(section.decode_batch_size),
        standardizer=standardizer,
        counts=counts,
        log_state_prior=log_state_prior,
        window_input=window_input,
        steps=steps_,
        history=history,
    )


@dataclasses.dataclass
class Decoded:
    """One recording's decoding: segments in the reported layout and timings (seconds)."""

    segments: list[tuple[int, int, int]]
    path: np.ndarray
    rows: int
    network_seconds: float
    viterbi_seconds: float


def decode_recording(model: AuthorsModel, recording: Recording) -> Decoded:
    """Features -> network -> emission scaling -> Viterbi -> segments for one recording."""
    options = model.options
    num_rows = hmm.decoded_rows(recording.num_frames, options.frames)
    started = time.perf_counter()
    log_probs = model.log_outputs(recording.joints, np.arange(num_rows), recording.name)
    log_lik = hmm.emission_log_likelihood(log_probs, options, model.log_state_prior)
    network_seconds = time.perf_counter() - started
    log_init, log_trans = model.transitions
    started = time.perf_counter()
    path, scores = viterbi.decode_path(log_init, log_trans, log_lik)
    viterbi_seconds = time.perf_counter() - started
    raw = hmm.extract_segments(path, scores, options)
    return Decoded(
        segments=hmm.rows_to_frames(raw, options.frames),
        path=path,
        rows=num_rows,
        network_seconds=network_seconds,
        viterbi_seconds=viterbi_seconds,
    )
