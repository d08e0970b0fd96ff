"""The HMM of the authors' online recognizer: statistics, targets, emissions, segments.

States: ``S`` (5) per class, class ``c`` step ``s`` is state ``S c + s``, and
one rest ("no MG") state, the last index (``S K``; 85 for SMG). Frames are
decoded (``viterbi``) as *feature rows*: row ``r`` describes frames ``r`` and ``r + 1``
(``features``).

Every choice of the authors' code is the default of an ``HMMOptions`` field,
and each correction is another value of that field (``docs/online.md`` lists
them):

==================  ======================  ==================================================
field               authors (default)       correction
==================  ======================  ==================================================
frames              ``one_based``           ``zero_based``: read an MG as the label file's rows
                                            ``[start, end)``, decode every frame, and report
                                            predictions as ``[start, end)`` frame ranges
alignment           ``authors``             ``consistent``: count HMM transitions on the same
                                            5-part alignment as the network targets
transitions         ``counts_source_shift`` ``normalized``: log transition probabilities and
                                            an initial distribution (``counts_state0_shift``
                                            and ``counts`` are other readings, for comparison)
emission_scores     ``posterior``           ``scaled_likelihood``: divide the posteriors by the
                                            state frequencies of the training targets
rest_frames         ``around_gestures``     ``anywhere``: rest rows from every frame outside MGs
segment_rule        ``authors``             ``class_runs``: a segment is a run of one class's
                                            states
==================  ======================  ==================================================

What the authors' code does where a plain reading of their method differs:
the prior is saved with ``scipy.io.savemat`` and read back with ``loadmat``,
which returns a ``(1, 86)`` row, so in ``viterbi_path_log`` ``prior[0]`` is
the whole vector of log prior counts and ``score[i, t-1] + logA[i, j] +
loglik[j, t] - logprior[i]`` subtracts the log prior count of the *source*
state ``i`` (a rough row normalization of the counts), not a constant.
``counts_source_shift`` reproduces that; ``counts_state0_shift`` is the
constant reading.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np

from smg_jax.data.recordings import Segment
from smg_jax.online.errors import OnlineError
from smg_jax.online.viterbi import decode_path

FRAMES = ("one_based", "zero_based")
ALIGNMENTS = ("authors", "consistent")
TRANSITIONS = ("counts_source_shift", "counts_state0_shift", "counts", "normalized")
EMISSION_SCORES = ("posterior", "scaled_likelihood")
REST_FRAMES = ("around_gestures", "anywhere")
SEGMENT_RULES = ("authors", "class_runs")

# The authors' transition count uses L = frames - 4 steps per MG: a leftover of a
# moving-pose feature that dropped two frames at each end.
_AUTHORS_STEP_TRIM = 4


@dataclasses.dataclass(frozen=True)
class HMMOptions:
    """Everything that defines the authors' recognizer beside the network.

    Attributes:
      num_classes: MG classes (17).
      states_per_class: HMM states per class (5).
      frames, alignment, transitions, emission_scores, rest_frames, segment_rule:
        the authors' choice or a correction (see the module docstring).
      rest_margin: frames before / after each MG whose rows become rest
        targets (5) when ``rest_frames="around_gestures"``.
      rest_samples: rest rows drawn with replacement and added to the
        training rows (20,000).
      aes: the authors' emission scaling (on).
      mu, lam: its constants (-2.5, 2.1).
      boundary_rest_frames: rows at each end of a recording whose rest
        log-likelihood is set to 0, so that decoding starts and ends in rest (5).
      min_length: segments with ``end - begin <= min_length`` rows are dropped (15).
      score_threshold: segments whose score gain per row is not above it are
        dropped (-3).
    """

    num_classes: int = 17
    states_per_class: int = 5
    frames: str = "one_based"
    alignment: str = "authors"
    transitions: str = "counts_source_shift"
    emission_scores: str = "posterior"
    rest_frames: str = "around_gestures"
    segment_rule: str = "authors"
    rest_margin: int = 5
    rest_samples: int = 20000
    aes: bool = True
    mu: float = -2.5
    lam: float = 2.1
    boundary_rest_frames: int = 5
    min_length: int = 15
    score_threshold: float = -3.0

    def __post_init__(self) -> None:
        choices = {
            "frames": FRAMES,
            "alignment": ALIGNMENTS,
            "transitions": TRANSITIONS,
            "emission_scores": EMISSION_SCORES,
            "rest_frames": REST_FRAMES,
            "segment_rule": SEGMENT_RULES,
        }
        for field, valid in choices.items():
            if getattr(self, field) not in valid:
                raise OnlineError(
                    f"HMM option {field}={getattr(self, field)!r} is not one of {list(valid)}."
                )
        for field in ("num_classes", "states_per_class"):
            if int(getattr(self, field)) < 1:
                raise OnlineError(f"HMM option {field} must be >= 1.")
        for field in ("rest_margin", "rest_samples", "boundary_rest_frames", "min_length"):
            if int(getattr(self, field)) < 0:
                raise OnlineError(f"HMM option {field} must be >= 0.")

    @property
    def num_states(self) -> int:
        return self.num_classes * self.states_per_class + 1

    @property
    def rest(self) -> int:
        """Index of the rest state (the last)."""
        return self.num_classes * self.states_per_class

    def state_class(self, states: np.ndarray) -> np.ndarray:
        """Class of each state; -1 for rest."""
        states = np.asarray(states)
        return np.where(states == self.rest, -1, states // self.states_per_class)


def options_from_mapping(mapping, **overrides) -> HMMOptions:
    """``HMMOptions`` from a config section (unknown keys are an error naming the valid ones)."""
    values = {**dict(mapping), **overrides}
    fields = {f.name for f in dataclasses.fields(HMMOptions)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise OnlineError(f"Unknown HMM option(s) {unknown}; valid: {sorted(fields)}.")
    return HMMOptions(**values)


# ---------------------------------------------------------------------------
# Which rows an MG is, and its forced alignment.
# ---------------------------------------------------------------------------


def gesture_frames(start: int, end: int, frames: str) -> tuple[int, int]:
    """The skeleton rows ``(first, last)``, inclusive, that an MG ``[start, end)`` is read as.

    ``one_based`` (the authors): frame numbers ``start .. end`` are 1-based, so
    rows ``start - 1 .. end - 1`` (one row earlier than the label file's
    ``[start, end)``; a start of 0 is clipped to row 0, where their reader
    would fail). ``zero_based``: rows ``start .. end - 1``.
    """
    if frames == "one_based":
        return max(start - 1, 0), end - 1
    return start, end - 1


def gesture_rows(start: int, end: int, frames: str) -> tuple[int, int]:
    """``(first feature row, number of rows)`` of an MG: rows over its frames, one fewer."""
    first, last = gesture_frames(start, end, frames)
    return first, max(last - first, 0)


def state_targets(num_rows: int, label: int, states_per_class: int = 5) -> np.ndarray:
    """The authors' forced alignment: ``(num_rows,)`` state of each row of an MG of class ``label``.

    Part ``s`` covers rows ``round(n s / S) .. round(n (s + 1) / S) - 1`` with
    NumPy's round-half-to-even, as their ``extract_HMMstate_label`` computes.
    """
    states = np.empty(num_rows, np.int64)
    for part in range(states_per_class):
        begin = int(np.round(num_rows * part / states_per_class))
        end = int(np.round(num_rows * (part + 1) / states_per_class))
        states[begin:end] = states_per_class * label + part
    return states


def rest_rows(num_frames: int, segments: Sequence[Segment], options: HMMOptions) -> np.ndarray:
    """Feature rows that may serve as rest targets in one recording (repeats kept, in order).

    ``around_gestures`` (the authors): for each MG the ``rest_margin`` rows
    just before and just after it, when no MG frame lies in the label file's
    ``[start - m, start)`` (resp. ``[end, end + m)``); with ``one_based`` frames
    these are the rows over 1-based frames ``start - m .. start`` and ``end ..
    end + m``, as their loader reads them. Windows that would leave the
    recording are skipped (their loader fails there). ``anywhere``: every row
    whose two frames lie outside every MG.
    """
    mask = np.zeros(num_frames, bool)
    for _, start, end in segments:
        mask[start:end] = True
    num_rows = num_frames - 1
    if options.rest_frames == "anywhere":
        return np.flatnonzero(~mask[:-1] & ~mask[1:]) if num_rows > 0 else np.zeros(0, np.int64)
    m = options.rest_margin
    pieces = []
    for _, start, end in segments:
        if options.frames == "one_based":
            before_first, before_flags = start - m - 1, (start - m, start)
            after_first, after_flags = end - 1, (end, end + m)
        else:
            before_first, before_flags = start - m - 1, (start - m - 1, start)
            after_first, after_flags = end, (end, end + m + 1)
        # The m rows span frames first .. first + m, which must exist.
        if before_first >= 0 and not mask[max(before_flags[0], 0) : before_flags[1]].any():
            pieces.append(np.arange(before_first, before_first + m))
        if after_first + m <= num_frames - 1 and not mask[after_flags[0] : after_flags[1]].any():
            pieces.append(np.arange(after_first, after_first + m))
    return np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64)


# ---------------------------------------------------------------------------
# Count statistics.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HMMCounts:
    """Count statistics: ``prior`` ``(N,)`` and ``transitions`` ``(N, N)`` (float64 counts)."""

    prior: np.ndarray
    transitions: np.ndarray

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez(handle, prior=self.prior, transitions=self.transitions)
        return path

    @classmethod
    def load(cls, path: str | pathlib.Path) -> HMMCounts:
        with np.load(path) as data:
            return cls(prior=data["prior"], transitions=data["transitions"])


def authors_step_states(num_frames_read: int, label: int, states_per_class: int) -> np.ndarray:
    """States of the authors' ``L + 1`` step positions, ``floor(S k / (L + 3)) + S c``.

    ``L = num_frames_read - 4``; step ``k`` (``0 <= k < L``) goes from position
    ``k`` to ``k + 1``. Empty when ``L < 1``.
    """
    steps = num_frames_read - _AUTHORS_STEP_TRIM
    if steps < 1:
        return np.zeros(0, np.int64)
    k = np.arange(steps + 1)
    return np.floor(states_per_class * k / (steps + 3)).astype(np.int64) + states_per_class * label


def count_statistics(
    recordings: Sequence[tuple[int, Sequence[Segment]]],
    options: HMMOptions,
    *,
    per_frame: bool = False,
) -> HMMCounts:
    """The prior and transition counts from the training recordings.

    Args:
      recordings: ``(num_frames, segments)`` per training recording.
      options: ``alignment`` and ``frames`` select the rule.
      per_frame: with ``consistent`` alignment, align an MG's ``end - start``
        frames instead of its feature rows (for decoders that score frames,
        such as the window detector).

    ``authors``: per recording the rest self-loop gains its frame count; per
    MG (of ``n`` frames read) and step ``k < L = n - 4`` between the states of
    ``authors_step_states``: the source's prior +1, the transition +1, the
    rest self-loop -1; the first two steps also add a rest -> source
    transition and +1 to the rest prior, the last step a (its target) ->
    rest transition and +1 to the rest prior.

    ``consistent``: per MG the row states of ``state_targets``: transitions
    between consecutive rows, one rest -> first and one last -> rest; the
    rest self-loop counts the consecutive frame pairs outside every MG; the
    prior of a state is the number of steps leaving it (its occupancy).
    """
    num_states, rest, per_class = options.num_states, options.rest, options.states_per_class
    prior = np.zeros(num_states)
    trans = np.zeros((num_states, num_states))
    for num_frames, segments in recordings:
        if options.alignment == "authors":
            trans[rest, rest] += num_frames
            for label, start, end in segments:
                first, last = gesture_frames(start, end, options.frames)
                states = authors_step_states(last - first + 1, label, per_class)
                if states.size < 2:
                    continue
                source, target = states[:-1], states[1:]
                np.add.at(prior, source, 1)
                np.add.at(trans, (source, target), 1)
                trans[rest, rest] -= source.size
                entries = source[:2]
                np.add.at(trans, (np.full(entries.size, rest), entries), 1)
                prior[rest] += entries.size
                trans[target[-1], rest] += 1
                prior[rest] += 1
        else:
            mask = np.zeros(num_frames, bool)
            for _, start, end in segments:
                mask[start:end] = True
            trans[rest, rest] += np.count_nonzero(~mask[:-1] & ~mask[1:])
            for label, start, end in segments:
                num_rows = end - start if per_frame else gesture_rows(start, end, options.frames)[1]
                states = state_targets(num_rows, label, per_class)
                if states.size == 0:
                    continue
                np.add.at(trans, (states[:-1], states[1:]), 1)
                trans[rest, states[0]] += 1
                trans[states[-1], rest] += 1
    if options.alignment == "consistent":
        prior = trans.sum(axis=1)
    trans[rest, rest] = max(trans[rest, rest], 0.0)
    return HMMCounts(prior=prior, transitions=trans)


def log_transitions(counts: HMMCounts, options: HMMOptions) -> tuple[np.ndarray, np.ndarray]:
    """``(log_init (N,), log_trans (N, N))`` for ``viterbi`` from the counts.

    ``counts_source_shift`` (the authors, see the module docstring): no
    initial term; ``log A[i, j] - log prior[i]``. A state never counted as a
    source (prior 0) cannot be left (-inf; their code would produce NaN).
    ``counts_state0_shift``: ``log A[i, j] - log prior[0]``. ``counts``:
    ``log A``. ``normalized``: ``log (A[i, j] / sum_j A[i, j])`` and the
    initial distribution proportional to the row sums (occupancy).
    """
    with np.errstate(divide="ignore"):
        log_counts = np.log(counts.transitions)
        log_prior = np.log(counts.prior)
        zeros = np.zeros(options.num_states)
        if options.transitions == "counts_source_shift":
            shifted = log_counts - np.where(np.isfinite(log_prior), log_prior, 0.0)[:, None]
            return zeros, np.where(np.isfinite(log_prior)[:, None], shifted, -np.inf)
        if options.transitions == "counts_state0_shift":
            return zeros, log_counts - log_prior[0]
        if options.transitions == "counts":
            return zeros, log_counts
        totals = counts.transitions.sum(axis=1)
        safe = np.where(totals > 0, totals, 1.0)
        log_trans = np.where(
            totals[:, None] > 0, np.log(counts.transitions / safe[:, None]), -np.inf
        )
        log_init = np.log(totals / max(totals.sum(), 1e-300))
    return log_init, log_trans


# ---------------------------------------------------------------------------
# Emissions.
# ---------------------------------------------------------------------------


def emission_log_likelihood(
    log_probs: np.ndarray, options: HMMOptions, log_state_prior: np.ndarray | None = None
) -> np.ndarray:
    """Per-row state log-likelihoods from the network's log outputs.

    Args:
      log_probs: ``(T, N)`` log of the emission network's outputs ``y``
        (softmax or sigmoid), computed in log space so that no output underflows to 0.
      options: ``aes``, ``mu``, ``lam``, ``boundary_rest_frames``, ``emission_scores``.
      log_state_prior: ``(N,)`` log frequency of each state among the
        training targets; needed for ``emission_scores="scaled_likelihood"``.

    Returns:
      ``(T, N)`` float64. With ``aes`` (the authors' scaling), for the gesture
      states ``log(y + mu * y * softmax_states(y^2 / 9))`` (computed as
      ``log y + log(1 + mu * softmax)``) and for rest ``lam * log y``; then,
      for ``scaled_likelihood``, minus ``log_state_prior`` (``-inf`` for a state
      of zero frequency: it cannot be emitted); then the rest
      log-likelihood of the first and last ``boundary_rest_frames`` rows is 0.
    """
    log_probs = np.asarray(log_probs, np.float64)
    if log_probs.ndim != 2 or log_probs.shape[1] != options.num_states:
        raise OnlineError(
            f"emission outputs must be (T, {options.num_states}), got {log_probs.shape}."
        )
    rest = options.rest
    out = log_probs.copy()
    if options.aes:
        gesture = np.exp(log_probs[:, :rest])
        logits = gesture**2 / 9.0
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(axis=1, keepdims=True)
        factor = 1.0 + options.mu * weights
        if np.any(factor <= 0):
            raise OnlineError(
                f"emission scaling with mu={options.mu} makes a likelihood non-positive "
                "(1 + mu * softmax <= 0); use a mu closer to 0."
            )
        out[:, :rest] += np.log(factor)
        out[:, rest] *= options.lam
    if options.emission_scores == "scaled_likelihood":
        if log_state_prior is None:
            raise OnlineError("emission_scores='scaled_likelihood' needs the state frequencies.")
        prior = np.asarray(log_state_prior, np.float64)[None]
        # A state the network never saw as a target cannot be emitted (dividing its
        # untrained posterior by a zero frequency would make it win everywhere).
        out = np.where(np.isfinite(prior), out - np.where(np.isfinite(prior), prior, 0.0), -np.inf)
    b = min(options.boundary_rest_frames, out.shape[0])
    if b:
        out[:b, rest] = 0.0
        out[-b:, rest] = 0.0
    return out


# ---------------------------------------------------------------------------
# Segments from a path.
# ---------------------------------------------------------------------------


def _authors_spans(path: np.ndarray, options: HMMOptions) -> list[tuple[int, int]]:
    """The authors' ``viterbi_colab_MES`` pairing of begins and ends (inclusive rows)."""
    rest, per_class = options.rest, options.states_per_class
    length = path.shape[0]
    if length < 3:
        return []
    step = np.where(path == rest, -1, path % per_class)
    is_start = (step >= 0) & (step < 3)  # the first three states of a class
    is_end = (step >= 0) & (step >= per_class - 3)  # the last three states of a class
    frames = np.arange(length)
    # A begin at t in [1, T-2]: rest at t-1, a start state at t.
    begins = frames[1 : length - 1][(path[:-2] == rest) & is_start[1:-1]]
    # An end at t in [0, T-2]: an end state at t, rest at t+1.
    ends = frames[: length - 1][is_end[:-1] & (path[1:] == rest)]
    spans = []
    position = 1
    while True:
        b = np.searchsorted(begins, position)
        if b == begins.size:
            break
        begin = int(begins[b])
        e = np.searchsorted(ends, begin)
        if e == ends.size:
            break  # unclosed at the end of the recording: dropped
        end = int(ends[e])
        spans.append((begin, end))
        position = end + 1
    return spans


def _class_run_spans(path: np.ndarray, options: HMMOptions) -> list[tuple[int, int]]:
    """Maximal runs of rows in the states of one class (inclusive rows)."""
    classes = options.state_class(path)
    change = np.flatnonzero(np.diff(classes) != 0) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [classes.size]]) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if classes[s] >= 0]


def extract_segments(
    path: np.ndarray, scores: np.ndarray, options: HMMOptions
) -> list[tuple[int, int, int, float]]:
    """Segments ``(label, begin, end, gain)`` from a state path; ``begin``/``end`` inclusive rows.

    ``segment_rule="authors"``: a segment begins at row ``t`` when the path is
    in rest at ``t - 1`` and in one of the first three states of a class at
    ``t`` (label: that class), and ends at the first row ``e >= t`` in one of
    the last three states of any class followed by rest; the next begin is
    searched after ``e``. A segment still open at the end is dropped.
    ``class_runs``: each maximal run of one class's states.

    Then segments with ``end - begin <= min_length`` are dropped, and so are
    those whose gain ``(scores[end, path[end]] - scores[begin, path[begin]]) /
    (end - begin)`` is not above ``score_threshold``.
    """
    path = np.asarray(path)
    scores = np.asarray(scores)
    if options.segment_rule == "authors":
        spans = _authors_spans(path, options)
    else:
        spans = _class_run_spans(path, options)
    segments = []
    for begin, end in spans:
        if end - begin <= options.min_length or end == begin:
            continue
        gain = float(scores[end, path[end]] - scores[begin, path[begin]]) / (end - begin)
        if not gain > options.score_threshold:
            continue
        label = int(path[begin]) // options.states_per_class
        segments.append((label, begin, end, gain))
    return segments


def rows_to_frames(
    segments: Sequence[tuple[int, int, int, float]], frames: str
) -> list[tuple[int, int, int]]:
    """Reported segments from row segments.

    ``one_based`` (the authors): ``(label, begin, end)`` with the inclusive
    row numbers, compared as they are with the label file's ``[start, end)``.
    ``zero_based``: rows ``begin .. end`` span frames ``begin .. end + 1``, so
    ``(label, begin, end + 2)`` in the label file's ``[start, end)`` layout.
    """
    extra = 0 if frames == "one_based" else 2
    return [(int(label), int(begin), int(end) + extra) for label, begin, end, *_ in segments]


def decode_rows(
    log_lik: np.ndarray, log_init: np.ndarray, log_trans: np.ndarray, options: HMMOptions
) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """Viterbi + segment extraction: ``(segments in the reported layout, path)``."""
    path, scores = decode_path(log_init, log_trans, log_lik)
    return rows_to_frames(extract_segments(path, scores, options), options.frames), path


def decoded_rows(num_frames: int, frames: str) -> int:
    """Feature rows decoded for a recording of ``num_frames`` frames.

    The authors read 1-based frames ``1 .. T - 1`` (the last frame is never
    read): ``T - 2`` rows. ``zero_based`` decodes all ``T - 1`` rows.
    """
    return max(num_frames - (2 if frames == "one_based" else 1), 0)
