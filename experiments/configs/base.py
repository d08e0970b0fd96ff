"""Fields every experiment config has; model configs import ``get_config`` and change a few.

Run any config with::

    python -m experiments.main --config=experiments/configs/stgcn.py --workdir=runs/stgcn \\
        --config.data.manual_dir=/path/to/SMG --config.optimizer.lr=0.05

Every field of ``model`` is a constructor field of the model with its
published default; ``data`` holds the preset name and any preset field to
override (``None`` keeps the preset's value; ``center_joint=-1`` turns
centring off).
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from smg_jax import models, runtime


def data_source() -> ml_collections.ConfigDict:
    """Where the data comes from: the raw SMG folder, TFDS, the splits (every task's ``data``)."""
    data = ml_collections.ConfigDict()
    data.manual_dir = config_dict.placeholder(str)  # the raw SMG folder
    data.data_dir = config_dict.placeholder(str)  # TFDS data_dir (None: TFDS default)
    # Set to tiny/small/full to write a synthetic SMG into manual_dir when it is empty.
    data.synthetic_scale = config_dict.placeholder(str)
    data.synthetic_seed = 0
    data.train_split = "train"  # participants 1-35
    data.test_split = "test"  # participants 36-40
    return data


def _data() -> ml_collections.ConfigDict:
    data = data_source()
    data.num_threads = 2
    data.preset = "authors"  # the SMG authors' 60-frame preprocessing
    data.stream = "joint"  # joint / bone / joint_motion / bone_motion
    for name in ("temporal", "center_mode", "view", "skeleton"):
        data[name] = config_dict.placeholder(str)
    for name in ("num_frames", "center_joint"):
        data[name] = config_dict.placeholder(int)
    for name in ("fill_missing", "augment"):
        data[name] = config_dict.placeholder(bool)
    for name in ("max_rotation", "max_shift", "crop_min_ratio"):
        data[name] = config_dict.placeholder(float)
    data.scale_range = config_dict.placeholder(tuple)
    return data


def _optimizer() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "name": "sgd",
            "lr": 0.1,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 1e-4,
            "weight_decay_on": "all",  # what torch.optim.SGD(weight_decay=...) does
            "weight_decay_rules": "",  # "regex=rate,..." per-parameter rates
            "grad_clip_norm": 0.0,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
        }
    )


def _schedule() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "name": "step",
            "milestones": (30, 40),  # epochs
            "gamma": 0.1,
            "warmup_epochs": 0,
            "per_step": False,
            "min_lr": 0.0,
        }
    )


def _train() -> ml_collections.ConfigDict:
    train = ml_collections.ConfigDict()
    train.epochs = 50
    train.batch_size = 64
    train.accum_steps = 1  # micro-batches per optimizer step
    train.seed = 0
    train.compute_dtype = "float32"  # or bfloat16 (params stay float32)
    train.max_steps = config_dict.placeholder(int)  # cut training short (smoke tests)
    train.log_every_steps = 10
    train.checkpoint_every_steps = 0  # 0: every epoch
    train.keep_checkpoints = 2
    train.tensorboard = True
    train.progress_bar = True
    # How a step spreads over devices (docs/scaling.md); train.batch_size stays the global
    # batch and must divide by the number of devices. "none": one device (the default);
    # "pmap": jax.pmap over this host's devices, gradients averaged with pmean; "mesh":
    # jax.jit over a mesh of every device, the batch sharded and the state replicated.
    train.parallel = "none"
    # BatchNorm statistics over the global batch, as on one device (pmap: a pmean across
    # devices; mesh always does this). False with pmap: per-device statistics, as PyTorch's
    # DataParallel/DDP compute them.
    train.cross_replica_bn = True
    return train


def _init() -> ml_collections.ConfigDict:
    init = ml_collections.ConfigDict()
    # The authors' PyTorch weights (.npz of name -> array, or .pt with torch installed);
    # tensors whose shape differs from ours (the classifier) are freshly initialised.
    init.checkpoint = config_dict.placeholder(str)
    init.num_classes = 60  # classes of that checkpoint (NTU RGB+D 60)
    return init


def _distributed() -> ml_collections.ConfigDict:
    # Multi-host runs (Cloud TPU pods, multi-node GPU): enabled calls jax.distributed.initialize
    # with the fields below; leave them None where the cluster (Cloud TPU, SLURM, Open MPI)
    # tells JAX itself. The workdir must be one folder every host sees.
    distributed = ml_collections.ConfigDict()
    distributed.enabled = False
    # "host:port" of process 0, which every process can reach.
    distributed.coordinator_address = config_dict.placeholder(str)
    distributed.num_processes = config_dict.placeholder(int)
    distributed.process_id = config_dict.placeholder(int)
    return distributed


def get_config(model: str = "stgcn") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict({"name": model, **models.default_fields(model)})
    config.data = _data()
    config.optimizer = _optimizer()
    config.schedule = _schedule()
    config.loss = ml_collections.ConfigDict(
        # or label_smoothing / class_balanced
        {"name": "cross_entropy", "smoothing": 0.1, "beta": 0.9999}
    )
    config.train = _train()
    config.eval = ml_collections.ConfigDict(
        {"batch_size": 64, "every_epochs": 1, "best_metric": "top1"}  # or mean_class_accuracy
    )
    config.init = _init()
    config.distributed = _distributed()
    # How the process compiles and runs (XLA options, allocator, oneDNN, caches): not
    # what it computes (smg_jax.runtime.profile).
    config.runtime = runtime.config_section()
    # Locked: a mistyped field is an error, not a silently ignored new field.
    config.lock()
    return config


def recipe(
    model: str,
    *,
    lr: float,
    weight_decay: float,
    milestones: tuple[int, ...],
    epochs: int,
    batch_size: int,
) -> ml_collections.ConfigDict:
    """``get_config(model)`` with a published recipe's SGD rate, decay, steps and batch."""
    config = get_config(model)
    config.optimizer.lr = lr
    config.optimizer.weight_decay = weight_decay
    config.schedule.milestones = milestones
    config.train.epochs = epochs
    config.train.batch_size = batch_size
    return config
