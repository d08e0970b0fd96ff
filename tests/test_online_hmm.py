"""The authors' HMM: Viterbi against brute force and their loop, statistics, rules, segments."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.online_benchmark import authors_viterbi
from smg_jax.online import hmm, viterbi
from smg_jax.online.errors import OnlineError

# Two classes of five states and rest (index 10) keep hand-made paths readable.
SMALL = hmm.HMMOptions(num_classes=2)
REST = SMALL.rest


def _brute_force(log_init, log_trans, log_lik):
    best, best_path = -np.inf, None
    num_frames, num_states = log_lik.shape
    for path in itertools.product(range(num_states), repeat=num_frames):
        score = log_init[path[0]] + log_lik[0, path[0]]
        score += sum(
            log_trans[path[t - 1], path[t]] + log_lik[t, path[t]] for t in range(1, num_frames)
        )
        if score > best + 1e-9:
            best, best_path = score, path
    return best, best_path


def test_viterbi_matches_brute_force_on_small_random_hmms():
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(60):
        num_states, num_frames = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        log_init = rng.normal(size=num_states)
        log_trans = rng.normal(size=(num_states, num_states))
        if trial % 3 == 0:  # structural zeros, as count matrices have
            log_trans[rng.random((num_states, num_states)) < 0.4] = -np.inf
        log_lik = rng.normal(size=(num_frames, num_states))
        best, best_path = _brute_force(log_init, log_trans, log_lik)
        if not np.isfinite(best):
            continue
        path, scores = viterbi.decode_path(log_init, log_trans, log_lik)  # padded to a bucket
        assert tuple(path) == best_path, trial
        assert scores[-1].max() == pytest.approx(best, abs=1e-4)
        assert scores[-1, path[-1]] == pytest.approx(best, abs=1e-4)
        if trial % 6 == 0:  # unpadded too (each shape compiles anew, so only a few)
            exact, _ = viterbi.viterbi(
                *(jnp.asarray(a, jnp.float32) for a in (log_init, log_trans, log_lik))
            )
            assert tuple(np.asarray(exact)) == best_path
        checked += 1
    assert checked > 40


def test_padding_rows_change_nothing():
    rng = np.random.default_rng(1)
    log_trans = np.log(rng.dirichlet(np.ones(6), size=6))
    log_lik = rng.normal(size=(300, 6)).astype(np.float32)
    args = (jnp.zeros(6), jnp.asarray(log_trans, jnp.float32))
    path, scores = viterbi.viterbi(*args, jnp.asarray(log_lik))
    padded = np.concatenate([log_lik, rng.normal(size=(212, 6)).astype(np.float32)])
    path_p, scores_p = viterbi.viterbi(*args, jnp.asarray(padded), 300)
    np.testing.assert_array_equal(np.asarray(path_p)[:300], np.asarray(path))
    np.testing.assert_allclose(np.asarray(scores_p)[:300], np.asarray(scores))
    assert (
        viterbi.bucket(300) == 320 and viterbi.bucket(20526) == 24576 and viterbi.bucket(10) == 64
    )


def test_faithful_decoding_equals_the_authors_loop():
    rng = np.random.default_rng(2)
    recordings = [(400, [(0, 20, 60), (1, 100, 170), (0, 250, 300), (1, 320, 390)])]
    counts = hmm.count_statistics(recordings, SMALL)
    assert np.all(counts.prior > 0)
    log_probs = np.log(rng.dirichlet(np.ones(SMALL.num_states), size=120))
    log_lik = hmm.emission_log_likelihood(log_probs, SMALL)
    log_init, log_trans = hmm.log_transitions(counts, SMALL)
    with np.errstate(divide="ignore"):
        prior_row, log_counts = np.log(counts.prior)[None], np.log(counts.transitions)
    their_path, _, their_scores = authors_viterbi(prior_row, log_counts, log_lik.T.copy())
    with jax.enable_x64(True):
        path, scores = viterbi.viterbi(
            jnp.asarray(log_init), jnp.asarray(log_trans), jnp.asarray(log_lik)
        )
        path, scores = np.asarray(path), np.asarray(scores)
    np.testing.assert_array_equal(path, their_path)
    finite = np.isfinite(their_scores.T)
    np.testing.assert_array_equal(np.isfinite(scores), finite)
    np.testing.assert_allclose(scores[finite], their_scores.T[finite], rtol=1e-12, atol=1e-9)
    path32, _ = viterbi.decode_path(log_init, log_trans, log_lik)
    np.testing.assert_array_equal(path32, their_path)


def test_forced_alignment_uses_round_half_to_even():
    np.testing.assert_array_equal(hmm.state_targets(7, 0), [0, 1, 1, 2, 3, 3, 4])
    np.testing.assert_array_equal(hmm.state_targets(7, 3), [15, 16, 16, 17, 18, 18, 19])
    # n = 2, 4 parts: boundaries round(0.5) = 0 and round(1.5) = 2 (half to even).
    np.testing.assert_array_equal(hmm.state_targets(2, 0, states_per_class=4), [1, 2])
    assert hmm.state_targets(0, 0).size == 0


def test_gesture_rows_under_both_frame_conventions():
    assert hmm.gesture_frames(20, 30, "one_based") == (19, 29)
    assert hmm.gesture_rows(20, 30, "one_based") == (19, 10)
    assert hmm.gesture_frames(20, 30, "zero_based") == (20, 29)
    assert hmm.gesture_rows(20, 30, "zero_based") == (20, 9)
    assert hmm.gesture_rows(0, 30, "one_based") == (0, 29)  # their reader would fail at frame 0
    assert hmm.decoded_rows(100, "one_based") == 98 and hmm.decoded_rows(100, "zero_based") == 99


def test_authors_transition_counts_by_hand():
    # One MG of class 1, label rows [20, 29): 1-based frames 20..29 are rows 19..28, n = 10,
    # L = 6 steps between positions floor(5k / 9) = 0 0 1 1 2 2 3 (+ 5).
    np.testing.assert_array_equal(hmm.authors_step_states(10, 1, 5), [5, 5, 6, 6, 7, 7, 8])
    counts = hmm.count_statistics([(100, [(1, 20, 29)])], SMALL)
    prior = np.zeros(11)
    prior[[5, 6, 7]] = 2
    prior[REST] = 3  # two entries + one exit
    np.testing.assert_array_equal(counts.prior, prior)
    trans = np.zeros((11, 11))
    for source, target in [(5, 5), (5, 6), (6, 6), (6, 7), (7, 7), (7, 8)]:
        trans[source, target] += 1
    trans[REST, REST] = 100 - 6
    trans[REST, 5] = 2  # the first two steps both enter from rest
    trans[8, REST] = 1  # the last step's target leaves to rest
    np.testing.assert_array_equal(counts.transitions, trans)
    # Too short an MG (4 frames read: L = 0) adds nothing but the recording's frames.
    short = hmm.count_statistics([(50, [(0, 10, 13)])], SMALL)
    assert short.transitions.sum() == 50 and short.prior.sum() == 0


def test_consistent_transition_counts_by_hand():
    options = hmm.HMMOptions(num_classes=2, alignment="consistent", frames="zero_based")
    counts = hmm.count_statistics([(20, [(0, 5, 12)])], options)  # rows 5..10: 6 rows
    states = hmm.state_targets(6, 0)  # part ends round(1.2, 2.4, 3.6, 4.8) = 1, 2, 4, 5
    np.testing.assert_array_equal(states, [0, 1, 2, 2, 3, 4])
    trans = np.zeros((11, 11))
    for source, target in itertools.pairwise(states):
        trans[source, target] += 1
    trans[REST, 0] = trans[4, REST] = 1
    trans[REST, REST] = 4 + 7  # consecutive frame pairs outside the MG: in 0..4 and 12..19
    np.testing.assert_array_equal(counts.transitions, trans)
    np.testing.assert_array_equal(counts.prior, trans.sum(axis=1))
    per_frame = hmm.count_statistics([(20, [(0, 5, 12)])], options, per_frame=True)
    assert per_frame.transitions[:10].sum() == 7  # 7 frames: 6 steps + the exit


def test_log_transitions_of_each_reading():
    counts = hmm.HMMCounts(
        prior=np.array([2.0, 0.0, 4.0]),
        transitions=np.array([[1.0, 1.0, 0.0], [0, 0, 0], [2, 0, 6]]),
    )
    options = hmm.HMMOptions(num_classes=2, states_per_class=1)
    log_init, log_trans = hmm.log_transitions(counts, options)
    np.testing.assert_array_equal(log_init, 0.0)
    np.testing.assert_allclose(log_trans[0, :2], np.log([0.5, 0.5]))
    assert np.all(np.isneginf(log_trans[1]))  # never a source: cannot be left
    np.testing.assert_allclose(log_trans[2, [0, 2]], np.log([2 / 4, 6 / 4]))
    _, state0 = hmm.log_transitions(
        counts,
        options.__class__(num_classes=2, states_per_class=1, transitions="counts_state0_shift"),
    )
    np.testing.assert_allclose(state0[2, 2], np.log(6) - np.log(2))
    normalized = hmm.HMMOptions(num_classes=2, states_per_class=1, transitions="normalized")
    log_init, log_trans = hmm.log_transitions(counts, normalized)
    np.testing.assert_allclose(np.exp(log_init), [2 / 10, 0, 8 / 10])
    np.testing.assert_allclose(np.exp(log_trans[[0, 2]]).sum(axis=1), 1.0)


def test_rest_rows_around_gestures_and_anywhere():
    one = hmm.HMMOptions(num_classes=2)
    # Rows over 1-based frames 15..20 (0-based 14..19) and 30..35 (29..34).
    np.testing.assert_array_equal(
        hmm.rest_rows(60, [(0, 20, 30)], one), [14, 15, 16, 17, 18, 29, 30, 31, 32, 33]
    )
    # A second MG at [33, 40) lies in the first one's after-window and vice versa.
    rows = hmm.rest_rows(60, [(0, 20, 30), (1, 33, 40)], one)
    np.testing.assert_array_equal(rows, [14, 15, 16, 17, 18, 39, 40, 41, 42, 43])
    # Windows that would leave the recording are skipped.
    assert hmm.rest_rows(34, [(0, 3, 30)], one).size == 0
    zero = hmm.HMMOptions(num_classes=2, frames="zero_based")
    np.testing.assert_array_equal(
        hmm.rest_rows(60, [(0, 20, 30)], zero), [14, 15, 16, 17, 18, 30, 31, 32, 33, 34]
    )
    anywhere = hmm.HMMOptions(num_classes=2, rest_frames="anywhere")
    np.testing.assert_array_equal(hmm.rest_rows(12, [(0, 3, 6)], anywhere), [0, 1, 6, 7, 8, 9, 10])


def test_emission_scaling_is_the_authors_formula():
    rng = np.random.default_rng(3)
    y = rng.dirichlet(np.ones(11), size=30)
    out = hmm.emission_log_likelihood(np.log(y), SMALL)
    # Their emission_prob, written out on y.
    weights = np.exp(y[:, :10] ** 2 / 9)
    weights /= weights.sum(axis=1, keepdims=True)
    expected = np.log(np.concatenate([weights * y[:, :10] * -2.5 + y[:, :10], y[:, 10:]], 1))
    expected[:, 10] *= 2.1
    expected[:5, 10] = expected[-5:, 10] = 0.0
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    plain = hmm.emission_log_likelihood(np.log(y), hmm.HMMOptions(num_classes=2, aes=False))
    np.testing.assert_allclose(plain[5:-5], np.log(y[5:-5]))
    prior = np.log(np.full(11, 1 / 11))
    prior[3] = -np.inf
    scaled = hmm.emission_log_likelihood(
        np.log(y),
        hmm.HMMOptions(num_classes=2, aes=False, emission_scores="scaled_likelihood"),
        prior,
    )
    np.testing.assert_allclose(scaled[5:-5, 0], np.log(y[5:-5, 0]) + np.log(11))
    assert np.all(np.isneginf(scaled[:, 3]))  # never a target: never emitted
    with pytest.raises(OnlineError, match="non-positive"):
        hmm.emission_log_likelihood(np.log(y), hmm.HMMOptions(num_classes=2, mu=-200.0))
    with pytest.raises(OnlineError, match=r"\(T, 11\)"):
        hmm.emission_log_likelihood(np.log(y[:, :5]), SMALL)


def _path(*runs: tuple[int, int]) -> np.ndarray:
    """A state path from ``(state, repeat)`` runs."""
    return np.concatenate([np.full(n, s) for s, n in runs]).astype(np.int32)


def _flat_scores(path: np.ndarray, gain: float = 0.0) -> np.ndarray:
    """Scores that grow by ``gain`` per row in every state."""
    return np.tile((gain * np.arange(path.size))[:, None], (1, REST + 1))


def _gesture(c: int, per_state: int) -> list[tuple[int, int]]:
    return [(5 * c + s, per_state) for s in range(5)]


def test_authors_rule_on_a_clean_segment():
    path = _path((REST, 3), *_gesture(1, 4), (REST, 3))  # rows 3..22 in class 1
    assert hmm.extract_segments(path, _flat_scores(path), SMALL) == [(1, 3, 22, 0.0)]


def test_minimum_length_is_on_end_minus_begin():
    kept = _path((REST, 2), (0, 17), (4, 0), (2, 0), (REST, 2))  # rows 2..18: 18 - 2 = 16 > 15
    kept[18] = 4
    assert [s[:3] for s in hmm.extract_segments(kept, _flat_scores(kept), SMALL)] == [(0, 2, 18)]
    dropped = _path((REST, 2), (0, 15), (4, 1), (REST, 2))  # rows 2..17: 15, not > 15
    assert hmm.extract_segments(dropped, _flat_scores(dropped), SMALL) == []
    loose = hmm.HMMOptions(num_classes=2, min_length=14)
    assert len(hmm.extract_segments(dropped, _flat_scores(dropped), loose)) == 1


def test_score_threshold_on_the_gain_per_row():
    path = _path((REST, 2), *_gesture(0, 5), (REST, 2))  # rows 2..26: 24 rows apart
    assert hmm.extract_segments(path, _flat_scores(path, -2.9), SMALL)[0][3] == pytest.approx(-2.9)
    assert hmm.extract_segments(path, _flat_scores(path, -3.0), SMALL) == []  # not above -3
    scores = _flat_scores(path)
    scores[26, path[26]] = 24 * -3.5  # only the two end points count
    assert hmm.extract_segments(path, scores, SMALL) == []


def test_an_unclosed_segment_at_the_end_is_dropped():
    path = _path((REST, 2), *_gesture(0, 5), (REST, 2), *_gesture(1, 5))
    segments = hmm.extract_segments(path, _flat_scores(path), SMALL)
    assert [s[:3] for s in segments] == [(0, 2, 26)]
    runs = hmm.HMMOptions(num_classes=2, segment_rule="class_runs")
    assert [s[:3] for s in hmm.extract_segments(path, _flat_scores(path), runs)] == [
        (0, 2, 26),
        (1, 29, 53),
    ]


def test_authors_rule_needs_start_and_end_states_and_may_span_rest():
    # Entering at step 3 is no begin; leaving from step 1 is no end, so the first begin runs
    # through rest to the next end, and the label is the first class.
    path = _path(
        (REST, 2), (3, 20), (4, 2), (REST, 3),  # no begin: starts in step 3
        (0, 10), (1, 10), (REST, 3),  # begins at row 27, no end (leaves from step 1)
        *_gesture(1, 4), (REST, 3),  # the end comes here, row 69
    )  # fmt: skip
    assert [s[:3] for s in hmm.extract_segments(path, _flat_scores(path), SMALL)] == [(0, 27, 69)]
    runs = hmm.HMMOptions(num_classes=2, segment_rule="class_runs")
    assert [s[:3] for s in hmm.extract_segments(path, _flat_scores(path), runs)] == [
        (0, 2, 23),
        (0, 27, 46),
        (1, 50, 69),
    ]


def test_no_segment_begins_at_row_zero_or_ends_on_the_last_row():
    path = _path(*_gesture(0, 5), (REST, 2), *_gesture(1, 5))
    assert hmm.extract_segments(path, _flat_scores(path), SMALL) == []


def test_rows_to_frames_under_both_conventions():
    segments = [(3, 10, 40, 0.5)]
    assert hmm.rows_to_frames(segments, "one_based") == [(3, 10, 40)]
    assert hmm.rows_to_frames(segments, "zero_based") == [(3, 10, 42)]  # rows 10..40: frames 10..41


def test_bad_options_are_named():
    with pytest.raises(OnlineError, match="frames='1-based'"):
        hmm.HMMOptions(frames="1-based")
    with pytest.raises(OnlineError, match="Unknown HMM option"):
        hmm.options_from_mapping({"segment_rules": "authors"})
    with pytest.raises(OnlineError, match="min_length"):
        hmm.HMMOptions(min_length=-1)
