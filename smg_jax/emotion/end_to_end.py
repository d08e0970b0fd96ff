"""End-to-end emotional-state recognition: a registry skeleton model reads the instance itself.

An instance lasts minutes (SMG: 3,600-9,000 frames), far more than a
skeleton GCN reads at once, so the model sees *windows* of it, each labelled
with the instance's state:

* ``window.mode = "first"``: one window, the instance's first ``length``
  frames written into zeros (``length = 90`` is the authors'
  ``smg_gendata_emotion.py``: rows ``[start, start + min(T, 90))``, world
  xyz, zero-padded to 90, one body, nothing else). With the preset
  ``resample`` at ``num_frames = length`` and ``fill_missing=False``,
  ``center_joint=-1`` the preset is the identity (output frame ``i`` samples
  input position ``i`` exactly), so the model reads the authors' array bit
  for bit; ``experiments/configs/emotion_authors90.py`` sets exactly that.
* ``window.mode = "cover"``: windows of ``length`` frames every ``stride``
  frames, the last one moved back to end at the instance's end, so that
  every frame is seen; an instance shorter than ``length`` is one window of
  all its frames. Each window goes through the configured preset (e.g.
  ``centered`` resampled to 32 frames). The instance's logits are the mean of
  its windows' logits (``aggregate_windows``).

Training, per fold, is the classification recipe on the training engine
(``smg_jax.train``: the optimizer, schedule and loss sections, the pure
jitted ``train_step``, orbax checkpoints with the data-iterator position,
TensorBoard, tqdm, SIGTERM save); a fold killed at any step resumes from
its last checkpoint to the same numbers. The final model of each fold is evaluated once on its test
participants: nothing is selected on test.
"""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from smg_jax.data import pipeline, transforms
from smg_jax.emotion.data import EmotionError, Instance
from smg_jax.train import engine, losses, optim, parallel, setup
from smg_jax.train import state as state_lib

log = logging.getLogger(__name__)

WINDOW_MODES = ("first", "cover")
NUM_STATES = 2


# ---------------------------------------------------------------------------
# Windows.
# ---------------------------------------------------------------------------


def window_starts(num_frames: int, length: int, stride: int, mode: str) -> np.ndarray:
    """``(W,)`` int64 first frames of an instance's windows (see the module docstring).

    ``"cover"``: ``0, stride, 2 stride, ...`` while a window fits, then one more
    ending at the last frame if the stride left frames unseen.
    """
    if mode not in WINDOW_MODES:
        raise EmotionError(f"window.mode={mode!r}; choose from {list(WINDOW_MODES)}.")
    if length < 1 or stride < 1:
        raise EmotionError(f"window.length={length} and window.stride={stride} must be >= 1.")
    if num_frames < 1:
        raise EmotionError(f"An instance of {num_frames} frames has no window.")
    if mode == "first" or num_frames <= length:
        return np.zeros(1, np.int64)
    starts = np.arange(0, num_frames - length + 1, stride, dtype=np.int64)
    if starts[-1] + length < num_frames:
        starts = np.append(starts, num_frames - length)
    return starts


def window_joints(joints: np.ndarray, start: int, length: int, mode: str) -> np.ndarray:
    """The window's frames: ``(length, V, 3)`` zero-padded for ``"first"``, else a slice.

    ``"first"`` reproduces ``read_xyz`` of the authors' ``mg_read_skeleton.py``
    with ``max_frame = 90``: ``min(T, length)`` rows from the start, the rest zeros.
    """
    if mode == "first":
        out = np.zeros((length, *joints.shape[1:]), np.float32)
        kept = joints[:length]
        out[: len(kept)] = kept
        return out
    return np.asarray(joints[start : start + length], np.float32)


class WindowSource(Sequence):
    """Random access to every window of some instances, as ``pipeline`` examples.

    Element ``i`` is ``{"joints": (L, V, 3), "label": state, "sample_id",
    "segment_index": instance row, "start", "end": absolute rows}``, so the
    classification pipeline (``pipeline.train_iterator``, ``setup.predict``)
    batches it unchanged. ``instance_of[i]`` is the window's position in
    ``instances``.
    """

    def __init__(self, instances: Sequence[Instance], length: int, stride: int, mode: str):
        self.instances = list(instances)
        self.length, self.mode = int(length), mode
        owners, starts = [], []
        for position, inst in enumerate(self.instances):
            first = window_starts(inst.num_frames, self.length, int(stride), mode)
            owners.append(np.full(first.size, position, np.int64))
            starts.append(first)
        self.instance_of = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self.instance_of.size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        inst = self.instances[int(self.instance_of[index])]
        start = int(self.starts[index])
        joints = window_joints(inst.joints, start, self.length, self.mode)
        return {
            "joints": joints,
            "label": inst.state,
            "sample_id": inst.sample_id,
            "segment_index": inst.index,
            "start": inst.start + start,
            "end": inst.start + start + min(self.length, inst.num_frames - start),
        }

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([self.instances[i].state for i in self.instance_of], np.int64)


def aggregate_windows(
    window_logits: np.ndarray, instance_of: np.ndarray, num_instances: int
) -> np.ndarray:
    """``(N, K)`` per-instance mean of ``(W, K)`` window logits; every instance needs a window."""
    window_logits = np.asarray(window_logits, np.float64)
    sums = np.zeros((num_instances, window_logits.shape[1]), np.float64)
    np.add.at(sums, instance_of, window_logits)
    counts = np.bincount(instance_of, minlength=num_instances)
    if (counts == 0).any():
        raise EmotionError(f"Instances {np.flatnonzero(counts == 0)[:5].tolist()} have no window.")
    return sums / counts[:, None]


def make_preset(config: ml_collections.ConfigDict) -> transforms.Preset:
    """The per-window preset (``data.preset`` + overrides); refuses a lossy "first" window.

    The authors' array is the first ``length`` frames as they are, so in
    ``"first"`` mode the preset must not drop or interpolate frames.
    """
    preset = setup.make_preset(config)
    window = config.window
    if window.mode == "first" and preset.temporal != "resample":
        raise EmotionError(
            f"window.mode='first' with data.preset={config.data.preset!r} "
            f"(temporal={preset.temporal!r}) would cut the window again; use data.preset="
            f"'resample' with data.num_frames={window.length}."
        )
    return preset


# ---------------------------------------------------------------------------
# Training one fold.
# ---------------------------------------------------------------------------


def train_fold(
    config: ml_collections.ConfigDict,
    fold_dir: pathlib.Path,
    train: WindowSource,
    test: WindowSource,
    *,
    fold_index: int,
    description: str,
) -> dict[str, Any]:
    """Trains the configured model on ``train`` windows (resuming) and scores ``test`` instances.

    Writes ``fold_dir/checkpoints``, ``fold_dir/tensorboard``.

    Returns:
      ``{"logits": (N_test, 2) instance logits (mean over windows),
      "history": per-evaluation rows, "steps": optimizer steps,
      "train_windows", "test_windows", "num_params"}``.
    """
    tc = config.train
    preset = make_preset(config)
    model = setup.make_model(config, NUM_STATES)
    if len(train) == 0 or len(test) == 0:
        raise EmotionError(f"fold {fold_index}: no training or no test window.")
    cadence = setup.make_cadence(config, len(train), int(config.eval.every_epochs))
    schedule = optim.make_schedule(config, cadence.steps_per_epoch, int(tc.epochs))
    tx = optim.make_optimizer(config, schedule)
    loss_fn = losses.make_loss(config, class_counts=np.bincount(train.labels, minlength=2))
    # Each fold its own seeds, all functions of train.seed: the folds differ, runs do not.
    seed = int(tc.seed) + 1000 * fold_index
    input_shape = (1, int(config.model.get("num_persons", 1)), *preset.output_shape(25))
    state = setup.fresh_state(config, model, NUM_STATES, input_shape, seed, tx)
    num_params = state_lib.count_params(state.params)
    member = setup.make_member(config, fold_dir, None, label=f"fold {fold_index}: ")
    restored = member.restore(state)
    if restored is not None:
        state = restored
        log.info("fold %d: resumed at step %d", fold_index, int(state.step))
    train_step, eval_fn = parallel.make_steps(
        parallel.SINGLE_DEVICE,
        model,
        tx=tx,
        loss_fn=loss_fn,
        schedule=schedule,
        accum_steps=int(tc.accum_steps),
        model_name=config.model.name,
    )
    member.iterator = pipeline.train_iterator(
        train,
        preset,
        batch_size=int(tc.batch_size),
        seed=seed,
        num_threads=int(config.data.num_threads),
        state=member.record.data,
    )
    _log_fold(description, fold_index, train, test, config.model.name, num_params, cadence)
    trainer = engine.Engine(
        train_step=train_step,
        next_batch=lambda: next(member.iterator),
        members=[member],
        cadence=cadence,
        evaluator=instance_evaluator(config, test, preset, eval_fn),
        checkpoint_state=lambda state, _: state,
        train_scalars=("lr", "grad_norm"),
        description=f"fold {fold_index} {config.model.name}",
        progress_bar=bool(tc.progress_bar),
    )
    state, step = trainer.run(state, int(state.step))
    started = time.perf_counter()
    (final,) = trainer.finish(state, step)
    log.info("fold %d: evaluated in %.1f s", fold_index, time.perf_counter() - started)
    return {
        "logits": final.outputs,
        "history": member.record.history,
        "steps": step,
        "train_windows": len(train),
        "test_windows": len(test),
        "num_params": num_params,
    }


def _log_fold(description, fold_index, train, test, model_name, num_params, cadence) -> None:
    log.info(
        "%s fold %d: %d train windows of %d instances, %d test windows of %d instances; "
        "%s (%s parameters), %d steps of batch %d",
        *(description, fold_index, len(train), len(train.instances), len(test)),
        *(len(test.instances), model_name, f"{num_params:,}", cadence.total_steps),
        cadence.batch_size,
    )


def instance_evaluator(config, test: WindowSource, preset: transforms.Preset, eval_fn):
    """The evaluator of a fold's test instances: accuracy of the mean of their windows' logits."""
    test_labels = np.asarray([inst.state for inst in test.instances], np.int64)

    def evaluate(state, members: Sequence[engine.Member]) -> list[engine.Evaluation]:
        windows = setup.predict(eval_fn, state, test, preset, int(config.eval.batch_size), 0)
        logits = aggregate_windows(windows, test.instance_of, len(test.instances))
        accuracy = float(np.mean(np.argmax(logits, 1) == test_labels))
        evaluation = engine.Evaluation(
            metrics={"test_accuracy": accuracy},
            scalars={"test/accuracy": accuracy},
            outputs=logits,
        )
        return [evaluation for _ in members]

    return evaluate
