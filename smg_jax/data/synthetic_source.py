"""Where a run's raw SMG comes from: the user's copy, or a synthetic one written on demand.

Every task (classification, emotional state, online recognition) reads
``data.manual_dir`` (the raw SMG layout) and ``data.synthetic_scale`` /
``data.synthetic_seed`` the same way, so one function decides it.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

log = logging.getLogger(__name__)


def ensure_raw_data(data: Any, error: type[ValueError] = ValueError) -> str | None:
    """``data.manual_dir``, first filled with a synthetic SMG if ``data.synthetic_scale`` is set.

    ``data`` is a config's ``data`` section. Nothing is written when the folder
    already holds a synthetic SMG (its marker file says so), and a folder that
    holds real (unmarked) SMG data is refused with ``error`` (the task's own
    exception type), as is a scale without a folder.
    """
    manual_dir, scale = data.manual_dir, data.synthetic_scale
    if scale is None:
        return manual_dir
    if manual_dir is None:
        raise error("data.synthetic_scale is set but data.manual_dir is not: say where.")
    from tfds_smg import synthetic

    root = pathlib.Path(manual_dir)
    if root.is_dir() and any(root.glob("Sample*")):
        if synthetic.read_marker(root) is None:
            raise error(
                f"data.synthetic_scale={scale!r} but {root} holds real (unmarked) SMG data; "
                "unset data.synthetic_scale to use it, or point data.manual_dir elsewhere."
            )
        return manual_dir
    seed = int(data.synthetic_seed)
    log.info("Writing a synthetic SMG (scale %s, seed %d) to %s", scale, seed, root)
    synthetic.generate(root, scale=scale, seed=seed)
    return manual_dir
