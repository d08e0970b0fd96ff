"""The named presets: per-example skeleton transforms chained into one ``Preset``.

The transforms live beside this module, by kind: ``joints`` (named joints,
validation, ``DataError``), ``temporal`` (windows, resampling, lost joints),
``spatial`` (centring, view, augmentation) and ``streams`` (bones, motion).
Every one is pure NumPy on one clip. A clip is ``joints`` of shape
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
from collections.abc import Mapping
from typing import Any

import numpy as np

from smg_jax import graph
from smg_jax.data.joints import (
    AUTHORS_NUM_FRAMES,
    CENTER_MODES,
    SPINE_MID,
    STREAMS,
    TEMPORAL_MODES,
    VIEW_PAIRS,
    DataError,
    check_joints,
    valid_frames,
    valid_joints,
)
from smg_jax.data.spatial import (
    augment,
    center,
    draw_augment,
    normalize_view,
)
from smg_jax.data.streams import to_stream
from smg_jax.data.temporal import authors_window, fill_missing, random_crop, resample


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
