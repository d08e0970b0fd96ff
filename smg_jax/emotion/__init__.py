"""Emotional stress state recognition: relaxed or stressed, from the body (SMG's third task).

* ``data``: the ``smg/emotion`` instances in memory (``load``), whole recordings
  for an MG recognizer (``load_recordings``), ``EmotionError``.
* ``protocols``: the paper's cross-subject split and deterministic subject-wise
  K-fold cross-validation (``make_folds``, ``subject_folds``).
* ``features``: per-instance MG features (count and rate of each class, mean
  duration); ``logreg``: the small JAX logistic regression that reads them.
* ``end_to_end``: registry models on the authors' 90-frame preset or on
  windows over the whole instance (mean of window logits).
* ``recognized``: MGs found by a recognizer: the online command's CSV files,
  or a ``train(recordings, folder) -> decode`` callable the caller passes
  (``run.run(..., train_recognizer=...)``), trained here per fold;
  ``mg_method``: the MG-based method per fold.
* ``scores``: accuracy, balanced accuracy, macro F1, mean ± std over folds;
  ``report``: the files and the comparison of runs; ``run``: the command
  behind ``experiments/emotion.py``.

See ``docs/emotion.md``.
"""

from smg_jax.emotion.data import STATE_NAMES, EmotionData, EmotionError, Instance
from smg_jax.emotion.features import FEATURE_KINDS, clip_to_instance, feature_names, mg_features
from smg_jax.emotion.logreg import LogisticModel, fit_logistic
from smg_jax.emotion.protocols import Fold, cross_subject, make_folds, subject_folds
from smg_jax.emotion.scores import aggregate, binary_scores

__all__ = [
    "FEATURE_KINDS",
    "STATE_NAMES",
    "EmotionData",
    "EmotionError",
    "Fold",
    "Instance",
    "LogisticModel",
    "aggregate",
    "binary_scores",
    "clip_to_instance",
    "cross_subject",
    "feature_names",
    "fit_logistic",
    "make_folds",
    "mg_features",
    "subject_folds",
]
