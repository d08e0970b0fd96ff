"""Per-example transforms and presets (smg_jax.data.transforms)."""

from __future__ import annotations

import math

import ml_collections
import numpy as np
import pytest

from smg_jax import graph
from smg_jax.data import joints, spatial, streams
from smg_jax.data import transforms as T

V = graph.NUM_JOINTS


def coded_clip(num_frames: int, num_joints: int = V) -> np.ndarray:
    """``(T, V, 3)`` float32 whose value encodes its position: ``t + 1 + v / 100 + c / 1000``."""
    t = np.arange(num_frames)[:, None, None] + 1.0
    v = np.arange(num_joints)[None, :, None] / 100.0
    c = np.arange(3)[None, None, :] / 1000.0
    return (t + v + c).astype(np.float32)


def standing_body(num_frames: int = 8, seed: int = 0) -> np.ndarray:
    """A plausible Kinect v2 body 2 m in front of the sensor with a little jitter."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 0.25, size=(V, 3))
    base[graph.JOINT_NAMES.index("left_hip")] = [-0.1, 0.0, 0.0]
    base[graph.JOINT_NAMES.index("right_hip")] = [0.1, 0.0, 0.0]
    base += [0.3, 0.1, 2.0]
    jitter = rng.normal(0.0, 0.01, size=(num_frames, V, 3))
    return (base[None] + jitter).astype(np.float32)


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    return np.linalg.norm(streams.bones(joints.astype(np.float64), graph.BONE_PAIRS), axis=-1)


# ---------------------------------------------------------------------------
# The authors' preset, against arrays written by hand from smg_gendata.py.


@pytest.mark.parametrize(
    ("length", "first_kept"),
    [(10, 0), (59, 0), (60, 1), (100, 41)],
)
def test_authors_preset_keeps_last_59_frames_zero_padded(length, first_kept):
    clip = coded_clip(length)
    out = T.get_preset("authors").apply(clip)
    kept = min(length, 59)
    expected = np.zeros((60, V, 3), np.float32)
    expected[:kept] = clip[first_kept : first_kept + kept]
    assert out.dtype == np.float32 and out.shape == (60, V, 3)
    np.testing.assert_array_equal(out, expected)
    # Spelled out for the 100-frame clip: segment [s, s+100) keeps rows [s+41, s+100).
    if length == 100:
        assert out[0, 0, 0] == np.float32(42.0) and out[58, 0, 0] == np.float32(100.0)
    assert not out[59].any()


def test_authors_preset_values_are_float64_parses_cast_once():
    # The script parses text to float64 and stores float32: same as casting once.
    clip = np.array([[[0.1, 1 / 3, -2.000000059604645]]] * 3, dtype=np.float64)
    clip = np.repeat(clip, V, axis=1)
    out = T.get_preset("authors").apply(clip)
    np.testing.assert_array_equal(out[:3], clip.astype(np.float32))


def test_authors_preset_empty_and_zero_frames_are_kept_as_zeros():
    out = T.get_preset("authors").apply(np.zeros((0, V, 3), np.float32))
    assert out.shape == (60, V, 3) and not out.any()
    clip = coded_clip(5)
    clip[2] = 0.0  # lost tracking: the authors keep it, no repair
    np.testing.assert_array_equal(T.get_preset("authors").apply(clip)[:5], clip)


def test_authors_window_other_lengths():
    clip = coded_clip(7)
    np.testing.assert_array_equal(T.authors_window(clip, 4)[:3], clip[4:])
    assert not T.authors_window(clip, 4)[3].any()


# ---------------------------------------------------------------------------
# Streams on a hand-made 3-joint skeleton: 0 -> 1 <- 2, joint 1 the centre.

PAIRS_3 = ((0, 1), (2, 1), (1, 1))


def three_joint_clip() -> np.ndarray:
    return np.array(
        [
            [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
            [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 3.0, 1.0]],
            [[3.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 4.0, 1.0]],
        ],
        dtype=np.float32,
    )


def test_bone_stream_by_hand():
    expected = np.array(
        [
            [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
            [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 1.0]],
            [[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 3.0, 1.0]],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(streams.bones(three_joint_clip(), PAIRS_3), expected)


def test_motion_streams_by_hand():
    x = three_joint_clip()
    joint_motion = np.array(
        [
            [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]],
            [[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]],
            np.zeros((3, 3)),
        ],
        dtype=np.float32,
    )
    bone_motion = np.array(
        [
            [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
            [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            np.zeros((3, 3)),
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(T.to_stream(x, "joint", PAIRS_3), x)
    np.testing.assert_array_equal(T.to_stream(x, "joint_motion", PAIRS_3), joint_motion)
    np.testing.assert_array_equal(T.to_stream(x, "bone_motion", PAIRS_3), bone_motion)


def test_kinect_bone_stream_uses_graph_pairs():
    clip = standing_body()
    out = T.get_preset("authors", stream="bone").apply(clip)
    centre = graph.CENTER_JOINT
    assert not out[:, centre].any()
    elbow, shoulder = (
        graph.JOINT_NAMES.index("left_elbow"),
        graph.JOINT_NAMES.index("left_shoulder"),
    )
    np.testing.assert_array_equal(out[: len(clip), elbow], clip[:, elbow] - clip[:, shoulder])


# ---------------------------------------------------------------------------
# Resampling, lost frames, centring, view.


def test_resample_positions_match_align_corners_false():
    ramp = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    up = T.resample(ramp, 8)[:, 0, 0]
    np.testing.assert_allclose(up, [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])
    long_ramp = np.arange(8, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    np.testing.assert_allclose(T.resample(long_ramp, 4)[:, 0, 0], [0.5, 2.5, 4.5, 6.5])
    clip = coded_clip(13)
    np.testing.assert_array_equal(T.resample(clip, 13), clip)
    np.testing.assert_array_equal(T.resample(clip[:1], 5), np.repeat(clip[:1], 5, axis=0))
    assert T.resample(clip, 64).dtype == np.float32


def test_fill_missing_interpolates_and_avoids_spikes():
    clip = coded_clip(6)
    clip[0] = 0.0  # lost before the first tracked frame: held
    clip[3] = 0.0  # lost in the middle: linear between frames 2 and 4
    filled = T.fill_missing(clip)
    np.testing.assert_allclose(filled[0], coded_clip(6)[1])
    np.testing.assert_allclose(filled[3], coded_clip(6)[3], rtol=1e-6)
    # Without the repair the motion stream jumps by metres; with it, by a frame.
    assert np.abs(streams.motion(clip)).max() > 3
    assert np.abs(streams.motion(filled)).max() <= 1.0 + 1e-5
    out = T.get_preset("resample", num_frames=6).apply(clip)
    assert np.abs(streams.bones(out, graph.BONE_PAIRS)).max() < 0.25


def test_fill_missing_never_tracked_joint_copies_a_neighbour():
    clip = standing_body()
    hand_tip = graph.JOINT_NAMES.index("left_hand_tip")
    clip[:, hand_tip] = 0.0
    filled = T.fill_missing(clip, graph.KINECT_V2)
    assert filled[:, hand_tip].any()
    assert np.abs(streams.bones(filled, graph.BONE_PAIRS)[:, hand_tip]).max() == 0.0
    assert not T.fill_missing(np.zeros((4, V, 3), np.float32)).any()


def test_center_first_and_per_frame():
    clip = coded_clip(5)
    first = T.center(clip, T.SPINE_MID, "first")
    np.testing.assert_allclose(first, clip - clip[0, T.SPINE_MID], atol=1e-6)
    per_frame = T.center(clip, joints.SPINE_BASE, "frame")
    assert not per_frame[:, joints.SPINE_BASE].any()
    np.testing.assert_allclose(per_frame, clip - clip[:, joints.SPINE_BASE : joints.SPINE_BASE + 1])
    padded = T.authors_window(clip)
    assert not T.center(padded, T.SPINE_MID, "first")[5:].any()  # padding stays zero


def test_normalize_view_aligns_hips_with_x_and_keeps_shape():
    body = standing_body().astype(np.float64)
    turned = body @ spatial.rotation_y(0.7).T  # the person turned away from the sensor
    out = T.normalize_view(turned, "hip")
    hips = out[:, joints.RIGHT_HIP] - out[:, joints.LEFT_HIP]
    mean = hips.mean(axis=0)
    assert mean[0] > 0 and abs(mean[2]) < 1e-9
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(body), atol=1e-9)
    np.testing.assert_allclose(out[..., 1], turned[..., 1])  # only yaw changes
    # Facing the sensor already: (close to) unchanged.
    np.testing.assert_allclose(T.normalize_view(body, "hip"), body, atol=0.05)


# ---------------------------------------------------------------------------
# Augmentation.


def test_augmentation_is_deterministic_given_a_generator():
    preset = T.get_preset("normalized_aug")
    clip = standing_body(80)
    first = preset.apply(clip, train=True, rng=np.random.default_rng(7))
    again = preset.apply(clip, train=True, rng=np.random.default_rng(7))
    other = preset.apply(clip, train=True, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert first.shape == (64, V, 3) and first.dtype == np.float32
    # Evaluation never augments, whatever the preset says.
    np.testing.assert_array_equal(preset.apply(clip), T.get_preset("normalized").apply(clip))
    with pytest.raises(T.DataError, match="rng"):
        preset.apply(clip, train=True)


def test_rotation_preserves_bone_lengths_and_scale_scales_them():
    clip = standing_body().astype(np.float64)
    params = T.draw_augment(np.random.default_rng(3), 0.3, (1.0, 1.0), 0.0)
    assert max(abs(a) for a in params.angles) > 0.01
    rotated = T.augment(clip, params)
    np.testing.assert_allclose(bone_lengths(rotated), bone_lengths(clip), rtol=1e-10)
    scaled = T.augment(clip, spatial.AugmentParams((0.0, 0.0, 0.0), 1.1, (0.0, 0.0, 0.0)))
    np.testing.assert_allclose(bone_lengths(scaled), 1.1 * bone_lengths(clip), rtol=1e-10)
    matrix = spatial.rotation_xyz((0.1, -0.2, 0.3))
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)


# ---------------------------------------------------------------------------
# Registry and errors.


def test_registry_lists_valid_names_and_options():
    assert set(T.preset_names()) >= {"authors", "resample", "centered", "normalized"}
    with pytest.raises(T.DataError, match=r"valid presets: \['authors'"):
        T.get_preset("author")
    with pytest.raises(T.DataError, match="unknown option"):
        T.get_preset("authors", num_frame=64)
    with pytest.raises(T.DataError, match="stream='bones' is not one of"):
        T.get_preset("normalized", stream="bones")
    preset = T.get_preset("normalized", stream="bone_motion", num_frames=32)
    assert preset.stream == "bone_motion" and preset.num_frames == 32
    assert preset.apply(standing_body(40)).shape == (32, V, 3)


def test_preset_from_ml_collections_config_round_trips():
    config = ml_collections.ConfigDict(T.get_preset("normalized_aug", num_frames=48).to_dict())
    preset = T.preset_from_config(config)
    assert preset == T.get_preset("normalized_aug", num_frames=48)
    assert math.isclose(preset.max_rotation, 0.3)


def test_non_finite_clip_names_the_example():
    clip = coded_clip(4)
    clip[2, 5, 1] = np.nan
    example = {"joints": clip, "sample_id": b"Sample0036", "segment_index": 7, "start": 3, "end": 7}
    with pytest.raises(T.DataError, match=r"Sample0036 segment 7 .*frame 2 joint 5"):
        T.get_preset("authors").apply(clip, where=joints.describe_example(example))
    with pytest.raises(T.DataError, match=r"shape \(T, V, 3\)"):
        T.get_preset("authors").apply(clip[..., :2])
    with pytest.raises(T.DataError, match="no frames"):
        T.get_preset("normalized").apply(np.zeros((0, V, 3), np.float32))
