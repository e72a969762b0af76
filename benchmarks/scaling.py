"""Scaling: EM and NUTS cost as n grows (points from the seed-7907 mixture), table and plot.

EM: seconds per iteration, ours and scikit-learn's, from the seed program's start (fixed
iterations, as in `em_speed`). NUTS: our default path (`models.sample_posterior`) with fewer
draws than the efficiency table, in a subprocess per size: sampling seconds, seconds per
gradient evaluation and min bulk ESS per second.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import em_speed, nuts

SIZES = (500, 5_000, 50_000)


def em_row(n_points: int, rounds: int) -> dict[str, Any]:
    """EM seconds per iteration at one size, ours and sklearn's."""
    case = em_speed.EMCase(n_points, 2, 3, iterations=10, rounds=rounds)
    row = em_speed.run_case(case, methods=("ours", "sklearn"))
    return {
        "n_points": n_points,
        "em_seconds_per_iteration": row["seconds_per_iteration"],
        "em_ratio_to_sklearn": row["ratio_to_sklearn"]["ours"],
    }


def nuts_row(n_points: int, settings: nuts.NutsSettings) -> dict[str, Any]:
    """Our default NUTS path at one size (subprocess), with the cost of one gradient."""
    sized = nuts.NutsSettings(
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        seed=settings.seed,
        n_points=n_points,
    )
    return nuts.run_in_subprocess("ours", "default", sized)


def run(
    sizes: tuple[int, ...],
    settings: nuts.NutsSettings,
    rounds: int = 3,
    with_nuts: bool = True,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One row per size: EM costs and, if asked, NUTS costs."""
    rows = []
    for n_points in sizes:
        progress(f"scaling: n={n_points:,}")
        row = em_row(n_points, rounds)
        if with_nuts:
            row["nuts"] = nuts_row(n_points, settings)
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Log-log plot of seconds against n: EM per iteration (ours, sklearn), NUTS sampling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["n_points"] for row in rows]
    figure, axis = plt.subplots(figsize=(6.4, 4.4))
    for method in ("ours", "sklearn"):
        seconds = [row["em_seconds_per_iteration"][method] for row in rows]
        axis.plot(sizes, seconds, "o-", label=f"EM, {method}: s per iteration")
    with_nuts = [row for row in rows if "sampling_seconds" in row.get("nuts", {})]
    if with_nuts:
        gradient = [row["nuts"].get("gradient_seconds") for row in with_nuts]
        axis.plot(
            [row["n_points"] for row in with_nuts],
            gradient,
            "s--",
            label="NUTS: s per gradient evaluation (one chain)",
        )
        per_draw = [
            row["nuts"]["sampling_seconds"]
            / (row["nuts"]["settings"]["draws"] + row["nuts"]["settings"]["tune"])
            for row in with_nuts
        ]
        axis.plot(
            [row["n_points"] for row in with_nuts],
            per_draw,
            "s-",
            label="NUTS: s per iteration (2 chains in parallel)",
        )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("points n (seed-7907 mixture, D=2, K=3)")
    axis.set_ylabel("seconds")
    axis.set_title("Cost as n grows")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    temporary = path.with_suffix(".tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.replace(path)
    return path
