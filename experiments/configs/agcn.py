"""2s-AGCN (one stream) with its NTU recipe (lshiwjx/2s-AGCN, nturgbd-cross-subject/train_joint):
SGD lr 0.1 Nesterov, wd 1e-4, steps at 30 and 40, 50 epochs, batch 64; SMG's 60-frame preset.

    python -m experiments.main --config=experiments/configs/agcn.py --workdir=runs/agcn
"""

from experiments.configs import base


def get_config():
    config = base.get_config("agcn")
    config.optimizer.lr = 0.1
    config.optimizer.weight_decay = 1e-4
    config.schedule.milestones = (30, 40)
    config.train.epochs = 50
    config.train.batch_size = 64
    return config
