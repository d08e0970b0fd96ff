"""The main job's default: a small ST-GCN on a synthetic SMG, a few minutes on a laptop CPU.

    python -m experiments.demo            # what `make demo` runs
    python -m experiments.main --config=experiments/configs/demo.py --workdir=runs/demo \\
        --config.data.manual_dir=data/synthetic_raw --config.data.synthetic_scale=small

With ``--config.data.synthetic_scale=None --config.data.manual_dir=/path/to/SMG`` the
same small model trains on the real data (use configs/stgcn.py for the published recipe).
"""

from experiments.configs import base


def get_config():
    config = base.get_config("stgcn")
    # A narrower, shallower ST-GCN: same blocks, partitions and residuals as the
    # published one, a tenth of its compute.
    config.model.channels = (32, 32, 64, 64, 128)
    config.model.strides = (1, 1, 2, 1, 2)
    config.model.dropout = 0.1
    config.data.manual_dir = "data/synthetic_raw"
    config.data.data_dir = "data/tfds"
    config.data.synthetic_scale = "small"
    config.data.preset = "centered"
    config.data.num_frames = 32
    config.optimizer.lr = 0.05
    config.optimizer.weight_decay = 1e-4
    config.schedule.name = "cosine"
    config.schedule.per_step = True
    config.schedule.warmup_epochs = 0
    config.train.epochs = 8
    config.train.batch_size = 32
    config.eval.batch_size = 64
    config.eval.every_epochs = 2
    config.eval.best_metric = "mean_class_accuracy"
    return config
