"""MG-based from recognized MGs: the online recognizer finds the MGs, then the same classifier.

    python -m experiments.emotion --config=experiments/configs/emotion_mg_recognized.py \\
        --workdir=runs/emotion_mg_recognized --config.data.manual_dir=/path/to/SMG

The authors' online recognizer (HMM + MLP, ``config.online.authors``) is
trained per fold on that fold's training participants only and decodes the
test participants' recordings; the classifier's training instances get their
MGs from inner recognizers that did not see them either
(``mg.train_on='out_of_fold'``, ``mg.inner_folds`` per fold). Use
``--config.mg.recognizer=detector_threshold`` for the window detector, or
``--config.mg.source=predictions_dir --config.mg.predictions_dir=<online
workdir>/predictions/authors --config.mg.train_on=ground_truth
--config.protocol.name=cross_subject`` to read what ``experiments/online.py``
already decoded. ``:synthetic`` / ``:tiny`` size it for a CPU.
"""

from experiments.configs import emotion_base


def get_config(arg: str | None = None):
    config = emotion_base.get_config()
    config.method = "mg_features"
    config.mg.source = "recognizer"
    config.mg.recognizer = "authors"
    config.mg.train_on = "out_of_fold"
    return emotion_base.shrink(config, arg)
