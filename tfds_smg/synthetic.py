"""A synthetic SMG: the exact raw layout, filled with made-up Kinect v2 recordings.

SYNTHETIC DATA. Nothing written here comes from the SMG recordings; it exists so
that the builder, the pipelines and the models can be built, tested and timed
without the (access-restricted) real data. Every root it writes holds
``SMG_SYNTHETIC.json``, which the TFDS builder reads, logs and stores in the
dataset's metadata, so that numbers computed on it cannot pass for SMG results.

What it imitates (published facts):

* 40 seated participants, one recording each, Kinect v2 camera space (metres,
  ``z`` away from the sensor, ``y`` up, ``x`` towards the sensor's left, i.e. the
  participant's right), the person 2.2-2.9 m from the sensor; 30 fps.
* ``full`` scale: 821,056 frames and 3,692 labeled micro-gestures (MGs) in 17
  classes, mean clip length ~51 frames. The test subjects 36-40 get exactly the
  official test set's 155, 164, 57, 121 and 113 clips and its per-class counts
  (0:13, 1:3, 2:15, 3:2, 4:49, 5:1, 6:3, 7:191, 8:243, 9:34, 10:8, 11:30, 12:4,
  13:5, 14:0, 15:0, 16:9); the training subjects follow the same long tail
  (weights ``test count + 2``) with every class present.
* 71 relaxed and 71 stressed emotional-state instances: 31 participants with
  four instances and 9 (the shortest recordings) with two, half of each state,
  each two to five minutes long at full scale (as published). Stressed
  instances hold more MGs and a different class mix (self-touching, fidgeting, leg and foot
  movements lean stressed; leaning back, stretching, crossing the legs lean
  relaxed), and stressed breathing and sway are faster and larger, so emotion
  recognition has signal.

The motion: a seated template skeleton scaled per subject; breathing
(0.2-0.28 Hz, faster when stressed), slow postural sway about the spine base,
slow hand drift, per-joint sensor noise (larger at the extremities), and
occasional runs of all-zero frames where the sensor lost the body. Each MG class
adds one distinct small motion of the body part its index is mapped to (the real
class names are not published machine-readably, so these are motions, not
names):

===== ==============================================================
class motion (body part)
===== ==============================================================
0     head nod (head, neck)
1     head shake (head, neck)
2     shoulder shrug (shoulders and arms)
3     lean forward (upper body)
4     lean back / sit up (upper body)
5     right hand to the face (right arm)
6     left hand to the face (left arm)
7     rub hands together in the lap (both hands)
8     finger fidgeting on the lap (hands, fingertips)
9     cross the arms (both arms)
10    right hand to the neck, scratching (right arm)
11    left hand scratches the right arm (left arm)
12    right-knee bounce (right leg)
13    cross the right leg over the left (right leg)
14    left-foot tapping (left foot)
15    stretch both arms forward and up (both arms)
16    right hand on the chest (right arm)
===== ==============================================================

Joint orientations are the rotation taking +y to the bone from the parent joint
(zero for the leaf joints, as the Kinect SDK reports); columns 7-8 hold a
pinhole projection into the 512x424 depth image and 9-10 into the 1920x1080
colour image (NTU RGB+D's order; what the real files hold there is unconfirmed).
The emotional-state code is ``10 * state + k`` with ``state`` 0 relaxed /
1 stressed and ``k`` a random 1 or 2 (the meaning of the authors' second digit
is not published).

Everything is a function of ``seed``: the whole-dataset plan (frame counts,
clips, instances) comes from one generator, each subject's motion from its own,
so ``--subjects 1,36`` writes byte-identical copies of those two subjects.

Command line (console script ``smg-synth``)::

    smg-synth --out /tmp/smg_raw --scale full --seed 0
    smg-synth --out /tmp/smg_tiny --scale tiny --subjects 1-3,36 --miga
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tfds_smg import miga, raw
from tfds_smg.synthetic_motion import LOST_RUNS_PER_1000, synthesize_skeleton
from tfds_smg.synthetic_plan import (
    FPS,
    SCALES,
    TEST_SUBJECTS,
    ScaleSpec,
    SubjectPlan,
    make_plan,
    spec_for_frames,
)

GENERATOR_VERSION = "1.0.0"
MARKER_NAME = "SMG_SYNTHETIC.json"
# The authors' classification preprocessing (smg_gendata.py): at most the last 59
# rows of a segment, written into a zero array of 60 frames.
MIGA_MAX_FRAME = 60

# Millimetre-scale precision is below Kinect noise; fewer digits keep the files small.
_JOINT_FORMAT = ",".join(["%.4f"] * 7 + ["%.1f"] * 4)
_ROW_FORMAT = ",".join([_JOINT_FORMAT] * raw.NUM_JOINTS) + "\n"
_ROWS_PER_FORMAT = 256  # one %-format call per block of rows amortizes the Python overhead


def write_skeleton_csv(path: Path, skeleton: np.ndarray) -> None:
    """Writes ``(T, 25, 11)`` values as the header-less skeleton CSV."""
    flat = skeleton.reshape(skeleton.shape[0], -1).astype(np.float64)
    block = _ROW_FORMAT * _ROWS_PER_FORMAT
    width = _ROWS_PER_FORMAT * flat.shape[1]
    full = flat.shape[0] - flat.shape[0] % _ROWS_PER_FORMAT
    with path.open("w", encoding="ascii", newline="\n") as f:
        # Batches of 16 blocks bound the memory of the Python floats behind `tolist()`.
        for begin in range(0, full, 16 * _ROWS_PER_FORMAT):
            chunks = flat[begin : min(full, begin + 16 * _ROWS_PER_FORMAT)].reshape(-1, width)
            f.write("".join(block % tuple(chunk) for chunk in chunks.tolist()))
        f.write("".join(_ROW_FORMAT % tuple(row) for row in flat[full:].tolist()))


def _write_rows(path: Path, rows: np.ndarray) -> None:
    path.write_text("".join(",".join(map(str, r)) + "\n" for r in rows.tolist()), "ascii")


def write_subject(root: Path, plan: SubjectPlan, skeleton: np.ndarray) -> Path:
    """Writes one ``SampleNNNN`` folder (all four files); returns it."""
    folder = root / plan.sample_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = raw.sample_paths(folder)
    write_skeleton_csv(paths["skeleton"], skeleton)
    _write_rows(paths["finelabels"], plan.segments)
    paths["data"].write_text(f"{plan.num_frames},{FPS},{plan.max_depth}\n", "ascii")
    _write_rows(paths["emotion"], plan.emotion)
    return folder


def miga_arrays(plan: SubjectPlan, skeleton: np.ndarray) -> tuple[np.ndarray, list[str], list[int]]:
    """One subject's clips in the authors' classification format (``smg_gendata.py``).

    Returns:
      ``(K, 3, 60, 25, 1)`` float32 (world xyz of at most the last 59 rows of
      each segment, zero-padded), names ``SampleNNNN<row>``, 0-based labels.
    """
    data = np.zeros((len(plan.segments), 3, MIGA_MAX_FRAME, raw.NUM_JOINTS, 1), np.float32)
    for k, (_, start, end) in enumerate(plan.segments.tolist()):
        start = max(start, end - (MIGA_MAX_FRAME - 1))
        xyz = skeleton[start:end, :, raw.WORLD_XYZ]  # (L, 25, 3)
        data[k, :, : end - start, :, 0] = xyz.transpose(2, 0, 1)
    names = [f"{plan.sample_id}{k}" for k in range(len(plan.segments))]
    return data, names, (plan.segments[:, 0] - 1).tolist()


def _write_miga(root: Path, parts: dict[str, list[tuple[np.ndarray, list[str], list[int]]]]):
    for split, items in parts.items():
        if not items:
            continue
        data = np.concatenate([d for d, _, _ in items])
        names = [n for _, ns, _ in items for n in ns]
        labels = [label for _, _, ls in items for label in ls]
        np.save(root / miga.MIGA_DATA_NAME.format(split=split), data)
        with (root / miga.MIGA_LABEL_NAME.format(split=split)).open("wb") as f:
            pickle.dump((names, labels), f)


def generate(
    out_dir: Path | str,
    *,
    scale: str = "tiny",
    seed: int = 0,
    subjects: Sequence[int] | None = None,
    frames_per_subject: float | None = None,
    clips_per_subject: float | None = None,
    clip_frames: float | None = None,
    lost_runs_per_1000: float = LOST_RUNS_PER_1000,
    miga: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Writes a synthetic SMG raw tree (see the module docstring).

    Args:
      out_dir: root to write ``SampleNNNN/`` folders and the marker into.
      scale: ``"tiny"`` (~1,000 frames per subject), ``"small"`` (~4,000) or
        ``"full"`` (821,056 frames, 3,692 clips in all).
      seed: everything is a function of it.
      subjects: which of 1-40 to write (default all); the others are planned
        but not written, so a subset is byte-identical to the same subjects of
        a full run.
      frames_per_subject, clips_per_subject, clip_frames: override the scale's
        means (clips default to SMG's density for the chosen frame count).
      lost_runs_per_1000: lost-tracking runs per 1,000 frames.
      miga: also write the authors' preprocessed ``{train,test}_data.npy`` /
        ``{train,test}_label.pkl`` (for the ``miga`` config).
      overwrite: replace an existing non-empty ``out_dir`` that holds a tree
        written by this module (one with the marker file); others are refused.
      progress: show a progress bar.

    Returns:
      ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
      FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false.
      ValueError: unknown scale or subjects, or recordings too short for the clips.
    """
    spec = _scale_spec(scale, frames_per_subject, clips_per_subject, clip_frames)
    chosen = sorted(set(subjects)) if subjects is not None else list(range(1, raw.NUM_SUBJECTS + 1))
    if not chosen or not all(1 <= s <= raw.NUM_SUBJECTS for s in chosen):
        raise ValueError(f"subjects must be a non-empty subset of 1-40, got {chosen}")
    root = _empty_root(Path(out_dir), overwrite)
    totals = _write_subjects(
        root, make_plan(spec, seed), chosen, seed, lost_runs_per_1000, miga, progress
    )
    marker = {
        "synthetic": True,
        "note": "Synthetic data written by tfds_smg.synthetic; not the SMG recordings.",
        "generator": "tfds_smg.synthetic",
        "generator_version": GENERATOR_VERSION,
        "scale": scale,
        "seed": seed,
        "subjects": chosen,
        "frames_per_subject": spec.frames_per_subject,
        "clips_per_subject": spec.clips_per_subject,
        "clip_frames": spec.clip_frames,
        "lost_runs_per_1000": lost_runs_per_1000,
        "miga_files": miga,
        **{f"total_{k}": v for k, v in totals.items()},
    }
    (root / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", "ascii")
    return root


def _scale_spec(
    scale: str,
    frames_per_subject: float | None,
    clips_per_subject: float | None,
    clip_frames: float | None,
) -> ScaleSpec:
    """Scale ``scale`` with the given means overriding its own (clips: SMG's density)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}")
    frames = frames_per_subject or SCALES[scale].frames_per_subject
    if clips_per_subject is None:
        clips_per_subject = spec_for_frames(frames).clips_per_subject
    return ScaleSpec(
        frames_per_subject=frames,
        clips_per_subject=clips_per_subject,
        clip_frames=clip_frames or SCALES[scale].clip_frames,
    )


def _empty_root(root: Path, overwrite: bool) -> Path:
    """``root``, created empty; an earlier synthetic tree there is removed when ``overwrite``."""
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; pass overwrite=True (--overwrite)")
        if read_marker(root) is None:  # never delete a folder this module did not write
            raise FileExistsError(
                f"{root} is not empty and holds no {MARKER_NAME}; refusing to overwrite it"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _write_subjects(
    root: Path,
    plans: list[SubjectPlan],
    chosen: list[int],
    seed: int,
    lost_runs_per_1000: float,
    miga: bool,
    progress: bool,
) -> dict[str, int]:
    """Renders and writes the ``chosen`` subjects (and the miga files); returns the totals."""
    parts: dict[str, list] = {"train": [], "test": []}
    totals = {"frames": 0, "clips": 0, "zero_frames": 0, "instances": 0}
    for s in tqdm(chosen, desc="smg-synth", unit="subject", disable=not progress):
        plan = plans[s - 1]
        skeleton = synthesize_skeleton(plan, seed, lost_runs_per_1000)
        write_subject(root, plan, skeleton)
        if miga:
            parts["test" if s in TEST_SUBJECTS else "train"].append(miga_arrays(plan, skeleton))
        totals["frames"] += plan.num_frames
        totals["clips"] += len(plan.segments)
        totals["instances"] += len(plan.emotion)
        totals["zero_frames"] += int((~skeleton[..., raw.WORLD_XYZ].any(axis=(1, 2))).sum())
    if miga:
        _write_miga(root, parts)
    return totals


def read_marker(root: Path | str) -> dict | None:
    """The marker's content when ``root`` holds synthetic data, else ``None``."""
    path = Path(root) / MARKER_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _parse_subjects(text: str) -> list[int]:
    """``"1-3,36"`` -> ``[1, 2, 3, 36]``."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            out += range(int(lo), int(hi or lo) + 1)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad subject list {text!r}; e.g. 1-3,36") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``smg-synth``: writes a synthetic SMG raw tree; prints a JSON summary."""
    parser = argparse.ArgumentParser(
        prog="smg-synth",
        description="Write a SYNTHETIC SMG raw tree (SampleNNNN/ CSV files + a marker file).",
    )
    parser.add_argument("--out", required=True, type=Path, help="root folder to write")
    parser.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subjects", type=_parse_subjects, help="e.g. 1-3,36 (default: 1-40)")
    parser.add_argument("--frames-per-subject", type=float, help="mean frames per recording")
    parser.add_argument("--clips-per-subject", type=float, help="mean MG clips per recording")
    parser.add_argument("--clip-frames", type=float, help="mean clip length in frames")
    parser.add_argument(
        "--lost-runs-per-1000",
        type=float,
        default=LOST_RUNS_PER_1000,
        help="lost-tracking runs per 1,000 frames",
    )
    parser.add_argument("--miga", action="store_true", help="also write {train,test}_data.npy/.pkl")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    try:
        root = generate(
            args.out,
            scale=args.scale,
            seed=args.seed,
            subjects=args.subjects,
            frames_per_subject=args.frames_per_subject,
            clips_per_subject=args.clips_per_subject,
            clip_frames=args.clip_frames,
            lost_runs_per_1000=args.lost_runs_per_1000,
            miga=args.miga,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except (ValueError, FileExistsError) as err:
        print(f"smg-synth: error: {err}", file=sys.stderr)
        return 2
    marker = read_marker(root)
    summary = {"out": str(root), "scale": args.scale, "seed": args.seed}
    summary |= {k: v for k, v in marker.items() if k.startswith("total_")}
    summary["seconds"] = round(time.perf_counter() - began, 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
