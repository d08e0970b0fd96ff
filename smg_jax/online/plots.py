"""Timeline plots: a recording's ground-truth MGs above each recognizer's predictions."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np


def plot_timeline(
    path: str | pathlib.Path,
    *,
    title: str,
    num_frames: int,
    ground_truth: Sequence[Sequence[int]],
    predictions: Mapping[str, Sequence[Sequence[int]]],
    class_names: Sequence[str],
    fps: float | None = None,
) -> pathlib.Path:
    """Writes a PNG with one lane for the ground truth (top) and one per method below it.

    Args:
      path: the PNG to write.
      title: e.g. ``"Sample0036 (SYNTHETIC)"``.
      num_frames: the recording's length (x axis).
      ground_truth, predictions: ``(label, start, end)`` segments, 0-based labels;
        each bar spans ``[start, end]``.
      class_names: one name per class; a bar's colour is its class.
      fps: when given, a second axis label gives minutes.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    lanes = [("ground truth", ground_truth), *predictions.items()]
    cmap = plt.get_cmap("tab20")
    colors = [cmap(c % 20) for c in range(len(class_names))]
    fig, ax = plt.subplots(figsize=(14, 0.7 * len(lanes) + 1.6))
    seen: set[int] = set()
    for lane, (_, segments) in enumerate(lanes):
        y = len(lanes) - 1 - lane
        for label, start, end in (tuple(s)[:3] for s in segments):
            ax.broken_barh(
                [(start, max(end - start, 1))],
                (y - 0.35, 0.7),
                facecolors=colors[int(label)],
                edgecolors="black",
                linewidth=0.3,
            )
            seen.add(int(label))
    ax.set_yticks(np.arange(len(lanes)))
    ax.set_yticklabels([name for name, _ in reversed(lanes)])
    ax.set_xlim(0, max(num_frames, 1))
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    xlabel = "frame"
    if fps:
        xlabel += f" ({num_frames / fps / 60:.1f} min at {fps:g} fps)"
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(facecolor=colors[c], label=class_names[c]) for c in sorted(seen)]
    if handles:
        ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False
        )
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
