"""Per-example skeleton transforms and the named presets built from them.

Every function here is pure NumPy on one clip. A clip is ``joints`` of shape
``(T, V, C)``: ``T`` frames, ``V`` joints (25 for Kinect v2, in
``smg_jax.graph.JOINT_NAMES`` order), ``C = 3`` world coordinates x, y, z in
metres in the Kinect v2 camera space (y up, z away from the sensor). Functions
return new arrays and never modify their input.

Kinect writes an all-zero skeleton when it loses the body, so an all-zero
joint (x = y = z = 0, a point inside the sensor) means "not tracked". The
authors' preset keeps such frames as they are (it must be bit-exact); the
other presets repair them first (``fill_missing``) so that they cannot turn
into metre-long bones or frame-to-frame jumps in the bone and motion streams.

Presets
-------
``get_preset(name, **options)`` returns a frozen ``Preset``; its
``apply(joints, train=..., rng=...)`` runs the whole chain::

    validate -> fill lost joints -> temporal (authors window | crop + resample)
      -> view normalisation -> centring -> augmentation -> stream -> float32

``authors`` reproduces ``tools/smg_gendata.py`` of mikecheninoulu/SMG
(commit 3ed2f8c): for a labelled segment ``[start, end)`` it keeps rows
``[end - 59, end)`` when ``end - start > 59``, else ``[start, end)`` (the
script moves ``st_frame`` to ``ed_frame - max_frame + 1`` with
``max_frame = 60``), writes them from frame 0 into a zero float32 array of 60
frames (so at most 59 frames are non-zero and the 60th is always zero), world
xyz only, one body, no centring. Values are float64 parses of the CSV text
stored as float32, which the TFDS clip already is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
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


# ---------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Temporal transforms.
# ---------------------------------------------------------------------------


def authors_window(joints: np.ndarray, num_frames: int = AUTHORS_NUM_FRAMES) -> np.ndarray:
    """The authors' fixed window: the last ``num_frames - 1`` frames, zero-padded at the end.

    Reproduces ``smg_gendata.py``: a clip longer than ``num_frames - 1``
    frames keeps its last ``num_frames - 1`` frames, a shorter one all of
    them, written from frame 0 into zeros. An empty clip gives all zeros (the
    script writes nothing for a segment with ``end <= start`` and keeps it).

    Args:
      joints: ``(T, V, C)``, any ``T >= 0``.
      num_frames: output length; the authors use 60.

    Returns:
      ``(num_frames, V, C)`` float32; frame ``num_frames - 1`` is always zero.
    """
    if num_frames < 1:
        raise DataError(f"authors_window: num_frames must be >= 1, got {num_frames}.")
    keep = num_frames - 1
    kept = joints[max(0, len(joints) - keep) :] if keep > 0 else joints[:0]
    out = np.zeros((num_frames, *joints.shape[1:]), dtype=np.float32)
    # float64 -> float32 here matches the script's float64 buffer written
    # into a float32 memmap; for float32 input it is a copy.
    out[: len(kept)] = kept
    return out


def resample(joints: np.ndarray, num_frames: int) -> np.ndarray:
    """Linear resampling in time to ``num_frames`` frames.

    Uses the sample positions of ``torch.nn.functional.interpolate(...,
    mode='bilinear', align_corners=False)``, which CTR-GCN's
    ``valid_crop_resize`` applies along time (Uason-Chen/CTR-GCN
    ``feeders/tools.py``): output frame ``i`` samples input position
    ``max(0, (i + 0.5) * T / num_frames - 0.5)``. A one-frame clip is repeated.

    Args:
      joints: ``(T, V, C)`` with ``T >= 1``.
      num_frames: output length ``T'``.

    Returns:
      ``(T', V, C)`` float64 for float64 input, else float32.
    """
    length = len(joints)
    if length < 1:
        raise DataError("resample: the clip has no frames; nothing to resample.")
    if num_frames < 1:
        raise DataError(f"resample: num_frames must be >= 1, got {num_frames}.")
    position = (np.arange(num_frames) + 0.5) * (length / num_frames) - 0.5
    position = np.maximum(position, 0.0)
    lower = np.minimum(np.floor(position).astype(np.int64), length - 1)
    upper = np.minimum(lower + 1, length - 1)
    weight = (position - lower)[:, None, None]
    dtype = np.result_type(joints.dtype, np.float32)
    work = joints.astype(np.float64)
    out = work[lower] * (1.0 - weight) + work[upper] * weight
    return out.astype(dtype)


def random_crop(
    joints: np.ndarray, rng: np.random.Generator, min_ratio: float, min_frames: int
) -> np.ndarray:
    """CTR-GCN's random temporal crop (``valid_crop_resize`` with ``p_interval=[min_ratio, 1]``).

    Draws ``p ~ U[min_ratio, 1)`` and keeps ``clip(floor(T p), min_frames, T)``
    consecutive frames at a uniformly drawn offset. With ``min_frames`` equal
    to the resampling length (CTR-GCN: 64) clips shorter than that are never
    cut, so short micro-gestures keep all their frames.

    Args:
      joints: ``(T, V, C)``.
      rng: the example's generator.
      min_ratio: lower end of the kept proportion, in ``(0, 1]``.
      min_frames: the crop never goes below this many frames.

    Returns:
      ``(T_crop, V, C)``, a view of ``joints``.
    """
    length = len(joints)
    ratio = rng.uniform(min_ratio, 1.0)
    kept = min(max(math.floor(length * ratio), min_frames), length)
    offset = int(rng.integers(0, length - kept + 1))
    return joints[offset : offset + kept]


def fill_missing(joints: np.ndarray, skeleton: graph.Skeleton | None = None) -> np.ndarray:
    """Replaces untracked (all-zero) joints by linear interpolation in time.

    For each joint, frames where it is untracked take the straight line
    between its nearest tracked frames before and after; before its first
    (after its last) tracked frame they hold that frame's value. A joint
    never tracked in the clip copies the trajectory of a neighbouring joint
    in ``skeleton`` (its bone then has length zero instead of pointing to the
    camera origin). An all-zero clip is returned as zeros: nothing can be
    recovered, and raising would stop a training run over one lost clip.

    Why: Kinect reports a lost body as zeros. Left in, those frames give
    bones of ~0 (fine) but motion and centring jumps of several metres, and
    they drag the resampled frames towards the camera origin.

    Args:
      joints: ``(T, V, C)``.
      skeleton: the layout for the never-tracked fallback; ``None`` uses
        Kinect v2 when ``V == 25`` and otherwise leaves such joints at zero.

    Returns:
      ``(T, V, C)`` array of the input's dtype.
    """
    valid = valid_joints(joints)
    if valid.all() or not valid.any():
        return joints.copy()
    num_frames = len(joints)
    frame = np.arange(num_frames)[:, None]
    prev = np.maximum.accumulate(np.where(valid, frame, -1), axis=0)
    next_ = np.minimum.accumulate(np.where(valid, frame, num_frames)[::-1], axis=0)[::-1]
    has_prev, has_next = prev >= 0, next_ < num_frames
    prev_c = np.clip(prev, 0, num_frames - 1)
    next_c = np.clip(next_, 0, num_frames - 1)
    span = np.where(has_prev & has_next, next_c - prev_c, 1)
    weight = np.where(has_prev & has_next, (frame - prev_c) / np.maximum(span, 1), 0.0)
    weight = np.where(~has_prev & has_next, 1.0, weight)  # before the first tracked frame
    joint = np.arange(joints.shape[1])[None, :]
    work = joints.astype(np.float64)
    weight = weight[..., None]
    filled = work[prev_c, joint] * (1.0 - weight) + work[next_c, joint] * weight
    out = np.where(valid[..., None], work, filled)

    never = ~valid.any(axis=0)
    if never.any():
        if skeleton is None and joints.shape[1] == graph.NUM_JOINTS:
            skeleton = graph.KINECT_V2
        if skeleton is not None:
            neighbours: dict[int, list[int]] = {v: [] for v in range(joints.shape[1])}
            for child, parent in skeleton.inward_edges:
                neighbours[child].append(parent)
                neighbours[parent].append(child)
            missing = set(np.flatnonzero(never).tolist())
            while missing:
                done = {
                    v
                    for v in missing
                    if any(n not in missing for n in neighbours[v])  # a filled neighbour
                }
                if not done:
                    break
                for v in sorted(done):
                    source = next(n for n in neighbours[v] if n not in missing)
                    out[:, v] = out[:, source]
                missing -= done
            out[:, sorted(missing)] = 0.0
        else:
            out[:, never] = 0.0
    return out.astype(joints.dtype)


# ---------------------------------------------------------------------------
# Spatial transforms.
# ---------------------------------------------------------------------------


def center(joints: np.ndarray, joint: int = SPINE_MID, mode: str = "first") -> np.ndarray:
    """Translates the clip so that one joint sits at the origin.

    Args:
      joints: ``(T, V, C)`` metres.
      joint: 0-based joint index; ``SPINE_MID`` (1) as in MS-G3D / CTR-GCN, or
        ``SPINE_BASE`` (0).
      mode: ``"first"`` subtracts that joint's position in the first frame
        where it is tracked from every frame (CTR-GCN's ``seq_translation``;
        whole-body sway stays visible, which matters for gestures such as
        moving the torso); ``"frame"`` subtracts it per frame (2s-AGCN /
        MS-G3D ``pre_normalization``; the joint is at the origin in every
        frame and body translation is removed).

    Untracked (all-zero) frames stay zero in both modes, so padding added by
    the authors' window is not turned into a copy of ``-origin``.

    Returns:
      ``(T, V, C)`` of the input's dtype.
    """
    if mode not in CENTER_MODES:
        raise DataError(f"center: unknown mode {mode!r}; choose from {CENTER_MODES}.")
    if not 0 <= joint < joints.shape[1]:
        raise DataError(f"center: joint {joint} not in [0, {joints.shape[1]}).")
    frames = valid_frames(joints)
    if mode == "first":
        tracked = np.flatnonzero(valid_joints(joints)[:, joint])
        if len(tracked) == 0:
            return joints.copy()
        origin = joints[tracked[0], joint][None, None, :]
    else:
        origin = joints[:, joint : joint + 1, :]
    out = joints - origin
    if not frames.all():
        out[~frames] = 0
    return out.astype(joints.dtype, copy=False)


def rotation_y(angle: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``angle`` radians about the vertical y axis.

    Acting on column vectors, it maps ``(cos a, 0, sin a)`` to ``(1, 0, 0)``.
    """
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_xyz(angles: Sequence[float]) -> np.ndarray:
    """``(3, 3)`` matrix ``Rz @ Ry @ Rx`` for angles ``(ax, ay, az)`` in radians.

    The same matrices and order as CTR-GCN's ``_rot`` (``feeders/tools.py``).
    """
    ax, ay, az = angles
    cx, sx = math.cos(ax), math.sin(ax)
    cy, sy = math.cos(ay), math.sin(ay)
    cz, sz = math.cos(az), math.sin(az)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, sx], [0.0, -sx, cx]])
    ry = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    rz = np.array([[cz, sz, 0.0], [-sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


def _transform_tracked(
    joints: np.ndarray, matrix: np.ndarray, pivot: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """``x -> matrix (x - pivot) + pivot + shift`` on tracked frames; zero frames stay zero."""
    frames = valid_frames(joints)
    work = joints.astype(np.float64)
    moved = (work - pivot) @ matrix.T + pivot + shift
    if not frames.all():  # the common case after fill_missing skips this pass
        moved[~frames] = 0.0
    return moved.astype(joints.dtype)


def normalize_view(joints: np.ndarray, reference: str = "hip") -> np.ndarray:
    """Rotates about the vertical axis so that the hip (or shoulder) line is parallel to x.

    The reference vector is right joint minus left joint (right hip - left
    hip, or right shoulder - left shoulder), averaged over tracked frames and
    projected on the horizontal x-z plane. The clip is rotated about the
    vertical line through the midpoint of the pair (also averaged), so the
    body turns in place rather than swinging around the sensor. For a person
    facing the Kinect the vector already points along +x and the rotation is
    close to the identity. Only the yaw is corrected: the y axis stays the
    sensor's up direction, unlike MS-G3D's ``pre_normalization`` which also
    tilts the spine onto an axis.

    Args:
      joints: ``(T, V, 3)`` Kinect v2 layout (the references are joints 4/8 or 12/16).
      reference: ``"hip"`` or ``"shoulder"``.

    Returns:
      ``(T, V, 3)`` of the input's dtype; unchanged when the reference
      vector has no horizontal length (untracked or degenerate pair).
    """
    if reference not in VIEW_PAIRS:
        raise DataError(
            f"normalize_view: unknown reference {reference!r}; choose from {sorted(VIEW_PAIRS)}."
        )
    right, left = VIEW_PAIRS[reference]
    tracked = valid_joints(joints)
    both = tracked[:, right] & tracked[:, left]
    if not both.any():
        return joints.copy()
    work = joints.astype(np.float64)
    vector = (work[both, right] - work[both, left]).mean(axis=0)
    if math.hypot(vector[0], vector[2]) < 1e-9:
        return joints.copy()
    pivot = 0.5 * (work[both, right] + work[both, left]).mean(axis=0)
    pivot[1] = 0.0  # a vertical axis: only x and z of the pivot matter
    matrix = rotation_y(math.atan2(vector[2], vector[0]))
    return _transform_tracked(joints, matrix, pivot, np.zeros(3))


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """One draw of the random spatial augmentation (see ``draw_augment``).

    Attributes:
      angles: ``(ax, ay, az)`` radians, applied as ``Rz @ Ry @ Rx``.
      scale: isotropic scale factor.
      shift: ``(3,)`` translation in metres.
    """

    angles: tuple[float, float, float]
    scale: float
    shift: tuple[float, float, float]


def draw_augment(
    rng: np.random.Generator,
    max_rotation: float,
    scale_range: tuple[float, float],
    max_shift: float,
) -> AugmentParams:
    """Draws one set of augmentation parameters.

    Rotation angles ``U[-max_rotation, max_rotation]`` radians per axis
    (CTR-GCN ``random_rot``, bound 0.3), a scale ``U[scale_range]`` and a shift
    ``U[-max_shift, max_shift]`` metres per axis (ST-GCN ``random_move`` draws
    scales 0.9-1.1 and shifts up to 0.2).
    """
    angles = rng.uniform(-max_rotation, max_rotation, size=3) if max_rotation > 0 else np.zeros(3)
    low, high = scale_range
    scale = rng.uniform(low, high) if high > low else low
    shift = rng.uniform(-max_shift, max_shift, size=3) if max_shift > 0 else np.zeros(3)
    return AugmentParams(
        angles=tuple(float(a) for a in angles),
        scale=float(scale),
        shift=tuple(float(s) for s in shift),
    )


def augment(
    joints: np.ndarray, params: AugmentParams, pivot: np.ndarray | None = None
) -> np.ndarray:
    """Applies ``x -> scale * R (x - pivot) + pivot + shift`` to tracked frames.

    Args:
      joints: ``(T, V, 3)`` metres.
      params: from ``draw_augment``.
      pivot: ``(3,)`` centre of rotation and scaling in metres; ``None`` is
        the origin (right after centring, the centre joint).

    Returns:
      ``(T, V, 3)`` of the input's dtype; untracked frames stay zero. A pure
      rotation (``scale = 1``, zero shift) preserves every bone length.
    """
    pivot = np.zeros(3) if pivot is None else np.asarray(pivot, dtype=np.float64)
    matrix = params.scale * rotation_xyz(params.angles)
    return _transform_tracked(joints, matrix, pivot, np.asarray(params.shift))


# ---------------------------------------------------------------------------
# Streams.
# ---------------------------------------------------------------------------


def bones(joints: np.ndarray, bone_pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """The bone stream: ``out[:, v] = x[:, v] - x[:, parent(v)]`` for each ``(v, parent)``.

    As MS-G3D ``data_gen/gen_bone_data.py`` and CTR-GCN ``feeders/feeder_ntu.py``
    (``bone=True``): the pairs include the centre joint with itself, so the
    stream keeps ``V`` entries and the centre's bone is zero. Joints missing
    from ``bone_pairs`` are zero.

    Args:
      joints: ``(T, V, C)``.
      bone_pairs: 0-based ``(joint, parent)``, e.g. ``graph.BONE_PAIRS``.

    Returns:
      ``(T, V, C)`` of the input's dtype.
    """
    out = np.zeros_like(joints)
    child = np.array([c for c, _ in bone_pairs], dtype=np.int64)
    parent = np.array([p for _, p in bone_pairs], dtype=np.int64)
    out[:, child] = joints[:, child] - joints[:, parent]
    return out


def motion(x: np.ndarray) -> np.ndarray:
    """Frame differences ``out[t] = x[t + 1] - x[t]``, last frame zero.

    The convention of 2s-AGCN ``data_gen/gen_motion_data.py`` and CTR-GCN's
    ``vel=True`` feeder; applied to joints it is ``joint_motion``, to bones
    ``bone_motion``.

    Args:
      x: ``(T, ...)``.

    Returns:
      same shape and dtype.
    """
    out = np.zeros_like(x)
    out[:-1] = x[1:] - x[:-1]
    return out


def to_stream(joints: np.ndarray, stream: str, bone_pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """``joints`` ``(T, V, C)`` -> one of ``STREAMS``, same shape."""
    if stream == "joint":
        return joints
    if stream == "bone":
        return bones(joints, bone_pairs)
    if stream == "joint_motion":
        return motion(joints)
    if stream == "bone_motion":
        return motion(bones(joints, bone_pairs))
    raise DataError(f"Unknown stream {stream!r}; choose from {STREAMS}.")


# ---------------------------------------------------------------------------
# Presets.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named per-example transform chain; plain fields so a config can set each one.

    Attributes:
      name: registry name the preset started from.
      temporal: ``"authors"`` (last ``num_frames - 1`` frames, zero-padded) or
        ``"resample"`` (linear resampling of the whole clip).
      num_frames: output frames ``T`` (authors: 60; resample default 64, as CTR-GCN).
      fill_missing: interpolate untracked (all-zero) joints first (``fill_missing``).
      center_joint: 0-based joint moved to the origin, or ``None`` for no
        centring (0 spine base, 1 spine mid).
      center_mode: ``"first"`` (first tracked frame) or ``"frame"`` (every frame).
      view: ``None``, ``"hip"`` or ``"shoulder"``: yaw normalisation reference.
      stream: one of ``STREAMS``.
      augment: draw a random crop, rotation, scale and shift for training
        examples (evaluation never augments).
      max_rotation: per-axis rotation bound in radians (CTR-GCN: 0.3).
      scale_range: ``(low, high)`` isotropic scale factors.
      max_shift: per-axis translation bound in metres.
      crop_min_ratio: lower end of the random temporal crop proportion
        (CTR-GCN: 0.5); 1.0 disables cropping. Only with ``temporal="resample"``.
      skeleton: layout name for bones and the lost-joint fallback.
    """

    name: str
    temporal: str = "resample"
    num_frames: int = 64
    fill_missing: bool = True
    center_joint: int | None = SPINE_MID
    center_mode: str = "first"
    view: str | None = None
    stream: str = "joint"
    augment: bool = False
    max_rotation: float = 0.3
    scale_range: tuple[float, float] = (1.0, 1.0)
    max_shift: float = 0.0
    crop_min_ratio: float = 0.5
    skeleton: str = "kinect_v2"

    def __post_init__(self) -> None:
        # Configs may hand lists for tuple fields; keep the dataclass hashable.
        object.__setattr__(self, "scale_range", tuple(float(s) for s in self.scale_range))
        choices = {
            "temporal": (self.temporal, TEMPORAL_MODES),
            "center_mode": (self.center_mode, CENTER_MODES),
            "view": (self.view, (None, *sorted(VIEW_PAIRS))),
            "stream": (self.stream, STREAMS),
        }
        for field, (value, valid) in choices.items():
            if value not in valid:
                raise DataError(
                    f"Preset {self.name!r}: {field}={value!r} is not one of {list(valid)}."
                )
        if self.num_frames < 1 + (self.temporal == "authors"):
            raise DataError(f"Preset {self.name!r}: num_frames={self.num_frames} is too small.")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise DataError(
                f"Preset {self.name!r}: scale_range={self.scale_range} must be (low, high) "
                "with 0 < low <= high."
            )
        if self.max_rotation < 0 or self.max_shift < 0:
            raise DataError(f"Preset {self.name!r}: max_rotation and max_shift must be >= 0.")
        if not 0 < self.crop_min_ratio <= 1:
            raise DataError(
                f"Preset {self.name!r}: crop_min_ratio={self.crop_min_ratio} must be in (0, 1]."
            )
        layout = self.layout  # raises for an unknown skeleton name
        if self.view is not None and layout.name != graph.KINECT_V2.name:
            raise DataError(
                f"Preset {self.name!r}: view={self.view!r} uses Kinect v2 hip/shoulder joints; "
                f"set view=None for skeleton {layout.name!r}."
            )
        if self.center_joint is not None and not 0 <= self.center_joint < layout.num_joints:
            raise DataError(
                f"Preset {self.name!r}: center_joint={self.center_joint} not in "
                f"[0, {layout.num_joints}) or None."
            )

    @property
    def layout(self) -> graph.Skeleton:
        try:
            return graph.get_skeleton(self.skeleton)
        except KeyError as err:
            raise DataError(f"Preset {self.name!r}: {err.args[0]}") from None

    def replace(self, **options: Any) -> Preset:
        """A copy with some fields changed; unknown field names raise ``DataError``."""
        _check_fields(options, self.name)
        return dataclasses.replace(self, **options)

    def to_dict(self) -> dict[str, Any]:
        """Plain fields, e.g. to store in an ``ml_collections.ConfigDict``."""
        return dataclasses.asdict(self)

    def output_shape(self, num_joints: int, channels: int = 3) -> tuple[int, int, int]:
        """``(T, V, C)`` that ``apply`` returns for clips with ``num_joints`` joints."""
        return (self.num_frames, num_joints, channels)

    def apply(
        self,
        joints: np.ndarray,
        *,
        train: bool = False,
        rng: np.random.Generator | None = None,
        where: str = "clip",
    ) -> np.ndarray:
        """Runs the chain on one clip.

        Args:
          joints: ``(T, V, 3)`` world xyz in metres (the TFDS ``joints`` feature).
          train: apply the random augmentation when ``self.augment`` is set.
          rng: the example's generator; required when augmenting.
          where: the example's description for error messages.

        Returns:
          ``(num_frames, V, 3)`` float32.
        """
        joints = check_joints(joints, where)
        layout = self.layout
        if joints.shape[1] != layout.num_joints:
            raise DataError(
                f"{where}: {joints.shape[1]} joints, but preset {self.name!r} uses skeleton "
                f"{layout.name!r} with {layout.num_joints}. Set the preset's skeleton field."
            )
        augmenting = train and self.augment
        if augmenting and rng is None:
            raise DataError(f"Preset {self.name!r}: augmentation needs an rng (a numpy Generator).")

        x = fill_missing(joints, layout) if self.fill_missing else joints
        if self.temporal == "authors":
            x = authors_window(x, self.num_frames)
        else:
            if len(x) == 0:
                raise DataError(
                    f"{where}: the clip has no frames (end <= start), so preset {self.name!r} "
                    "cannot resample it. Fix the segment in the label file or use the "
                    "'authors' preset, which keeps it as zeros."
                )
            if augmenting and self.crop_min_ratio < 1:
                x = random_crop(x, rng, self.crop_min_ratio, self.num_frames)
            x = resample(x, self.num_frames)
        if self.view is not None:
            x = normalize_view(x, self.view)
        if self.center_joint is not None:
            x = center(x, self.center_joint, self.center_mode)
        if augmenting:
            params = draw_augment(rng, self.max_rotation, self.scale_range, self.max_shift)
            pivot = None
            if self.center_joint is None:
                # An uncentred clip turns about its own first-frame centre of
                # mass, not about the sensor metres away.
                tracked = np.flatnonzero(valid_frames(x))
                if len(tracked):
                    first = x[tracked[0]]
                    pivot = first[valid_joints(first[None])[0]].mean(axis=0)
            x = augment(x, params, pivot)
        x = to_stream(x, self.stream, layout.bone_pairs)
        return np.asarray(x, dtype=np.float32)


def _check_fields(options: Mapping[str, Any], name: str) -> None:
    fields = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise DataError(
            f"Preset {name!r}: unknown option(s) {unknown}; valid options: {sorted(fields)}."
        )


# The registry. Each entry lists only what differs from the Preset defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # Bit-exact with the authors' smg_gendata.py.
    "authors": dict(
        temporal="authors",
        num_frames=AUTHORS_NUM_FRAMES,
        fill_missing=False,
        center_joint=None,
        view=None,
    ),
    # Lost frames repaired and the whole clip resampled; world coordinates.
    "resample": dict(center_joint=None),
    # + centred on the spine mid of the first frame (CTR-GCN's seq_translation).
    "centered": dict(),
    # + yaw-normalised on the hip line.
    "normalized": dict(view="hip"),
    # + training-time crop, rotation (0.3 rad/axis), scale 0.9-1.1 and 5 cm shifts.
    "normalized_aug": dict(view="hip", augment=True, scale_range=(0.9, 1.1), max_shift=0.05),
}


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def get_preset(name: str, **options: Any) -> Preset:
    """The registered preset ``name`` with ``options`` overriding its fields.

    Args:
      name: one of ``preset_names()``.
      **options: ``Preset`` fields, e.g. ``stream="bone"``, ``num_frames=32``.

    Raises:
      DataError: unknown name (the message lists the valid ones) or option.
    """
    if name not in PRESETS:
        raise DataError(f"Unknown preset {name!r}; valid presets: {list(PRESETS)}.")
    options = dict(options)
    options.pop("name", None)
    _check_fields(options, name)
    return Preset(name=name, **{**PRESETS[name], **options})


def preset_from_config(config: Mapping[str, Any]) -> Preset:
    """Builds a preset from a mapping (e.g. an ``ml_collections.ConfigDict``).

    ``config["name"]`` (or ``config["preset"]``) picks the registry entry;
    every other key overrides a ``Preset`` field.
    """
    options = dict(config.items())
    name = options.pop("name", None)
    alias = options.pop("preset", None)
    name = name if name is not None else alias
    if name is None:
        raise DataError(f"Preset config needs a 'name'; valid presets: {list(PRESETS)}.")
    return get_preset(name, **options)
