"""The authors' 2,775-value frame features on hand-computed skeletons, and standardization."""

from __future__ import annotations

import numpy as np
import pytest

from smg_jax.online import features
from smg_jax.online.errors import OnlineError


def test_two_joint_feature_vector_by_hand():
    # Frame t: joint 0 at (1, 2, 3), joint 1 at (0, 0, 1); frame t+1: (1, 2, 4), (0, 1, 1).
    current = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]], np.float32)
    following = np.array([[1.0, 2.0, 4.0], [0.0, 1.0, 1.0]], np.float32)
    row = np.asarray(features.pair_features(current, following))
    expected = [
        1, 2, 2,  # Fcc: p_t[0] - p_t[1]
        0, 0, 1,  # Fcp (0, 0): p_t+1[0] - p_t[0]
        1, 2, 3,  # Fcp (0, 1): p_t+1[0] - p_t[1]
        -1, -1, -2,  # Fcp (1, 0): p_t+1[1] - p_t[0]
        0, 1, 0,  # Fcp (1, 1): p_t+1[1] - p_t[1]
    ]  # fmt: skip
    np.testing.assert_array_equal(row, expected)
    assert features.feature_dim(2) == 15


def test_25_joint_features_follow_the_authors_loops():
    # Joint i at (i, 2i, -i) cm; every joint moves by (1, 0, 0) cm to the next frame.
    current = np.stack([np.arange(25), 2 * np.arange(25), -np.arange(25)], 1) * 0.01
    following = current + np.array([0.01, 0.0, 0.0])
    joints = np.stack([current, following]).astype(np.float32)
    row = features.row_features(joints)
    assert row.shape == (1, features.FEATURE_DIM) == (1, 2775)
    row = row[0]
    # Fcc pair (i, j), i < j, in loop order: pair (0, 1) first, (1, 2) after joint 0's 24 pairs.
    np.testing.assert_allclose(row[0:3], [-0.01, -0.02, 0.01], atol=1e-7)
    np.testing.assert_allclose(row[24 * 3 : 25 * 3], [-0.01, -0.02, 0.01], atol=1e-7)
    np.testing.assert_allclose(row[897:900], [-0.01, -0.02, 0.01], atol=1e-7)  # (23, 24), last
    np.testing.assert_allclose(row[3:6], [-0.02, -0.04, 0.02], atol=1e-7)  # (0, 2)
    # Fcp pair (i, j), i over frame t+1 outer, j over frame t inner.
    fcp = row[900:].reshape(25, 25, 3)
    np.testing.assert_allclose(fcp[2, 5], following[2] - current[5], atol=1e-7)
    np.testing.assert_allclose(fcp[7, 7], [0.01, 0.0, 0.0], atol=1e-7)


def _loop_reference(joints: np.ndarray, rows_wanted) -> np.ndarray:
    """The two loops, written out per frame, as the authors' Extract_feature_Realtime runs them."""
    rows = []
    for t in rows_wanted:
        fcc = [joints[t, i] - joints[t, j] for i in range(25) for j in range(i + 1, 25)]
        fcp = [joints[t + 1, i] - joints[t, j] for i in range(25) for j in range(25)]
        rows.append(np.concatenate(fcc + fcp))
    return np.asarray(rows)


def test_rows_match_a_loop_reference_across_chunk_boundaries():
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(features.CHUNK_ROWS + 7, 25, 3)).astype(np.float32)
    everything = features.row_features(joints)
    assert everything.shape == (len(joints) - 1, 2775)
    picks = np.array([0, 5, features.CHUNK_ROWS - 1, features.CHUNK_ROWS, len(joints) - 2])
    np.testing.assert_allclose(everything[picks], _loop_reference(joints, picks), atol=1e-5)
    np.testing.assert_array_equal(
        features.row_features(joints, picks[::-1]), everything[picks[::-1]]
    )


def test_bad_joints_and_rows_are_errors_naming_the_recording():
    with pytest.raises(OnlineError, match="Sample0036: joints must be"):
        features.row_features(np.zeros((5, 25)), where="Sample0036")
    bad = np.zeros((5, 25, 3), np.float32)
    bad[2, 3, 1] = np.nan
    with pytest.raises(OnlineError, match="NaN"):
        features.row_features(bad)
    with pytest.raises(OnlineError, match=r"rows must lie in \[0, 4\)"):
        features.row_features(np.zeros((5, 25, 3), np.float32), [4])


def test_standardizer_is_scikit_learns_standard_scaler():
    rng = np.random.default_rng(1)
    table = rng.normal(3.0, 2.0, size=(50, 6)).astype(np.float32)
    table[:, 2] = 7.5  # a constant feature keeps scale 1
    rows = np.array([0, 1, 1, 1, 4, 9, 30, 30, 49])  # repeats count, as resampled rest rows do
    fitted = features.fit_standardizer(table, rows)
    chosen = table[rows].astype(np.float64)
    np.testing.assert_allclose(fitted.mean, chosen.mean(0))
    expected_scale = chosen.std(0)
    expected_scale[2] = 1.0
    np.testing.assert_allclose(fitted.scale, expected_scale)
    out = fitted.apply(table[rows])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, [0, 1, 3, 4, 5]].mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 2], 0.0)
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    scaler = preprocessing.StandardScaler().fit(chosen)
    np.testing.assert_allclose(fitted.scale, scaler.scale_)
    np.testing.assert_allclose(out, scaler.transform(chosen), atol=1e-5)


def test_standardizer_round_trip_and_errors(tmp_path):
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    fitted = features.fit_standardizer(table)
    loaded = features.Standardizer.load(fitted.save(tmp_path / "s.npz"))
    np.testing.assert_array_equal(loaded.apply(table), fitted.apply(table))
    with pytest.raises(OnlineError, match="fitted on 3"):
        fitted.apply(np.zeros((2, 4)))
    with pytest.raises(OnlineError, match="zero rows"):
        features.fit_standardizer(table, np.zeros(0, np.int64))


def test_window_rows_repeat_the_edges():
    np.testing.assert_array_equal(
        features.window_rows(np.array([0, 5, 9]), 5, 10),
        [[0, 0, 0, 1, 2], [3, 4, 5, 6, 7], [7, 8, 9, 9, 9]],
    )
