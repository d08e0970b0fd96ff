"""2s-AGCN (one stream) with its NTU recipe (lshiwjx/2s-AGCN, nturgbd-cross-subject/train_joint):
SGD lr 0.1 Nesterov, wd 1e-4, steps at 30 and 40, 50 epochs, batch 64; SMG's 60-frame preset.

    python -m experiments.main --config=experiments/configs/agcn.py --workdir=runs/agcn
"""

from experiments.configs import base


def get_config():
    return base.recipe(
        "agcn", lr=0.1, weight_decay=1e-4, milestones=(30, 40), epochs=50, batch_size=64
    )
