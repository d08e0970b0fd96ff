"""GCN-NAS with its NTU recipe (xiaoiker/GCN-NAS, nturgbd-cross-subject/train_joint):
SGD lr 0.1 Nesterov, wd 5e-4, steps at 30, 45 and 60, 70 epochs, batch 80.

    python -m experiments.main --config=experiments/configs/gcnnas.py --workdir=runs/gcnnas
"""

from experiments.configs import base


def get_config():
    config = base.recipe(
        "gcnnas", lr=0.1, weight_decay=5e-4, milestones=(30, 45, 60), epochs=70, batch_size=80
    )
    config.eval.batch_size = 30
    return config
