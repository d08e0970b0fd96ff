"""Fuse saved test logits of several runs (streams) and report each and the fusion.

    python -m experiments.ensemble runs/msg3d_joint runs/msg3d_bone \\
        runs/msg3d_joint_motion runs/msg3d_bone_motion --out runs/msg3d_4s

Weights default to the published ones (2 runs 1:1, 4 runs 0.6/0.6/0.4/0.4);
``--weights 1,1,0.5`` sets others.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from smg_jax import ensemble, metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run workdirs (or test_logits.npz files)")
    parser.add_argument("--weights", default=None, help="comma-separated, one per run")
    parser.add_argument("--out", default=None, help="folder for fusion.json / fusion.md")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    try:
        result = ensemble.fuse([ensemble.load_scores(r) for r in args.runs], weights)
    except ensemble.EnsembleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    label = "fusion (" + " + ".join(f"{w:g}" for w in result["weights"]) + ")"
    table = metrics.format_report_table({**result["streams"], label: result["fusion"]})
    print(table)
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fusion.md").write_text(table + "\n")
        arrays = ("fused_logits", "labels", "names")
        metrics.write_json(
            {k: v for k, v in result.items() if k not in arrays}, out / "fusion.json"
        )
        np.savez(
            out / "test_logits.npz",
            logits=result["fused_logits"],
            labels=result["labels"],
            names=result["names"],
        )
        print(f"Written: {out / 'fusion.md'}, {out / 'fusion.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
