"""Shift-GCN with its NTU recipe (kchengiva/Shift-GCN, nturgbd-cross-subject/train_joint):
SGD lr 0.1 Nesterov, steps at 60, 80 and 100, 140 epochs, batch 64, and its per-parameter
weight decay (main.py's load_optimizer): 1e-4 by default, 1e-3 on the shift-GCN's
``Linear_weight``, 0 on its ``Feature_Mask``. (Its ``decay_mult`` for biases is a key that
torch.optim.SGD ignores, so biases keep 1e-4, as here.)

    python -m experiments.main --config=experiments/configs/shiftgcn.py --workdir=runs/shiftgcn
"""

from experiments.configs import base


def get_config():
    config = base.recipe(
        "shiftgcn", lr=0.1, weight_decay=1e-4, milestones=(60, 80, 100), epochs=140, batch_size=64
    )
    config.optimizer.weight_decay_rules = "linear_weight=1e-3,feature_mask=0"
    return config
