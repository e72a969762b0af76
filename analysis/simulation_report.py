"""The study's report from its stored replicates: coverage with its Monte Carlo error, and more.

Coverage of parameter p by method m is the fraction of the replicates where m succeeded whose
interval holds the true value; its Monte Carlo error is the Wilson score interval at z = 2 (a
binomial proportion; right at 0 or 1 too, where +-2 SE collapses). A replicate where a method
failed is counted as failed and left out of that method's averages, never averaged as NaN.
"""

from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from analysis.render import STYLE, embedded_png, html_table
from analysis.settings import INTERVAL_PROB, interval_percent
from analysis.simulation import StudyRun, flatten, parameter_labels
from analysis.simulation_store import StudyStore
from analysis.tables import DASH, Table, format_number

WILSON_Z = 2.0
"""Width of the coverage error bars in binomial standard errors (Wilson score interval)."""

METHOD_NAMES = {
    "em_wald": "EM Wald",
    "em_bootstrap": "EM bootstrap",
    "vb": "VB",
    "nuts": "NUTS",
}
METHOD_COLOURS = {
    "em_wald": "#1f77b4",
    "em_bootstrap": "#17becf",
    "vb": "#2ca02c",
    "nuts": "#d62728",
}


def wilson_interval(covered: int, total: int, z: float = WILSON_Z) -> tuple[float, float]:
    """The Wilson score interval (low, high) for `covered` successes in `total` trials."""
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    if not 0 <= covered <= total:
        raise ValueError(f"covered must be between 0 and total={total}, got {covered}")
    p = covered / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def method_summary(
    records: list[dict[str, Any]], name: str, labels: list[str], truth: list[float]
) -> dict[str, Any]:
    """One interval set over the replicates: counts, and per parameter coverage, width, error."""
    entries = [r["methods"][name] for r in records if name in r["methods"]]
    good = [e for e in entries if e["status"] == "ok"]
    failed = [e for e in entries if e["status"] != "ok"]
    summary: dict[str, Any] = {
        "succeeded": len(good),
        "failed": len(failed),
        "errors": sorted({e.get("error", "") for e in failed})[:5],
        "switched": sum(bool(e.get("switched")) for e in good),
        "seconds_mean": statistics.fmean(e["seconds"] for e in entries) if entries else None,
        "seconds_median": statistics.median(e["seconds"] for e in entries) if entries else None,
    }
    stats: dict[str, dict[str, float | None]] = {
        key: {} for key in ("coverage", "coverage_low", "coverage_high", "width", "bias", "rmse")
    }
    for i, label in enumerate(labels):
        if not good:
            for key in stats:
                stats[key][label] = None
            continue
        covered = sum(bool(e["covered"][i]) for e in good)
        low, high = wilson_interval(covered, len(good))
        errors = np.array([e["estimate"][i] - truth[i] for e in good])
        stats["coverage"][label] = covered / len(good)
        stats["coverage_low"][label] = low
        stats["coverage_high"][label] = high
        stats["width"][label] = float(np.mean([e["high"][i] - e["low"][i] for e in good]))
        stats["bias"][label] = float(np.mean(errors))
        stats["rmse"][label] = float(np.sqrt(np.mean(errors**2)))
    return summary | stats


def nuts_compile_saving(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """NUTS seconds of each worker's first replicate (compiles) and median of the later ones."""
    entries = [r["methods"].get("nuts") for r in records]
    good = [e for e in entries if e is not None and e["status"] == "ok"]
    first = [e["seconds"] for e in good if e["first_on_worker"]]
    later = [e["seconds"] for e in good if not e["first_on_worker"]]
    if not first:
        return None
    return {
        "first_seconds_median": statistics.median(first),
        "compile_seconds_median": statistics.median(
            e["compile_seconds"] for e in good if e["first_on_worker"]
        ),
        "later_seconds_median": statistics.median(later) if later else None,
        "first_count": len(first),
        "later_count": len(later),
    }


def summarise(store: StudyStore, run: StudyRun) -> dict[str, Any]:
    """The whole report's numbers (summary.json) from the store's replicates 1..R."""
    settings = store.settings
    records = store.records()
    labels = parameter_labels(settings.true_parameters)
    truth = flatten(settings.true_parameters)
    methods = {
        name: method_summary(records, name, labels, truth) for name in settings.interval_sets
    }
    return {
        "settings": settings.as_dict(),
        "run": {
            "replicates": run.replicates,
            "computed": run.computed,
            "reused": run.reused,
            "workers": run.workers,
            "wall_seconds": run.wall_seconds,
        },
        "parameters": labels,
        "truth": truth,
        "methods": methods,
        "nuts_compile": nuts_compile_saving(records) if "nuts" in settings.methods else None,
    }


def json_document(summary: dict[str, Any]) -> dict[str, Any]:
    """What `gmm-compare simulate --json` prints: run counts, coverage, width, RMSE per method."""
    methods = summary["methods"]
    return {
        **{key: summary["run"][key] for key in ("replicates", "computed", "reused", "workers")},
        **{key: {name: m[key] for name, m in methods.items()} for key in ("coverage", "width")},
        "rmse": {name: m["rmse"] for name, m in methods.items()},
    }


# ---------------------------------------------------------------------------------------------
# Figure and tables


def plot_coverage(summary: dict[str, Any], path: Path, dpi: int = 110) -> Path:
    """coverage.png: every parameter's coverage per method, Wilson bars, the nominal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = summary["parameters"]
    methods = summary["methods"]
    replicates = summary["settings"]["replicates"]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(labels) + 2.4))
    y = np.arange(len(labels))[::-1]
    spread = 2 * np.sqrt(INTERVAL_PROB * (1 - INTERVAL_PROB) / replicates)
    ax.axvspan(INTERVAL_PROB - spread, min(1.0, INTERVAL_PROB + spread), color="0.9")
    ax.axvline(INTERVAL_PROB, color="k", linestyle="--", linewidth=1)
    offsets = np.linspace(-0.25, 0.25, len(methods)) if len(methods) > 1 else [0.0]
    lowest = INTERVAL_PROB - spread
    for offset, (name, m) in zip(offsets, methods.items(), strict=True):
        points = [
            (y[i] + offset, m["coverage"][p], m["coverage_low"][p], m["coverage_high"][p])
            for i, p in enumerate(labels)
            if m["coverage"][p] is not None
        ]
        if not points:
            continue
        ys, values, lows, highs = (np.array(column) for column in zip(*points, strict=True))
        lowest = min(lowest, float(lows.min()))
        ax.errorbar(
            values,
            ys,
            xerr=[values - lows, highs - values],
            fmt="o",
            markersize=4,
            capsize=2,
            color=METHOD_COLOURS.get(name),
            label=f"{METHOD_NAMES.get(name, name)} ({m['succeeded']} replicates)",
        )
    ax.set_yticks(y, labels)
    ax.set_xlim(max(0.0, lowest - 0.03), 1.01)
    ax.set_xlabel(f"coverage of the {interval_percent()} interval (bars: Wilson, ±2 SE)")
    ax.set_title(f"Coverage over {replicates} replicates; dashed: nominal {interval_percent()}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _per_method_table(
    summary: dict[str, Any], key: str, title: str, digits: int, note: str
) -> Table:
    """A table of one statistic: a row per parameter, a column per method."""
    methods = summary["methods"]
    headers = ["parameter", "true", *[METHOD_NAMES.get(n, n) for n in methods]]
    rows = []
    for label, true in zip(summary["parameters"], summary["truth"], strict=True):
        rows.append(
            [label, format_number(true, 3)]
            + [format_number(m[key][label], digits) for m in methods.values()]
        )
    return Table(title, headers, rows, [note])


def coverage_table(summary: dict[str, Any]) -> Table:
    """Coverage per parameter and method, with its Wilson interval."""
    methods = summary["methods"]
    headers = ["parameter", *[METHOD_NAMES.get(n, n) for n in methods]]
    rows = []
    for label in summary["parameters"]:
        row = [label]
        for m in methods.values():
            value = m["coverage"][label]
            if value is None:
                row.append(DASH)
                continue
            cell = f"{value:.3f} [{m['coverage_low'][label]:.3f}, {m['coverage_high'][label]:.3f}]"
            row.append(("NO " if m["coverage_high"][label] < INTERVAL_PROB else "") + cell)
        rows.append(row)
    note = (
        f"Fraction of the replicates where the method succeeded whose {interval_percent()} "
        "interval holds the true value; in brackets the Wilson interval at ±2 binomial SE. "
        "NO marks a coverage whose whole interval lies below the nominal level."
    )
    return Table(f"Coverage of the {interval_percent()} intervals", headers, rows, [note])


def cost_table(summary: dict[str, Any]) -> Table:
    """Replicates, failures, label switches and seconds per replicate for every method."""
    headers = ["method", "succeeded", "failed", "switched", "mean s", "median s", "errors"]
    rows = []
    for name, m in summary["methods"].items():
        rows.append(
            [
                METHOD_NAMES.get(name, name),
                str(m["succeeded"]),
                str(m["failed"]),
                str(m["switched"]),
                format_number(m["seconds_mean"], 2),
                format_number(m["seconds_median"], 2),
                "; ".join(m["errors"]),
            ]
        )
    notes = [
        "Seconds per replicate in one worker process (one BLAS thread): EM's include the fit "
        "(10 k-means++ restarts) and its intervals; the bootstrap's the fit and its "
        "refits; NUTS's the starts and all chains. Switched: for EM and VB, replicates whose "
        "fitted components came in another order than the truth's and were permuted to match "
        "(k-means++ numbers components arbitrarily, so this is common and harmless); for NUTS, "
        "replicates where any draw had to be relabelled against EM's fit: label switching "
        "within the run."
    ]
    compile_saving = summary.get("nuts_compile")
    if compile_saving is not None:
        later = compile_saving["later_seconds_median"]
        notes.append(
            "NUTS on a worker's first replicate: median "
            f"{compile_saving['first_seconds_median']:.1f} s "
            f"({compile_saving['compile_seconds_median']:.1f} s of it building the model and "
            f"loading its compiled density, {compile_saving['first_count']} workers); later "
            "replicates reuse both: median "
            f"{format_number(later, 1)} s ({compile_saving['later_count']} replicates)."
        )
    return Table("Failures, switches and time per replicate", headers, rows, notes)


def tables(summary: dict[str, Any]) -> list[Table]:
    """Coverage, width, bias, RMSE and cost tables."""
    return [
        coverage_table(summary),
        _per_method_table(
            summary, "width", "Mean interval width", 3, "Mean of high - low over the replicates."
        ),
        _per_method_table(
            summary,
            "bias",
            "Bias of the estimate",
            4,
            "Mean of estimate - truth; estimates: EM's MLE (both EM columns), VB's and NUTS's "
            "posterior means.",
        ),
        _per_method_table(
            summary, "rmse", "RMSE of the estimate", 4, "Root mean square of estimate - truth."
        ),
        cost_table(summary),
    ]


def render_page(summary: dict[str, Any], figure: Path) -> str:
    """index.html: the settings line, the coverage figure, the tables (self-contained)."""
    s = summary["settings"]
    run = summary["run"]
    title = f"Do the {interval_percent()} intervals cover the truth? A simulation study"
    line = (
        f"{s['replicates']} replicates of n = {s['n_points']} points from {s['truth']}'s true "
        f"mixture (the seed program's LCG at seeds 1..{s['replicates']}); EM bootstrap "
        f"{s['bootstrap']} replicates; NUTS {s['chains']} chains x {s['draws']} draws after "
        f"{s['tune']} tuning steps; VB {s['vb_draws']} draws from q. This run: "
        f"{run['computed']} replicates computed on {run['workers']} Dask workers, "
        f"{run['reused']} reused from the store."
    )
    body = "".join(html_table(t) for t in tables(summary))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(line)}</p>"
        f'<figure><img src="{embedded_png(figure)}" alt="coverage per parameter and method">'
        "<figcaption>Coverage per parameter and method with Wilson intervals (±2 SE); dashed: "
        "the nominal level; grey: where a method with exact coverage falls 95 % of the time."
        f"</figcaption></figure>{body}</body></html>\n"
    )


def write_study_report(store: StudyStore, run: StudyRun) -> dict[str, Any]:
    """summary.json, coverage.png and index.html into the study folder; the summary."""
    import tempfile

    from analysis.files import dumps

    summary = summarise(store, run)
    with tempfile.TemporaryDirectory() as scratch:
        figure = plot_coverage(summary, Path(scratch) / "coverage.png")
        store.write_file("coverage.png", figure.read_bytes())
        store.write_file("index.html", render_page(summary, figure))
    store.write_file("summary.json", dumps(summary))
    store.write_manifest()
    return summary


def headline(summary: dict[str, Any]) -> list[str]:
    """The few lines the command prints: the run, and each method's median coverage."""
    run = summary["run"]
    lines = [
        f"{run['replicates']} replicates: {run['computed']} computed on {run['workers']} "
        f"workers, {run['reused']} reused ({run['wall_seconds']:.0f} s)"
    ]
    for name, m in summary["methods"].items():
        values = [v for v in m["coverage"].values() if v is not None]
        shown = (
            f"coverage {min(values):.2f} to {max(values):.2f} (median "
            f"{statistics.median(values):.2f})"
            if values
            else "no successful replicate"
        )
        lines.append(f"{METHOD_NAMES.get(name, name)}: {shown}, {m['failed']} failed")
    return lines
