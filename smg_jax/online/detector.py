"""A stronger online recognizer: any classification model of the registry as a window detector.

Training: windows of ``window`` frames every ``stride`` frames over the
training recordings, each labelled with the class of its centre frame (an
MG class, or ``num_classes`` for "no MG"), go through a data preset
(``smg_jax.data.transforms``; one per stream, stacked along channels) into a
registry model with ``num_classes + 1`` outputs, trained with our train step,
optimizer, losses and checkpoints. Every epoch keeps all MG windows and a
fresh random draw of at most ``background_ratio`` times as many no-MG windows
(no MG covers most frames).

Inference: window class probabilities every ``infer_stride`` frames are
placed at the windows' centre frames and linearly interpolated into
per-frame scores ``(T, num_classes + 1)``, then decoded into segments by

``threshold``
    per class, frames whose probability is above ``threshold`` form runs;
    runs of one class closer than ``merge_gap`` frames are merged, runs
    shorter than ``min_length`` dropped, each scored by its mean
    probability, and a non-maximum suppression across classes drops a
    segment whose IoU with a better one exceeds ``nms_iou``;
``hmm``
    the HMM decoder of the authors' recognizer (``hmm``) with the
    per-frame class probabilities as emissions (each class's states share
    its probability, divided by its training frequency), transitions
    estimated from the training MGs, ``segment_rule`` and filters as
    configured.

Segments are reported in the label file's layout ``[start, end)``, 0-based.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from smg_jax import metrics, models
from smg_jax.data import pipeline, transforms
from smg_jax.data.recordings import Recording
from smg_jax.online import hmm, training, viterbi
from smg_jax.online.errors import OnlineError
from smg_jax.online.metric import iou
from smg_jax.runtime import xla
from smg_jax.train import losses, steps
from smg_jax.train import state as state_lib

log = logging.getLogger(__name__)

DECODERS = ("threshold", "hmm")


def frame_labels(recording: Recording, num_classes: int) -> np.ndarray:
    """``(T,)`` int32 class per frame, ``num_classes`` outside every MG (later rows win)."""
    labels = np.full(recording.num_frames, num_classes, np.int32)
    for label, start, end in recording.segments:
        labels[start:end] = label
    return labels


def window_starts(num_frames: int, window: int, stride: int) -> np.ndarray:
    """Window starts every ``stride`` frames, plus one flush with the end (``[0]`` if short)."""
    if window < 1 or stride < 1:
        raise OnlineError(f"window ({window}) and stride ({stride}) must be >= 1.")
    if num_frames <= window:
        return np.zeros(1, np.int64)
    starts = np.arange(0, num_frames - window + 1, stride)
    if starts[-1] != num_frames - window:
        starts = np.append(starts, num_frames - window)
    return starts.astype(np.int64)


def window_joints(joints: np.ndarray, start: int, window: int) -> np.ndarray:
    """``(window, V, 3)`` frames from ``start``; a recording shorter than that repeats its last."""
    piece = joints[start : start + window]
    if len(piece) < window:
        piece = np.concatenate([piece, np.repeat(piece[-1:], window - len(piece), axis=0)])
    return piece


class WindowSource(Sequence):
    """Random-access training windows over recordings: ``smg_jax.data.pipeline`` examples.

    Item ``i`` is ``{"joints": (window, 25, 3), "label": int, "sample_id",
    "segment_index": i}`` with ``label`` the centre frame's class
    (``num_classes`` = no MG).
    """

    def __init__(
        self, recordings: Sequence[Recording], window: int, stride: int, num_classes: int
    ) -> None:
        self.recordings = list(recordings)
        self.window = int(window)
        recording_index, starts, labels = [], [], []
        for index, recording in enumerate(self.recordings):
            mine = window_starts(recording.num_frames, self.window, int(stride))
            centres = np.minimum(mine + self.window // 2, recording.num_frames - 1)
            recording_index.append(np.full(mine.size, index))
            starts.append(mine)
            labels.append(frame_labels(recording, num_classes)[centres])
        self.recording_index = np.concatenate(recording_index)
        self.starts = np.concatenate(starts)
        self.labels = np.concatenate(labels).astype(np.int32)

    def __len__(self) -> int:
        return int(self.starts.size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        recording = self.recordings[int(self.recording_index[index])]
        return {
            "joints": window_joints(recording.joints, int(self.starts[index]), self.window),
            "label": int(self.labels[index]),
            "sample_id": recording.name,
            "segment_index": int(index),
        }


def frame_scores(
    window_probs: np.ndarray, starts: np.ndarray, window: int, num_frames: int
) -> np.ndarray:
    """``(T, C)`` per-frame scores: window scores at their centre frames, linearly interpolated.

    Frames before the first centre (after the last) take the first (last) window's scores.
    """
    centres = np.minimum(starts + window // 2, num_frames - 1).astype(np.float64)
    frames = np.arange(num_frames, dtype=np.float64)
    columns = [np.interp(frames, centres, window_probs[:, c]) for c in range(window_probs.shape[1])]
    return np.stack(columns, axis=1)


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as half-open ``(start, end)``."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True)
    )


def threshold_segments(
    probs: np.ndarray,
    *,
    threshold: float,
    merge_gap: int,
    min_length: int,
    nms_iou: float,
) -> list[tuple[int, int, int, float]]:
    """Threshold, merge and NMS decoding of per-frame scores.

    Args:
      probs: ``(T, K + 1)`` per-frame class probabilities, the last column "no MG".
      threshold: a frame belongs to class ``c`` when its probability is above it.
      merge_gap: runs of one class separated by at most this many frames merge.
      min_length: runs shorter than this many frames are dropped.
      nms_iou: a segment whose IoU with a higher-scoring kept one exceeds this is dropped.

    Returns:
      ``(label, start, end, score)`` with ``[start, end)`` frames, sorted by start.
    """
    candidates = []
    for c in range(probs.shape[1] - 1):
        merged: list[list[int]] = []
        for start, end in _runs(probs[:, c] > threshold):
            if merged and start - merged[-1][1] <= merge_gap:
                merged[-1][1] = end
            else:
                merged.append([start, end])
        for start, end in merged:
            if end - start >= min_length:
                candidates.append((c, start, end, float(probs[start:end, c].mean())))
    candidates.sort(key=lambda s: -s[3])
    kept: list[tuple[int, int, int, float]] = []
    for segment in candidates:
        if all(iou(segment, other) <= nms_iou for other in kept):
            kept.append(segment)
    return sorted(kept, key=lambda s: (s[1], s[2]))


def hmm_segments(
    log_probs: np.ndarray,
    counts: hmm.HMMCounts,
    options: hmm.HMMOptions,
    log_class_prior: np.ndarray,
) -> tuple[list[tuple[int, int, int, float]], float]:
    """The HMM decoder on per-frame class log-probabilities ``(T, K + 1)``.

    Returns ``(segments as (label, start, end, gain) with [start, end) frames,
    Viterbi seconds)``.
    """
    per_class = options.states_per_class
    state_class = np.append(np.repeat(np.arange(options.num_classes), per_class), -1)
    log_states = log_probs[:, state_class]  # rest (-1) takes the last column: "no MG"
    log_lik = hmm.emission_log_likelihood(log_states, options, log_class_prior[state_class])
    log_init, log_trans = hmm.log_transitions(counts, options)
    started = time.perf_counter()
    path, scores = viterbi.decode_path(log_init, log_trans, log_lik)
    seconds = time.perf_counter() - started
    rows = hmm.extract_segments(path, scores, options)
    return [(label, begin, end + 1, gain) for label, begin, end, gain in rows], seconds


def make_presets(section: ml_collections.ConfigDict) -> list[transforms.Preset]:
    """One preset per input stream: ``data.preset`` with ``data.preset_overrides``, per stream.

    ``data.streams`` (e.g. ``("joint", "joint_motion")``) are stacked along
    the channel axis, so the model sees ``3 * len(streams)`` channels: the
    motion stream keeps the small fast oscillations that many MGs are.
    """
    streams = tuple(section.data.streams)
    if not streams:
        raise OnlineError("detector.data.streams is empty; name at least one stream.")
    overrides = dict(section.data.preset_overrides)
    if "stream" in overrides:
        raise OnlineError("Set detector.data.streams, not detector.data.preset_overrides.stream.")
    return [
        transforms.get_preset(
            section.data.preset, num_frames=int(section.data.num_frames), stream=stream, **overrides
        )
        for stream in streams
    ]


def window_input(
    example: dict[str, Any],
    presets: Sequence[transforms.Preset],
    *,
    train: bool = False,
    rng_key: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """``(1, T, V, 3 * streams)`` model input of one window (all streams drawn alike).

    ``rng_key`` = ``(seed, shard, position)`` of ``pipeline.example_rng``; each
    stream gets a generator from the same key, hence the same augmentation.
    """
    parts = []
    for preset in presets:
        rng = pipeline.example_rng(*rng_key) if (train and preset.augment) else None
        parts.append(pipeline.make_element(example, preset, train=train, rng=rng)["x"])
    return np.concatenate(parts, axis=-1)


def make_model(section: ml_collections.ConfigDict, num_classes: int) -> tuple[Any, str]:
    """The registry model of ``detector.model`` with ``num_classes + 1`` outputs and its name.

    Its ``in_channels`` is set to ``3 * len(data.streams)``.
    """
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in section.model.items()}
    name = fields.pop("name")
    if name not in models.MODELS:
        raise OnlineError(f"detector.model.name={name!r}; choose from {sorted(models.MODELS)}.")
    channels = 3 * len(tuple(section.data.streams))
    if "in_channels" in fields:
        fields["in_channels"] = channels
    elif channels != 3:
        raise OnlineError(f"Model {name!r} has no in_channels field; use one stream.")
    return models.create(name, num_classes=num_classes + 1, **fields), name


@dataclasses.dataclass
class DetectorModel:
    """A trained detector and what decoding needs."""

    model: Any
    model_name: str  # its name in smg_jax.models
    state: state_lib.TrainState
    presets: list[transforms.Preset]
    window: int
    infer_stride: int
    batch_size: int
    num_classes: int
    counts: hmm.HMMCounts
    hmm_options: hmm.HMMOptions
    log_class_prior: np.ndarray
    decode: ml_collections.ConfigDict
    history: list[dict[str, Any]]

    @functools.cached_property
    def _eval_fn(self):
        return xla.jit(
            functools.partial(steps.eval_step, model=self.model),
            inference=True,
            model_name=self.model_name,
        )

    def frame_probabilities(self, recording: Recording) -> np.ndarray:
        """``(T, K + 1)`` per-frame class probabilities of one recording."""
        starts = window_starts(recording.num_frames, self.window, self.infer_stride)
        size = self.batch_size
        probs = []
        for begin in range(0, starts.size, size):
            chunk = starts[begin : begin + size]
            x = None
            for row, start in enumerate(chunk):
                example = {
                    "joints": window_joints(recording.joints, int(start), self.window),
                    "label": 0,
                    "sample_id": recording.name,
                    "segment_index": f"window at frame {start}",
                }
                window = window_input(example, self.presets)
                if x is None:
                    x = np.zeros((size, *window.shape), np.float32)
                x[row] = window
            logits = np.asarray(self._eval_fn(self.state, {"x": x}))[: chunk.size]
            probs.append(np.asarray(jax.nn.softmax(logits, axis=-1)))
        return frame_scores(np.concatenate(probs), starts, self.window, recording.num_frames)

    def detect(self, recording: Recording) -> tuple[dict[str, list], dict[str, float]]:
        """Segments of each decoder (``(label, start, end)``, ``[start, end)``) and timings."""
        started = time.perf_counter()
        probs = self.frame_probabilities(recording)
        network_seconds = time.perf_counter() - started
        d = self.decode
        by_threshold = threshold_segments(
            probs,
            threshold=float(d.threshold),
            merge_gap=int(d.merge_gap),
            min_length=int(d.min_length),
            nms_iou=float(d.nms_iou),
        )
        by_hmm, viterbi_seconds = hmm_segments(
            np.log(np.maximum(probs, 1e-12)), self.counts, self.hmm_options, self.log_class_prior
        )
        segments = {
            "threshold": [s[:3] for s in by_threshold],
            "hmm": [s[:3] for s in by_hmm],
        }
        return segments, {"network_seconds": network_seconds, "viterbi_seconds": viterbi_seconds}


def _epoch_batches(
    source: WindowSource,
    presets,
    mg: np.ndarray,
    background: np.ndarray,
    num_background: int,
    seed: int,
    batch_size: int,
    steps_per_epoch: int,
):
    """``step -> {"x", "label", "mask"}``: batches of every MG window and, each epoch, a fresh
    draw of ``num_background`` no-MG windows (a pure function of the seed and the step)."""
    epoch_size = mg.size + num_background

    @functools.lru_cache(maxsize=2)
    def members(epoch: int) -> np.ndarray:
        rng = np.random.default_rng([seed, epoch, 7])
        drawn = rng.choice(background, num_background, replace=False)
        return np.concatenate([mg, drawn])

    def batch_fn(step: int) -> dict[str, np.ndarray]:
        epoch = step // steps_per_epoch
        picks = members(epoch)[
            training.epoch_batch_indices(epoch_size, batch_size, seed, step, steps_per_epoch)
        ]
        return {
            "x": np.stack(
                [
                    window_input(
                        source[int(i)],
                        presets,
                        train=True,
                        rng_key=(seed, 0, step * batch_size + j),
                    )
                    for j, i in enumerate(picks)
                ]
            ),
            "label": source.labels[picks],
            "mask": np.ones(batch_size, bool),
        }

    return batch_fn


def train_detector(
    config: ml_collections.ConfigDict,
    recordings: Sequence[Recording],
    workdir: pathlib.Path,
    *,
    num_classes: int,
) -> DetectorModel:
    """Trains (or resumes / reloads) the window detector on the training recordings."""
    section = config.detector
    tc = section.train
    seed = int(tc.seed)
    window, stride = int(section.data.window), int(section.data.stride)
    source = WindowSource(recordings, window, stride, num_classes)
    presets = make_presets(section)
    mg = np.flatnonzero(source.labels != num_classes)
    background = np.flatnonzero(source.labels == num_classes)
    ratio = float(section.data.background_ratio)
    num_background = background.size if ratio <= 0 else min(background.size, round(ratio * mg.size))
    epoch_size = mg.size + num_background
    batch_size = int(tc.batch_size)
    if epoch_size == 0:
        raise OnlineError("The training recordings give no detector windows.")
    steps_per_epoch = max(epoch_size // batch_size, 1)

    batch_fn = _epoch_batches(
        source, presets, mg, background, num_background, seed, batch_size, steps_per_epoch
    )

    model, name = make_model(section, num_classes)
    class_counts = np.bincount(source.labels[mg], minlength=num_classes + 1).astype(np.float64)
    class_counts[num_classes] = num_background
    loss_fn = losses.make_loss(section, class_counts=class_counts)
    log.info(
        "detector %s: %d windows (%d MG, %d no-MG, %d per epoch), %d steps per epoch",
        *(name, len(source), mg.size, background.size, epoch_size, steps_per_epoch),
    )
    state, history = training.fit_network(
        section,
        name=f"detector {name}",
        workdir=workdir,
        model=model,
        loss_fn=loss_fn,
        input_shape=window_input(source[0], presets)[None].shape,
        steps_per_epoch=steps_per_epoch,
        batch_fn=batch_fn,
    )
    options = hmm.options_from_mapping(section.hmm, num_classes=num_classes)
    counts = hmm.count_statistics(
        [(r.num_frames, r.segments) for r in recordings], options, per_frame=True
    )
    counts.save(workdir / "hmm_counts.npz")
    with np.errstate(divide="ignore"):  # a class without training windows: -inf, never emitted
        log_class_prior = np.log(class_counts / class_counts.sum())
    metrics.write_json(
        {
            "windows": len(source),
            "mg_windows": int(mg.size),
            "background_windows": int(background.size),
            "background_per_epoch": int(num_background),
            "class_counts_per_epoch": class_counts.tolist(),
        },
        workdir / "windows.json",
    )
    return DetectorModel(
        model=model,
        model_name=name,
        state=state,
        presets=presets,
        window=window,
        infer_stride=int(section.data.infer_stride),
        batch_size=int(section.decode.batch_size),
        num_classes=num_classes,
        counts=counts,
        hmm_options=options,
        log_class_prior=log_class_prior,
        decode=section.decode,
        history=history,
    )
