"""MS-G3D with its NTU recipe (kenziyuliu/MS-G3D, nturgbd-cross-subject/train_joint):
SGD lr 0.05 Nesterov, wd 5e-4, steps at 30 and 40, 50 epochs, batch 32 run as two
forward batches of 16 (gradient accumulation).

    python -m experiments.main --config=experiments/configs/msg3d.py --workdir=runs/msg3d
"""

from experiments.configs import base


def get_config():
    config = base.recipe(
        "msg3d", lr=0.05, weight_decay=5e-4, milestones=(30, 40), epochs=50, batch_size=32
    )
    config.train.accum_steps = 2
    config.eval.batch_size = 32
    return config
