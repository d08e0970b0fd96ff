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

from smg_jax import models


def get_config(model: str = "stgcn") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict({"name": model, **models.default_fields(model)})

    config.data = ml_collections.ConfigDict()
    config.data.manual_dir = config_dict.placeholder(str)  # the raw SMG folder
    config.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir (None: TFDS default)
    # Set to tiny/small/full to write a synthetic SMG into manual_dir when it is empty.
    config.data.synthetic_scale = config_dict.placeholder(str)
    config.data.synthetic_seed = 0
    config.data.train_split = "train"
    config.data.test_split = "test"
    config.data.num_threads = 2
    config.data.preset = "authors"  # the SMG authors' 60-frame preprocessing
    config.data.stream = "joint"  # joint / bone / joint_motion / bone_motion
    config.data.temporal = config_dict.placeholder(str)
    config.data.num_frames = config_dict.placeholder(int)
    config.data.fill_missing = config_dict.placeholder(bool)
    config.data.center_joint = config_dict.placeholder(int)
    config.data.center_mode = config_dict.placeholder(str)
    config.data.view = config_dict.placeholder(str)
    config.data.augment = config_dict.placeholder(bool)
    config.data.max_rotation = config_dict.placeholder(float)
    config.data.scale_range = config_dict.placeholder(tuple)
    config.data.max_shift = config_dict.placeholder(float)
    config.data.crop_min_ratio = config_dict.placeholder(float)
    config.data.skeleton = config_dict.placeholder(str)

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "sgd"
    config.optimizer.lr = 0.1
    config.optimizer.momentum = 0.9
    config.optimizer.nesterov = True
    config.optimizer.weight_decay = 1e-4
    config.optimizer.weight_decay_on = "all"  # what torch.optim.SGD(weight_decay=...) does
    config.optimizer.weight_decay_rules = ""  # "regex=rate,..." per-parameter rates
    config.optimizer.grad_clip_norm = 0.0
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.999
    config.optimizer.eps = 1e-8

    config.schedule = ml_collections.ConfigDict()
    config.schedule.name = "step"
    config.schedule.milestones = (30, 40)  # epochs
    config.schedule.gamma = 0.1
    config.schedule.warmup_epochs = 0
    config.schedule.per_step = False
    config.schedule.min_lr = 0.0

    config.loss = ml_collections.ConfigDict()
    config.loss.name = "cross_entropy"  # or label_smoothing / class_balanced
    config.loss.smoothing = 0.1
    config.loss.beta = 0.9999

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 50
    config.train.batch_size = 64
    config.train.accum_steps = 1  # micro-batches per optimizer step
    config.train.seed = 0
    config.train.compute_dtype = "float32"  # or bfloat16 (params stay float32)
    config.train.max_steps = config_dict.placeholder(int)  # cut training short (smoke tests)
    config.train.log_every_steps = 10
    config.train.checkpoint_every_steps = 0  # 0: every epoch
    config.train.keep_checkpoints = 2
    config.train.tensorboard = True
    config.train.progress_bar = True
    # How a step spreads over devices (docs/scaling.md); train.batch_size stays the global
    # batch and must divide by the number of devices. "none": one device (the default);
    # "pmap": jax.pmap over this host's devices, gradients averaged with pmean; "mesh":
    # jax.jit over a mesh of every device, the batch sharded and the state replicated.
    config.train.parallel = "none"
    # BatchNorm statistics over the global batch, as on one device (pmap: a pmean across
    # devices; mesh always does this). False with pmap: per-device statistics, as PyTorch's
    # DataParallel/DDP compute them.
    config.train.cross_replica_bn = True

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 64
    config.eval.every_epochs = 1
    config.eval.best_metric = "top1"  # or mean_class_accuracy

    config.init = ml_collections.ConfigDict()
    # The authors' PyTorch weights (.npz of name -> array, or .pt with torch installed);
    # tensors whose shape differs from ours (the classifier) are freshly initialised.
    config.init.checkpoint = config_dict.placeholder(str)
    config.init.num_classes = 60  # classes of that checkpoint (NTU RGB+D 60)

    # Multi-host runs (Cloud TPU pods, multi-node GPU): enabled calls jax.distributed.initialize
    # with the fields below; leave them None where the cluster (Cloud TPU, SLURM, Open MPI)
    # tells JAX itself. The workdir must be one folder every host sees.
    config.distributed = ml_collections.ConfigDict()
    config.distributed.enabled = False
    # "host:port" of process 0, which every process can reach.
    config.distributed.coordinator_address = config_dict.placeholder(str)
    config.distributed.num_processes = config_dict.placeholder(int)
    config.distributed.process_id = config_dict.placeholder(int)

    # Locked: a mistyped field is an error, not a silently ignored new field.
    config.lock()
    return config
