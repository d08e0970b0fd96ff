"""Clips of joints: the named Kinect v2 joints, the option names, validation, ``DataError``.

A clip is ``joints`` of shape ``(T, V, C)``: ``T`` frames, ``V`` joints (25 for
Kinect v2, in ``smg_jax.graph.JOINT_NAMES`` order), ``C = 3`` world coordinates
x, y, z in metres. An all-zero joint means "not tracked" (see ``transforms``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from smg_jax import graph

# Kinect v2 joints (0-based) that the presets refer to by name.
SPINE_BASE = graph.JOINT_NAMES.index("spine_base")
SPINE_MID = graph.JOINT_NAMES.index("spine_mid")
LEFT_SHOULDER = graph.JOINT_NAMES.index("left_shoulder")
RIGHT_SHOULDER = graph.JOINT_NAMES.index("right_shoulder")
LEFT_HIP = graph.JOINT_NAMES.index("left_hip")
RIGHT_HIP = graph.JOINT_NAMES.index("right_hip")

# The reference pair of each view normalisation: (right joint, left joint).
VIEW_PAIRS: dict[str, tuple[int, int]] = {
    "hip": (RIGHT_HIP, LEFT_HIP),
    "shoulder": (RIGHT_SHOULDER, LEFT_SHOULDER),
}
STREAMS = ("joint", "bone", "joint_motion", "bone_motion")
TEMPORAL_MODES = ("authors", "resample")
CENTER_MODES = ("first", "frame")

# The authors' constants (smg_gendata.py: max_frame = 60; segments longer
# than max_frame - 1 frames keep their last max_frame - 1 frames).
AUTHORS_NUM_FRAMES = 60


class DataError(ValueError):
    """A clip, preset or batch request that the input pipeline cannot use.

    The message names the offending example (``sample_id``, segment index)
    or option and says how to fix it.
    """


def describe_example(example: Mapping[str, Any]) -> str:
    """``"Sample0036 segment 4 (skeleton rows [120, 180))"``-style text for error messages."""
    sample = example.get("sample_id", "<unknown sample>")
    if isinstance(sample, (bytes, np.bytes_)):
        sample = sample.decode("utf-8", "replace")
    text = f"{sample} segment {example.get('segment_index', '?')}"
    if "start" in example and "end" in example:
        text += f" (skeleton rows [{int(example['start'])}, {int(example['end'])}))"
    return text


def check_joints(joints: np.ndarray, where: str = "clip") -> np.ndarray:
    """Checks that ``joints`` is a finite ``(T, V, 3)`` array and returns it unchanged.

    Args:
      joints: ``(T, V, 3)`` world xyz in metres.
      where: what the array is (e.g. ``describe_example(example)``), for the message.

    Raises:
      DataError: wrong rank or channel count, or NaN/inf values.
    """
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise DataError(
            f"{where}: joints must have shape (T, V, 3) (frames, joints, xyz metres), got "
            f"{joints.shape}. Pass the TFDS 'joints' feature of one clip."
        )
    if not np.issubdtype(joints.dtype, np.floating):
        raise DataError(f"{where}: joints must be floating point, got dtype {joints.dtype}.")
    bad = ~np.isfinite(joints)
    if bad.any():
        frame, joint, _ = np.argwhere(bad)[0]
        raise DataError(
            f"{where}: {int(bad.sum())} non-finite coordinate(s), first at clip frame "
            f"{int(frame)} joint {int(joint)}. The raw skeleton CSV has unreadable values "
            "there; fix or drop that segment and rebuild the TFDS dataset."
        )
    return joints


def valid_joints(joints: np.ndarray) -> np.ndarray:
    """``(T, V)`` bool: True where a joint was tracked (not exactly x = y = z = 0)."""
    return np.any(joints != 0, axis=-1)


def valid_frames(joints: np.ndarray) -> np.ndarray:
    """``(T,)`` bool: True for frames with at least one tracked joint."""
    return np.any(joints != 0, axis=(-1, -2))
