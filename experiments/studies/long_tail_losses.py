"""Long-tail losses on SMG, whose two largest classes hold 71 % of the test set: plain
cross-entropy against label smoothing and the class-balanced loss (Cui et al., CVPR 2019).
Read the mean class accuracy column; top-1 rewards the head classes.

    python -m experiments.sweep --config=experiments/configs/stgcn.py \\
        --study=experiments/studies/long_tail_losses.py --seeds=3 --vmap_seeds \\
        --workdir=runs/ablations/long_tail_losses --config.data.manual_dir=/path/to/SMG
"""

from smg_jax.sweep import Study


def get_study() -> Study:
    return Study(
        name="long-tail losses",
        variants={
            "cross_entropy": {"loss.name": "cross_entropy"},
            "label_smoothing": {"loss.name": "label_smoothing", "loss.smoothing": 0.1},
            "class_balanced": {"loss.name": "class_balanced", "loss.beta": 0.9999},
        },
        description=(
            "cross_entropy: the published loss; label_smoothing: targets smoothed by 0.1; "
            "class_balanced: each class weighted by the inverse of its effective number of "
            "training samples, (1 - beta) / (1 - beta^n), beta = 0.9999."
        ),
        baseline="cross_entropy",
    )
