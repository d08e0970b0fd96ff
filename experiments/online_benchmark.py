"""Decoding speed: our JAX Viterbi against a NumPy transcription of the authors' Python loop.

    python -m experiments.online_benchmark [--frames 20000] [--authors-frames 3000] [--repeats 3]

Both decode the authors' 86-state HMM (count statistics of random MGs,
their prior shift, emission scaling of random network outputs). The
authors' loop runs ``T x N`` NumPy operations on 86-vectors; it is timed on
``--authors-frames`` rows (it is linear in T) and its frames per second
are compared with ours on ``--frames`` rows. The same inputs are also decoded
by both in float64 (``jax.enable_x64``), and by ours in float32, and the
paths compared with theirs. Prints one
JSON line per measurement and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from smg_jax.online import hmm, viterbi


def authors_viterbi(
    prior: np.ndarray, transmat: np.ndarray, observ_likelihood: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``viterbi_path_log`` of the authors' ``THDutils.py``, transcribed to run here.

    Args:
      prior: ``(1, N)`` log prior counts, the row that ``scipy.io.loadmat``
        returns for their saved prior, so that ``prior[0]`` is the whole vector.
      transmat: ``(N, N)`` log transition counts.
      observ_likelihood: ``(N, T)`` state log-likelihoods (states first, as theirs).

    Returns:
      ``(path (T,), predecessors (N, T), scores (N, T))`` as their function returns.
    """
    num_states, num_frames = observ_likelihood.shape
    path = np.zeros(num_frames, dtype=np.int32)
    scores = np.zeros((num_states, num_frames))
    predecessors = np.zeros((num_states, num_frames), dtype=np.int32)
    scores[:, 0] = observ_likelihood[:, 0]
    # The loop as they wrote it: one NumPy expression per (frame, state), Python's max.
    for t in range(1, num_frames):
        for j in range(num_states):
            candidates = scores[:, t - 1] + transmat[:, j] + observ_likelihood[j, t] - prior[0]
            scores[j, t] = max(candidates)
            predecessors[j, t] = candidates.argmax()
    path[num_frames - 1] = scores[:, num_frames - 1].argmax()
    for t in range(num_frames - 2, -1, -1):
        path[t] = predecessors[path[t + 1], t + 1]
    return path, predecessors, scores


def random_problem(frames: int, seed: int = 0, options: hmm.HMMOptions | None = None):
    """The authors' HMM on random MGs and random network outputs.

    Returns ``(counts, log_lik (T, N))`` with every state visited, so that
    the authors' loop sees no ``log 0`` prior.
    """
    options = options or hmm.HMMOptions()
    rng = np.random.default_rng(seed)
    recordings = []
    for _ in range(35):
        length, segments, position = 20000, [], 30
        while position < length - 200:
            size = int(rng.integers(25, 120))
            segments.append((int(rng.integers(0, options.num_classes)), position, position + size))
            position += size + int(rng.integers(20, 400))
        recordings.append((length, segments))
    counts = hmm.count_statistics(recordings, options)
    # Network outputs: mostly rest, with bursts on one class's states.
    logits = rng.normal(0.0, 1.0, (frames, options.num_states))
    logits[:, options.rest] += 3.0
    for start in range(0, frames - 60, 300):
        c = int(rng.integers(0, options.num_classes))
        logits[start : start + 50, c * 5 : c * 5 + 5] += 5.0
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return counts, hmm.emission_log_likelihood(log_probs, options)


def measure(frames: int, authors_frames: int, repeats: int, seed: int = 0) -> dict:
    """Frames per second of both decoders and the agreement of their float64 paths."""
    options = hmm.HMMOptions()
    counts, log_lik = random_problem(frames, seed, options)
    log_init, log_trans = hmm.log_transitions(counts, options)
    viterbi.warm_up([frames], options.num_states)
    ours = []
    for _ in range(repeats):
        started = time.perf_counter()
        viterbi.decode_path(log_init, log_trans, log_lik)
        ours.append(time.perf_counter() - started)
    with np.errstate(divide="ignore"):
        prior_row = np.log(counts.prior)[None]  # what loadmat hands their decoder
        log_counts = np.log(counts.transitions)
    theirs_input = log_lik[:authors_frames].T.copy()
    started = time.perf_counter()
    their_path, _, _ = authors_viterbi(prior_row, log_counts, theirs_input)
    theirs = time.perf_counter() - started
    with jax.enable_x64(True):
        import jax.numpy as jnp

        path64, _ = viterbi.viterbi(
            jnp.asarray(log_init), jnp.asarray(log_trans), jnp.asarray(log_lik[:authors_frames])
        )
    agree = float(np.mean(np.asarray(path64) == their_path))
    path32, _ = viterbi.decode_path(log_init, log_trans, log_lik[:authors_frames])
    agree32 = float(np.mean(path32 == their_path))
    ours_fps = frames / min(ours)
    theirs_fps = authors_frames / theirs
    return {
        "states": options.num_states,
        "frames": frames,
        "ours_seconds": min(ours),
        "ours_frames_per_second": ours_fps,
        "authors_frames": authors_frames,
        "authors_seconds": theirs,
        "authors_frames_per_second": theirs_fps,
        "speedup": ours_fps / theirs_fps,
        "float64_path_agreement": agree,
        "float32_path_agreement": agree32,
        "device": str(jax.devices()[0]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000, help="rows decoded by ours")
    parser.add_argument("--authors-frames", type=int, default=3000, help="rows for their loop")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = measure(args.frames, min(args.authors_frames, args.frames), args.repeats, args.seed)
    print(json.dumps(result))
    print(
        "\n| decoder | frames | seconds | frames/s |\n| --- | ---: | ---: | ---: |\n"
        f"| ours (jax.lax.scan, {result['device']}) | {result['frames']} | "
        f"{result['ours_seconds']:.3f} | {result['ours_frames_per_second']:.0f} |\n"
        f"| authors' loop (NumPy transcription) | {result['authors_frames']} | "
        f"{result['authors_seconds']:.2f} | {result['authors_frames_per_second']:.0f} |\n\n"
        f"Speed-up {result['speedup']:.0f}x; paths agree with theirs on "
        f"{100 * result['float64_path_agreement']:.2f} % of frames in float64, "
        f"{100 * result['float32_path_agreement']:.2f} % in float32."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
