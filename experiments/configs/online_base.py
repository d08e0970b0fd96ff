"""Every field of an online-recognition run, with the authors' and the published choices.

    python -m experiments.online --config=experiments/configs/online_base.py \\
        --workdir=runs/online --config.data.manual_dir=/path/to/SMG

runs both recognizers: the authors' HMM + emission network exactly as their
code does it (``authors``) and the window detector (``detector``). Variant
configs import ``get_config`` and change a few fields; ``online_authors.py``
and ``online_detector.py`` run one recognizer each, ``online_synthetic.py``
both on a CPU-sized synthetic SMG, ``online_tiny.py`` the smoke test.
See ``docs/online.md`` for every field that is a correction of the authors' code.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from experiments.configs import base
from smg_jax import models, runtime


def _optimizer(name: str, lr: float) -> ml_collections.ConfigDict:
    # The fields smg_jax.train.optim reads, plus rho for Keras' RMSprop.
    return ml_collections.ConfigDict(
        {
            "name": name,
            "lr": lr,
            "rho": 0.9,
            "eps": 1e-7 if name == "rmsprop" else 1e-8,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 0.0,
            "weight_decay_on": "all",
            "weight_decay_rules": "",
            "grad_clip_norm": 0.0,
            "b1": 0.9,
            "b2": 0.999,
        }
    )


def _schedule(name: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "name": name,
            "milestones": (),
            "gamma": 0.1,
            "warmup_epochs": 0,
            "per_step": False,
            "min_lr": 0.0,
        }
    )


def _train(epochs: int, batch_size: int) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "seed": 0,
            "max_steps": config_dict.placeholder(int),  # cut training short (smoke tests)
            "log_every_steps": 50,
            "checkpoint_every_steps": 0,  # 0: at every epoch end
            "keep_checkpoints": 2,
            "progress_bar": True,
            "tensorboard": True,
        }
    )


def _authors() -> ml_collections.ConfigDict:
    """The authors' recognizer (online recognition/SMG of mikecheninoulu/SMG)."""
    authors = ml_collections.ConfigDict()
    # HMM and training-row options: the defaults are the authors' code; see smg_jax.online.hmm.
    authors.hmm = ml_collections.ConfigDict(
        {
            "states_per_class": 5,
            "frames": "one_based",  # correction: zero_based
            "alignment": "authors",  # correction: consistent
            "transitions": "counts_source_shift",  # correction: normalized
            "emission_scores": "posterior",  # correction: scaled_likelihood
            "rest_frames": "around_gestures",  # correction: anywhere
            "segment_rule": "authors",  # correction: class_runs
            "rest_margin": 5,
            "rest_samples": 20000,
            "aes": True,
            "mu": -2.5,
            "lam": 2.1,
            "boundary_rest_frames": 5,
            "min_length": 15,
            "score_threshold": -3.0,
        }
    )
    authors.network = "mlp"  # the released main.py (netmodel = 2); att_bigru: the paper's
    authors.mlp = ml_collections.ConfigDict({"hidden": (2000, 2000), "dropout": 0.1})
    authors.att_bigru = ml_collections.ConfigDict({"units": 1000, "dense": 1000, "dropout": 0.3})
    authors.att_bigru_input = "row_chunks"  # as their code trains it; or frame_windows
    authors.att_bigru_steps = 5  # LSTM_step
    authors.optimizer = _optimizer("rmsprop", 1e-3)  # Keras RMSprop defaults
    authors.schedule = _schedule("constant")
    authors.train = _train(epochs=40, batch_size=128)
    authors.train.val_fraction = 0.1
    authors.train.early_stopping_patience = 2  # on validation accuracy
    authors.train.plateau_patience = 1  # halve the rate when validation loss stalls
    authors.train.plateau_factor = 0.5
    authors.train.plateau_min_lr = 1e-4
    authors.decode_batch_size = 2000  # their predict() batch
    return authors


def _detector() -> ml_collections.ConfigDict:
    """The window detector."""
    detector = ml_collections.ConfigDict()
    detector.model = ml_collections.ConfigDict({"name": "stgcn", **models.default_fields("stgcn")})
    detector.data = ml_collections.ConfigDict(
        {
            "preset": "centered",
            "num_frames": 32,  # frames the model sees (the window is resampled to this)
            "window": 32,  # frames per window (SMG MGs average 51 frames)
            "stride": 4,  # between training windows
            "infer_stride": 4,  # between test windows
            "background_ratio": 1.0,  # no-MG windows per MG window in each epoch; <= 0: all
            # Input streams stacked along channels (smg_jax.data.transforms.STREAMS); the
            # motion stream keeps the small fast oscillations many MGs are.
            "streams": ("joint", "joint_motion"),
            # Any Preset field (smg_jax.data.transforms.Preset) to override, e.g. view="hip".
            "preset_overrides": ml_collections.ConfigDict({}),
        }
    )
    detector.optimizer = _optimizer("sgd", 0.05)
    detector.optimizer.weight_decay = 1e-4
    detector.schedule = _schedule("cosine")
    detector.schedule.per_step = True
    detector.loss = ml_collections.ConfigDict(
        {"name": "cross_entropy", "smoothing": 0.1, "beta": 0.9999}
    )
    detector.train = _train(epochs=10, batch_size=64)
    detector.decode = ml_collections.ConfigDict(
        {"threshold": 0.5, "merge_gap": 8, "min_length": 10, "nms_iou": 0.3, "batch_size": 256}
    )
    # The HMM decoder on the detector's per-frame scores, every correction on.
    detector.hmm = ml_collections.ConfigDict(
        {
            "states_per_class": 5,
            "frames": "zero_based",
            "alignment": "consistent",
            "transitions": "normalized",
            "emission_scores": "scaled_likelihood",
            "segment_rule": "class_runs",
            "aes": False,
            "boundary_rest_frames": 0,
            "min_length": 8,
            "score_threshold": 0.0,
        }
    )
    return detector


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.recognizers = ("authors", "detector")
    config.data = base.data_source()
    config.authors = _authors()
    config.detector = _detector()
    config.eval = ml_collections.ConfigDict(
        {"iou_threshold": 0.3, "timelines": True, "progress_bar": True, "tensorboard": True}
    )
    config.runtime = runtime.config_section(compilation_cache="")
    return config
