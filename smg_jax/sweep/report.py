"""A sweep's run records summarised: per-variant statistics over seeds, and the table
(Markdown, CSV, JSON) and bar plot a reviewer reads. Reads nothing but the records
(``runs.SweepRuns``) the runs wrote."""

from __future__ import annotations

import csv
import pathlib
from typing import Any

import numpy as np

from smg_jax import metrics
from smg_jax.sweep.runs import SweepRuns

METRICS = ("top1", "top5", "mean_class_accuracy")
METRIC_LABELS = {"top1": "top-1", "top5": "top-5", "mean_class_accuracy": "mean class acc."}


# ---------------------------------------------------------------------------
# Summaries.
# ---------------------------------------------------------------------------


def _stats(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (n - 1; None for one value)."""
    if not values:
        return {"mean": None, "std": None, "values": []}
    array = np.asarray(values, np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else None
    return {"mean": float(array.mean()), "std": std, "values": [float(v) for v in values]}


def _row(name, folder, kind, overrides, seeds, runs) -> dict[str, Any]:
    """One table row from ``{seed: run record}`` (see ``summarize_runs`` for its keys)."""
    finished = {s: r["results"] for s, r in runs.items() if r["status"] == "finished"}
    row: dict[str, Any] = {
        "name": name,
        "folder": folder,
        "kind": kind,
        "overrides": overrides,
        "seeds": list(seeds),
        "finished": sorted(finished),
        "failed": {str(s): r["error"] for s, r in runs.items() if r["status"] == "failed"},
        "missing": sorted(s for s, r in runs.items() if r["status"] == "missing"),
    }
    for key in METRICS:
        row[key] = _stats([res["final"][key] for res in finished.values()])
    params = [res["num_params"] for res in finished.values() if res.get("num_params")]
    row["num_params"] = int(params[0]) if params else None
    speeds = [
        res["train_clips_per_second"]
        for res in finished.values()
        if res.get("train_clips_per_second") is not None
    ]
    row["train_clips_per_second"] = _stats(speeds)
    row["vmapped_seeds"] = max(
        (res.get("vmapped_seeds", 1) for res in finished.values()), default=1
    )
    data = sorted({res.get("data", "?") for res in finished.values()})
    row["data"] = data
    row["synthetic"] = any(res.get("synthetic", False) for res in finished.values())
    return row


def summarize_runs(records: SweepRuns) -> dict[str, Any]:
    """Aggregates a sweep's run records per variant (and fusion) over seeds.

    Each row: ``mean``/``std``/``values`` of ``top1``, ``top5``,
    ``mean_class_accuracy`` (fractions) and ``train_clips_per_second``;
    ``num_params``; ``delta`` (difference of means to the baseline, in
    fractions); the seeds ``finished``, ``failed`` (seed -> error line) and
    ``missing``.
    """
    rows = [
        _row(r.name, r.folder, r.kind, r.overrides, records.seeds, r.runs) for r in records.rows
    ]
    base = next(r for r in rows if r["name"] == records.baseline)
    for row in rows:
        row["baseline"] = row is base
        row["delta"] = {
            key: row[key]["mean"] - base[key]["mean"]
            if row[key]["mean"] is not None and base[key]["mean"] is not None
            else None
            for key in METRICS
        }
    data = sorted({d for row in rows for d in row["data"]})
    return {
        "title": records.title,
        "description": records.description,
        "workdir": str(records.workdir),
        "seeds": records.seeds,
        "baseline": records.baseline,
        "named_variants": records.named_variants,
        "data": data,
        "synthetic": any(row["synthetic"] for row in rows),
        "rows": rows,
    }


# ---------------------------------------------------------------------------
# Table and plot.
# ---------------------------------------------------------------------------


def _pct(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "—"
    text = f"{100 * stats['mean']:.2f}"
    return text + (f" ± {100 * stats['std']:.2f}" if stats["std"] is not None else "")


def _delta(value: float | None, is_baseline: bool) -> str:
    return "—" if value is None or is_baseline else f"{100 * value:+.2f}"


def _speed(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "—"
    text = f"{stats['mean']:,.0f}"
    return text + (f" ± {stats['std']:,.0f}" if stats["std"] is not None else "")


def _status(row: dict[str, Any]) -> str:
    done = f"{len(row['finished'])}/{len(row['seeds'])}"
    if row["failed"]:
        done += f", {len(row['failed'])} failed"
    if row["missing"]:
        done += f", {len(row['missing'])} not run"
    return done


def data_label(summary: dict[str, Any]) -> str:
    """``SYNTHETIC SMG (tiny scale)``, ``SMG``, or the list when runs differ."""
    return " / ".join(summary["data"]) or "no finished run"


def format_markdown(summary: dict[str, Any]) -> str:
    """The ablation table: one row per variant, mean ± std over seeds, Δ to the baseline."""
    rows = summary["rows"]
    # Study variants have names of their own: say what each changes. Grid names say it already.
    show_overrides = summary["named_variants"]
    header = ["variant"] + (["overrides"] if show_overrides else []) + ["seeds"]
    for key in METRICS:
        header += [f"{METRIC_LABELS[key]} (%)", "Δ"]
    header += ["params", "train clips/s"]
    lines = [
        f"### Ablation: {summary['title']} — {data_label(summary)}",
        "",
    ]
    if summary["synthetic"]:
        lines += ["**SYNTHETIC data: these numbers are not SMG results.**", ""]
    if summary["description"]:
        lines += [summary["description"], ""]
    left = 2 if show_overrides else 1
    align = ["---"] * left + ["---:"] * (len(header) - left)
    lines += ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in rows:
        name = f"**{row['name']}** (baseline)" if row["baseline"] else row["name"]
        cells = [name] + ([row["overrides"]] if show_overrides else []) + [_status(row)]
        for key in METRICS:
            cells += [_pct(row[key]), _delta(row["delta"][key], row["baseline"])]
        params = f"{row['num_params']:,}" if row["num_params"] else "—"
        cells += [params, _speed(row["train_clips_per_second"])]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    seeds = summary["seeds"]
    lines += [
        "",
        f"Mean ± sample standard deviation (n - 1) over seeds {seeds} of each run's final-epoch "
        "model on the cross-subject test split; Δ: difference of the means to the baseline "
        f"(**{summary['baseline']}**) in percentage points. Train clips/s: training clips per "
        "second of train-step time (compilation, evaluation and checkpoints excluded), per run.",
    ]
    vmapped = [r["name"] for r in rows if r["vmapped_seeds"] > 1]
    if vmapped:
        runs = [r for r in rows if r["kind"] == "run"]
        which = "all variants" if len(vmapped) == len(runs) else ", ".join(vmapped)
        lines[-1] += (
            f" Seeds trained together in one vmapped program ({which}) each count the "
            "program's clips/s divided by its seeds."
        )
    failures = [
        f"- {r['name']} seed {seed}: {error} ({r['folder']}/seed_{seed}/error.txt)"
        for r in rows
        for seed, error in r["failed"].items()
    ]
    if failures:
        lines += ["", "Failed runs:", "", *failures]
    return "\n".join(lines)


CSV_COLUMNS = (
    "variant",
    "kind",
    "baseline",
    "overrides",
    "seeds",
    "seeds_finished",
    "seeds_failed",
    *(f"{k}_{s}_pct" for k in METRICS for s in ("mean", "std", "delta")),
    "num_params",
    "train_clips_per_second_mean",
    "train_clips_per_second_std",
    "vmapped_seeds",
    "data",
    "synthetic",
    "errors",
)


def _csv_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for row in summary["rows"]:
        record: dict[str, Any] = {
            "variant": row["name"],
            "kind": row["kind"],
            "baseline": row["baseline"],
            "overrides": row["overrides"],
            "seeds": " ".join(str(s) for s in row["seeds"]),
            "seeds_finished": len(row["finished"]),
            "seeds_failed": len(row["failed"]),
            "num_params": row["num_params"],
            "train_clips_per_second_mean": row["train_clips_per_second"]["mean"],
            "train_clips_per_second_std": row["train_clips_per_second"]["std"],
            "vmapped_seeds": row["vmapped_seeds"],
            "data": " / ".join(row["data"]),
            "synthetic": row["synthetic"],
            "errors": " | ".join(f"seed {s}: {e}" for s, e in row["failed"].items()),
        }
        for key in METRICS:
            for stat in ("mean", "std"):
                value = row[key][stat]
                record[f"{key}_{stat}_pct"] = None if value is None else 100 * value
            delta = row["delta"][key]
            record[f"{key}_delta_pct"] = None if delta is None else 100 * delta
        out.append(record)
    return out


def write_csv(summary: dict[str, Any], path: str | pathlib.Path) -> pathlib.Path:
    """The table as CSV: percentages, empty cells for missing values."""
    path = pathlib.Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for record in _csv_rows(summary):
            writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return path


def plot_summary(summary: dict[str, Any], path: str | pathlib.Path) -> pathlib.Path:
    """Grouped bars (top-1, top-5, mean class accuracy) per variant, error bars = std."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    width = 0.8 / len(METRICS)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.8))
    positions = np.arange(len(rows))
    for index, key in enumerate(METRICS):
        # NaN draws no bar: a variant without a finished run shows an empty slot, not a zero.
        means = [100 * r[key]["mean"] if r[key]["mean"] is not None else np.nan for r in rows]
        errors = [100 * r[key]["std"] if r[key]["std"] is not None else 0.0 for r in rows]
        ax.bar(
            positions + (index - (len(METRICS) - 1) / 2) * width,
            means,
            width,
            yerr=errors,
            capsize=3,
            label=METRIC_LABELS[key],
        )
    labels = []
    for row in rows:
        label = row["name"] + (" *" if row["baseline"] else "")
        if not row["finished"]:
            label += "\n(no finished run)"
        labels.append(label)
    rotate = len(rows) > 3  # long names side by side overlap
    ax.set_xticks(
        positions, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_ylabel("accuracy (%)")
    # A band above 100 % holds the legend, so that it never hides a bar.
    ax.set_ylim(0, 115)
    ax.set_yticks(range(0, 101, 20))
    ax.legend(loc="upper center", ncols=len(METRICS), fontsize=8, frameon=False)
    data = data_label(summary) + (": not SMG results" if summary["synthetic"] else "")
    seeds = len(summary["seeds"])
    ax.set_title(
        f"{summary['title']}\n{data}\nmean ± std over {seeds} seed(s); * baseline", fontsize=9
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(summary: dict[str, Any], workdir: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Writes ``ablation.md``, ``.csv``, ``.json`` and ``.png`` into ``workdir``."""
    workdir = pathlib.Path(workdir)
    paths = {
        "markdown": workdir / "ablation.md",
        "csv": workdir / "ablation.csv",
        "json": workdir / "ablation.json",
        "plot": workdir / "ablation.png",
    }
    paths["markdown"].write_text(format_markdown(summary) + "\n")
    write_csv(summary, paths["csv"])
    metrics.write_json(summary, paths["json"])
    plot_summary(summary, paths["plot"])
    return paths
