"""Every field of an emotion (relaxed vs stressed) run; the method configs change a few.

    python -m experiments.emotion --config=experiments/configs/emotion_mg_gt.py \\
        --workdir=runs/emotion_mg_gt --config.data.manual_dir=/path/to/SMG

Variants: ``emotion_authors90.py`` (end-to-end, the authors' 90-frame
preset), ``emotion_windows.py`` (end-to-end, windows over the whole
instance, mean of window logits), ``emotion_mg_gt.py`` (MG features from the
ground truth) and ``emotion_mg_recognized.py`` (MG features from the online
recognizer). Each takes an argument after a colon that sizes it for a CPU on
a synthetic SMG: ``:synthetic`` (small scale, minutes) or ``:tiny`` (the
tests, seconds). ``--config.protocol.name=cross_subject`` switches from the
5-fold subject-wise cross-validation to the paper's split. See docs/emotion.md.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from experiments.configs import base, online_base


def get_config(model: str = "stgcn") -> ml_collections.ConfigDict:
    # The training sections (model, optimizer, schedule, loss, train, eval, init) are the
    # classification ones: end-to-end methods train with smg_jax.train as they do.
    config = base.get_config(model)
    config.unlock()  # the emotion sections below are added to the locked classification base
    config.method = "mg_features"  # or end_to_end

    config.protocol = ml_collections.ConfigDict()
    config.protocol.name = "cv"  # or cross_subject
    config.protocol.num_folds = 5
    config.protocol.seed = 0  # fixes the subject folds (the same every run)
    config.protocol.train_subjects = "1-35"  # cross_subject: the paper's split

    config.data = ml_collections.ConfigDict()
    config.data.manual_dir = config_dict.placeholder(str)  # the raw SMG folder
    config.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir (None: TFDS default)
    config.data.synthetic_scale = config_dict.placeholder(str)  # tiny/small/full: write one
    config.data.synthetic_seed = 0
    config.data.num_threads = 2
    config.data.fps = 30.0  # Kinect v2; MG rates are per minute, durations in seconds
    # End-to-end: the per-window preset (smg_jax.data.transforms) and its overrides;
    # these defaults are the authors' 90-frame array unchanged (see end_to_end.py).
    config.data.preset = "resample"
    config.data.num_frames = 90
    config.data.fill_missing = False
    config.data.center_joint = -1  # -1: no centring
    for field, kind in (
        ("stream", str),
        ("temporal", str),
        ("center_mode", str),
        ("view", str),
        ("augment", bool),
        ("max_rotation", float),
        ("scale_range", tuple),
        ("max_shift", float),
        ("crop_min_ratio", float),
        ("skeleton", str),
    ):
        config.data[field] = config_dict.placeholder(kind)

    config.window = ml_collections.ConfigDict()
    config.window.mode = "first"  # the authors' first 90 frames; cover: windows over it all
    config.window.length = 90  # frames per window
    config.window.stride = 45  # cover: frames between window starts

    config.mg = ml_collections.ConfigDict()
    config.mg.source = "ground_truth"  # or recognizer / predictions_dir
    config.mg.features = ("count", "rate", "mean_duration")
    config.mg.c = 1.0  # inverse L2 strength of the logistic regression (scikit-learn's C)
    config.mg.max_iter = 500
    # Recognized MGs (see smg_jax/emotion/recognized.py):
    config.mg.recognizer = "authors"  # or detector_threshold / detector_hmm
    config.mg.train_on = "out_of_fold"  # classifier training MGs: or in_sample / ground_truth
    config.mg.inner_folds = 3  # out_of_fold: inner subject folds per outer fold
    config.mg.inner_seed = 0
    config.mg.predictions_dir = config_dict.placeholder(str)  # <online workdir>/predictions/<m>
    config.mg.predictions_train_subjects = "1-35"  # whom that recognizer was trained on

    # The online recognizers' sections (experiments/configs/online_base.py) for
    # mg.source='recognizer'; trained per fold on the fold's training participants.
    online = online_base.get_config()
    config.online = ml_collections.ConfigDict(
        {"authors": online.authors, "detector": online.detector}
    )

    # End-to-end training: small instance counts, so more epochs than classification.
    config.train.epochs = 30
    config.train.batch_size = 16
    config.eval.batch_size = 32
    config.eval.every_epochs = 0  # 0: evaluate each fold's final model only
    config.schedule.milestones = (20, 25)
    config.optimizer.lr = 0.01
    config.runtime.compilation_cache = ""  # emotion runs compile small programs
    config.lock()
    return config


def shrink(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Applies a size argument: ``synthetic`` (small synthetic SMG, minutes) or ``tiny`` (tests)."""
    if arg in (None, ""):
        return config
    if arg not in ("synthetic", "tiny"):
        raise ValueError(f"Unknown config argument {arg!r}; use 'synthetic' or 'tiny'.")
    scale = "small" if arg == "synthetic" else "tiny"
    config.data.manual_dir = f"data/synthetic_raw_{scale}"
    config.data.data_dir = f"data/tfds_{scale}"
    config.data.synthetic_scale = scale
    # A narrow ST-GCN: the published blocks, a fraction of the compute.
    config.model.channels = (16, 32) if arg == "synthetic" else (8, 16)
    config.model.strides = (1, 2)
    config.model.dropout = 0.1
    config.optimizer.lr = 0.05
    config.schedule.name = "cosine"
    config.schedule.per_step = True
    config.train.log_every_steps = 10
    # The online recognizer at the size of experiments/configs/online_tiny.py.
    authors = config.online.authors
    authors.hmm.rest_samples = 4000 if arg == "synthetic" else 1500
    authors.mlp.hidden = (128, 128) if arg == "synthetic" else (32, 32)
    authors.train.epochs = 4 if arg == "synthetic" else 2
    authors.train.batch_size = 64
    authors.train.progress_bar = False
    authors.decode_batch_size = 512
    detector = config.online.detector
    detector.model.channels = (8, 16)
    detector.model.strides = (1, 2)
    detector.model.dropout = 0.0
    detector.data.num_frames = 16
    detector.data.window = 32
    detector.data.stride = 16
    detector.data.infer_stride = 8
    detector.train.epochs = 2
    detector.train.batch_size = 32
    detector.train.progress_bar = False
    if arg == "tiny":
        config.train.progress_bar = False
        config.train.tensorboard = False
        config.data.num_threads = 0
        config.mg.inner_folds = 2
    return config
