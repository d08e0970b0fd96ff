"""MG-based upper bound: features of the annotated MGs in each instance + logistic regression.

    python -m experiments.emotion --config=experiments/configs/emotion_mg_gt.py \\
        --workdir=runs/emotion_mg_gt --config.data.manual_dir=/path/to/SMG

Per instance: how many MGs of each class, how many per minute, and their mean
duration, from the ground-truth labels (what a perfect online recognizer
would report), into an L2-regularised logistic regression; the class weights
say which MG classes push towards stressed. Seconds on a CPU.
``:synthetic`` / ``:tiny`` point it at a synthetic SMG.
"""

from experiments.configs import emotion_base


def get_config(arg: str | None = None):
    config = emotion_base.get_config()
    config.method = "mg_features"
    config.mg.source = "ground_truth"
    return emotion_base.shrink(config, arg)
