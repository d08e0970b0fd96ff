"""CTR-GCN with its NTU recipe (Uason-Chen/CTR-GCN, nturgbd-cross-subject/default):
SGD lr 0.1 Nesterov, wd 4e-4, 5 warm-up epochs, steps at 35 and 55, 65 epochs, batch 64,
and its input pipeline: crop 50-100 % of the clip, resample to 64 frames, random rotation.

    python -m experiments.main --config=experiments/configs/ctrgcn.py --workdir=runs/ctrgcn
"""

from experiments.configs import base


def get_config():
    config = base.recipe(
        "ctrgcn", lr=0.1, weight_decay=4e-4, milestones=(35, 55), epochs=65, batch_size=64
    )
    config.schedule.warmup_epochs = 5
    config.data.update(
        {"preset": "centered", "num_frames": 64, "augment": True, "max_rotation": 0.3}
    )
    config.data.crop_min_ratio = 0.5
    return config
