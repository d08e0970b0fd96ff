"""Online micro-gesture recognition: find and label every MG in a whole recording.

* ``metric``: ``score_segments`` (IoU matching, one-to-one or the authors'
  rule), ``online_report`` and its Markdown tables.
* ``features``: the authors' 2,775-value per-frame features, jitted, and
  their standardization.
* ``hmm``: the authors' HMM (count statistics, forced alignment, rest rows,
  emission scaling, segment rules), each of their choices an option with a
  named correction; ``viterbi``: its decoder, a ``jax.lax.scan``.
* ``emission``: their emission networks (MLP, attention BiGRU) in Flax.
* ``framework``: their recognizer end to end; ``detector``: a stronger one
  built on any registry model; ``recognizers.trainer``: either as one
  ``train(recordings, folder) -> decode`` callable for other tasks;
  ``loop.run``: the command behind ``experiments/online.py``.

Recordings and segments (``Recording``, ``check_segments``, the CSV files)
live in ``smg_jax.data.recordings``.

See ``docs/online.md``.
"""

from smg_jax.data.recordings import NUM_CLASSES, Recording, check_segments
from smg_jax.online.errors import OnlineError
from smg_jax.online.metric import (
    MATCHING_RULES,
    format_online_table,
    iou,
    online_report,
    score_segments,
)

__all__ = [
    "MATCHING_RULES",
    "NUM_CLASSES",
    "OnlineError",
    "Recording",
    "check_segments",
    "format_online_table",
    "iou",
    "online_report",
    "score_segments",
]
