"""Viterbi decoding of an HMM state path, as a ``jax.lax.scan``, padded to a few compiled sizes."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def viterbi(
    log_init: jax.Array,
    log_trans: jax.Array,
    log_lik: jax.Array,
    length: jax.Array | int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The most likely state path, by ``jax.lax.scan`` over rows, vectorized over states.

    ``score[0] = log_init + log_lik[0]``; ``score[t, j] = max_i (score[t-1, i] +
    log_trans[i, j]) + log_lik[t, j]``. The forward scan keeps only the
    scores (a max over an ``(N, N)`` block per row); the backward scan
    recovers each predecessor as ``argmax_i (score[t-1, i] + log_trans[i, j])``
    of one column, the same comparison the forward step made. This avoids
    an ``(N, N)`` argmax per row, the slow part on CPU. Ties go
    to the lowest state index, as NumPy's ``argmax`` in the authors' loop.

    Args:
      log_init: ``(N,)``; zeros for the authors' decoder (no prior at frame 0).
      log_trans: ``(N, N)``, ``[source, target]``.
      log_lik: ``(T, N)``, ``T >= 1``.
      length: rows that are real (``1 <= length <= T``; default ``T``): rows
        from ``length`` on are padding that leaves the scores and the path
        unchanged, so that recordings padded to a few bucket sizes share one
        compiled decoder.

    Returns:
      ``(path (T,) int32, scores (T, N))`` in the dtype of ``log_lik``; rows
      from ``length`` on repeat the last real row.
    """
    total = log_lik.shape[0]
    length = total if length is None else length
    times = jnp.arange(total)

    def forward(score, inputs):
        row_lik, t = inputs
        new = jnp.max(score[:, None] + log_trans, axis=0) + row_lik
        score = jnp.where(t < length, new, score)
        return score, score

    first = log_init + log_lik[0]
    last_score, rest_scores = jax.lax.scan(forward, first, (log_lik[1:], times[1:]))
    scores = jnp.concatenate([first[None], rest_scores], axis=0)
    last = jnp.argmax(last_score).astype(jnp.int32)

    def backward(state, inputs):
        previous_scores, t = inputs  # the scores of row t; `state` is the state at row t + 1
        best = jnp.argmax(previous_scores + log_trans[:, state]).astype(jnp.int32)
        state = jnp.where(t + 1 < length, best, state)
        return state, state

    _, earlier = jax.lax.scan(backward, last, (scores[:-1], times[:-1]), reverse=True)
    return jnp.concatenate([earlier, last[None]]), scores


def bucket(rows: int) -> int:
    """Padded length for ``rows``: a multiple of ``2**(floor(log2 rows) - 2)`` (<= 25 % padding).

    Recordings of similar length share one compiled decoder; about four
    sizes per doubling of the length are ever compiled.
    """
    if rows <= 64:
        return 64
    step = 2 ** (int(rows).bit_length() - 3)
    return -(-rows // step) * step


def decode_path(
    log_init: np.ndarray, log_trans: np.ndarray, log_lik: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``viterbi`` on NumPy inputs (float32), padded to ``bucket(T)`` rows.

    Returns NumPy ``(path (T,), scores (T, N))``.
    """
    total, num_states = log_lik.shape
    if total == 0:
        return np.zeros(0, np.int32), np.zeros((0, num_states), np.float32)
    padded = bucket(total)
    lik = np.zeros((padded, num_states), np.float32)
    lik[:total] = log_lik
    path, scores = viterbi(
        jnp.asarray(log_init, jnp.float32),
        jnp.asarray(log_trans, jnp.float32),
        jnp.asarray(lik),
        jnp.asarray(total, jnp.int32),
    )
    return np.asarray(path)[:total], np.asarray(scores)[:total]


def warm_up(lengths: Sequence[int], num_states: int) -> None:
    """Compiles ``decode_path`` for the buckets of ``lengths`` rows (timings then exclude it)."""
    for rows in sorted({bucket(int(n)) for n in lengths if n > 0}):
        decode_path(
            np.zeros(num_states), np.zeros((num_states, num_states)), np.zeros((rows, num_states))
        )
