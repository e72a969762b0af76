"""The report's figures, drawn from the saved results (data, EM runs, the posterior DataTree).

Every function draws one titled, labelled PNG and returns its path. Points of more than two
dimensions are shown in their first two coordinates; a covariance ellipse there is the
component's marginal in those coordinates, so it is exact, not an approximation. For D > 2 the
pairs plot (`analysis.pairs`) shows every pair. Axes carry the data's names (x1, x2, ... without).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator

from analysis.datasets import Dataset
from analysis.em_fits import EMFits
from analysis.forked import beside, can_fork
from analysis.pipeline import Results
from analysis.render import FigureFile
from analysis.settings import UNCERTAIN_BELOW, interval_percent
from analysis.tables import shown_name, trusted_ratios
from analysis.vb_fits import VBFit

DPI = 110
SIGMA = "\N{GREEK SMALL LETTER SIGMA}"
ELLIPSE_DRAWS = 40
PPC_DRAWS = 50
WALD_OFFSET = 0.28
"""How far below a posterior interval (in rows) the forest plot draws EM's Wald interval."""
TRACE_VARIABLES = ("weights", "means")
MAX_ROWS = 80
"""Most parameters the forest and VB SD / NUTS SD plots list, one row each (26 inches at 0.32
in a row: as long as is readable, far from the 2^16 pixels a PNG may have); beyond it the most
telling ones are drawn, named on the axis, and the caption says which."""
MAX_RANK_PANELS = 24
"""Most rank plots in one figure (ArviZ refuses more than 40 panels); beyond it the scalars with
the largest R-hat, those where the chains disagree most, are drawn and named."""
PANEL_COLUMNS = 4
"""Panels per row in ArviZ's wrapped figures (its default `col_wrap`)."""
COLOURS = plt.get_cmap("tab10").colors
FIGURES = (
    "data",
    "em_clusters",
    "posterior_clusters",
    "misclassified",
    "em_convergence",
    "elbo",
    "forest",
    "vb_sd_ratio",
    "trace",
    "rank",
    "ppc",
)
PAIRS = "pairs"
"""The pairs plot (`analysis.pairs`), drawn after the posterior clusters when D > 2."""
NUTS_FIGURES = frozenset({"posterior_clusters", "misclassified", "forest", "trace", "rank", "ppc"})
VB_FIGURES = frozenset({"elbo"})
BOTH_FIGURES = frozenset({"vb_sd_ratio"})
"""Figures drawn only when NUTS, VB, or both (with NUTS under VB's priors) were run."""
CHILD_FIGURES = ("rank", "data", "em_clusters", "misclassified", "em_convergence", "elbo")
"""Figures a forked process draws while this one draws the rest: about half the drawing time
each, the rank plot's chain test being the slowest."""
CAPTIONS = {
    "data": "The data, coloured by the component each point was drawn from.",
    "em_clusters": f"EM's clustering with each component's 1{SIGMA} (solid) and 2{SIGMA} "
    "(dashed) ellipse.",
    "posterior_clusters": "Posterior clustering (most probable component of each point) with "
    "ellipses from a spread of posterior draws: their scatter is the "
    "uncertainty EM's single estimate does not show.",
    PAIRS: f"Pairs plot: each pair of coordinates, points coloured by EM's component, with "
    f"EM's 1{SIGMA} (solid) and 2{SIGMA} (dashed) ellipses in black and posterior draws' "
    f"1{SIGMA} ellipses in colour, all exact two-dimensional marginals; on the diagonal each "
    "coordinate's histogram with EM's weighted component densities (colours) and their sum.",
    "misclassified": "Points whose EM or posterior label differs from the truth, and points "
    f"whose posterior membership is uncertain (top probability < {UNCERTAIN_BELOW}).",
    "em_convergence": "EM's total log-likelihood by iteration (top) and its distance to the "
    "final value on a log scale (bottom).",
    "elbo": "VB's evidence lower bound (ELBO) after each CAVI iteration (top), never "
    "decreasing, and its increase per iteration on a log scale (bottom): VB stops once it is "
    "below the tolerance.",
    "vb_sd_ratio": "VB SD / NUTS SD per parameter, both under VB's priors (the same model), "
    "with ±2 Monte Carlo errors: below 1, VB's mean-field q is narrower than the posterior; "
    "this measures VB's approximation error only, not the priors' influence.",
    "forest": f"Posterior means and {interval_percent()} intervals of every parameter (blue), "
    f"EM's {interval_percent()} Wald interval under each (thin red line), EM's estimate (x) "
    "and the true value (◇) where known.",
    "trace": "Trace plot: marginal posterior of each weight and mean coordinate per chain "
    "(left) and the draws in order (right).",
    "rank": "Rank plots: the difference between each chain's rank ECDF and a uniform one; "
    "curves near zero mean the chains agree, a small p flags a chain that differs.",
    "ppc": "Posterior predictive check: the density of each coordinate, observed (black) "
    "against data sets replicated from the posterior (blue).",
}
"""The caption printed under each figure in the report."""


# ---------------------------------------------------------------------------------------------
# Helpers


def _colour(k: int) -> tuple[float, float, float]:
    """The colour of component k (cycled past ten components)."""
    return COLOURS[k % len(COLOURS)]


def _save(fig: Figure, path: Path) -> Path:
    """Write the figure as PNG and close it."""
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _plane(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two plotted coordinates of each point; 1-D data get a seeded jitter as the second."""
    if X.shape[1] >= 2:
        return X[:, 0], X[:, 1]
    jitter = np.random.default_rng(0).uniform(-1.0, 1.0, X.shape[0])
    return X[:, 0], jitter


def axis_names(dataset: Dataset) -> list[str]:
    """The coordinates' names on figure axes (D,): the data's names, or x1, ..., xD."""
    return list(dataset.names or [f"x{j + 1}" for j in range(dataset.n_features)])


def _axis_labels(ax: Axes, dataset: Dataset) -> None:
    """Name the plotted coordinates, saying so when D > 2 or D = 1."""
    names = axis_names(dataset)
    ax.set_xlabel(names[0])
    if dataset.n_features == 1:
        ax.set_ylabel("random jitter (data are 1-D)")
    else:
        ax.set_ylabel(names[1])
    if dataset.n_features > 2:
        ax.set_xlabel(f"{names[0]} (first two of {dataset.n_features} coordinates shown)")


def most_telling(
    rows: list[dict[str, Any]], limit: int, score: Callable[[dict[str, Any]], float]
) -> list[dict[str, Any]]:
    """The `limit` rows with the largest score, kept in their table order; all when they fit.

    Ties go to the earlier row, so the choice is the same on every run.
    """
    if len(rows) <= limit:
        return rows
    ranked = sorted(range(len(rows)), key=lambda i: -score(rows[i]))  # stable: ties in order
    kept = set(ranked[:limit])
    return [row for i, row in enumerate(rows) if i in kept]


def subset_note(shown: int, total: int, what: str, chosen: str) -> str:
    """The caption's sentence for a figure that draws `shown` of `total` `what`, and which."""
    if shown == total:
        return ""
    return f" Only {shown} of the {total} {what} are drawn: {chosen}."


def ellipse(
    ax: Axes, mean: np.ndarray, covariance: np.ndarray, n_sigma: float, colour: Any, **style: Any
) -> None:
    """Draw the n_sigma contour of N(mean, covariance) in the first two coordinates.

    For 1-D data, two vertical lines at mean +- n_sigma sd stand in for the ellipse.
    """
    if mean.shape[0] == 1:
        sd = float(np.sqrt(covariance[0, 0]))
        for x in (mean[0] - n_sigma * sd, mean[0] + n_sigma * sd):
            ax.axvline(x, color=colour, **style)
        return
    values, vectors = np.linalg.eigh(covariance[:2, :2])
    angle = float(np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1])))
    width, height = 2.0 * n_sigma * np.sqrt(np.maximum(values[::-1], 0.0))
    ax.add_patch(
        Ellipse(tuple(mean[:2]), width, height, angle=angle, fill=False, edgecolor=colour, **style)
    )


def _scatter_by(ax: Axes, dataset: Dataset, labels: np.ndarray, prefix: str) -> None:
    """Points coloured by their component label."""
    x, y = _plane(dataset.X)
    for k in np.unique(labels):
        chosen = labels == k
        ax.scatter(
            x[chosen],
            y[chosen],
            s=9,
            color=_colour(int(k)),
            alpha=0.7,
            label=f"{prefix} {k} ({int(chosen.sum())})",
        )


def _new(title: str, size: tuple[float, float] = (7.0, 6.0)) -> tuple[Figure, Axes]:
    """A figure with one axes and a title."""
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    ax.set_title(title)
    return fig, ax


# ---------------------------------------------------------------------------------------------
# Clusterings


def plot_data(dataset: Dataset, out: Path) -> Path:
    """The data, coloured by true component when the labels are known."""
    fig, ax = _new(f"{dataset.name}: the data")
    if dataset.labels is None:
        x, y = _plane(dataset.X)
        ax.scatter(x, y, s=9, color="0.3", alpha=0.7, label=f"{dataset.n_points} points")
        ax.set_title(f"{dataset.name}: the data (true components unknown)")
    else:
        _scatter_by(ax, dataset, dataset.labels, "true component")
        ax.set_title(f"{dataset.name}: the data, coloured by true component")
    _axis_labels(ax, dataset)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out / "data.png")


def plot_em_clusters(dataset: Dataset, fits: EMFits, out: Path) -> Path:
    """EM's clustering (reference run) with its 1 sigma and 2 sigma covariance ellipses."""
    run = fits.reference_run
    fig, ax = _new(f"EM clustering ({run.name} run) with 1{SIGMA} and 2{SIGMA} ellipses")
    _scatter_by(ax, dataset, run.labels, "EM component")
    p = run.parameters
    for k in range(p.n_components):
        for n_sigma, style in ((1.0, "-"), (2.0, "--")):
            ellipse(ax, p.means[k], p.covariances[k], n_sigma, "black", linestyle=style, lw=1.4)
        ax.plot(*_centre(p.means[k]), marker="X", color="black", ms=9)
    ax.plot([], [], "k-", label=f"1{SIGMA} ellipse")
    ax.plot([], [], "k--", label=f"2{SIGMA} ellipse")
    _axis_labels(ax, dataset)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out / "em_clusters.png")


def _centre(mean: np.ndarray) -> tuple[float, float]:
    """Where a component's centre is drawn in the plotted plane."""
    return float(mean[0]), float(mean[1]) if mean.shape[0] > 1 else 0.0


def posterior_draws(idata: Any, name: str) -> np.ndarray:
    """A posterior variable's draws, chain and draw merged into the first axis: (S, ...)."""
    from arviz_base import extract

    return np.asarray(extract(idata, var_names=name).transpose("sample", ...))


def plot_posterior_clusters(
    dataset: Dataset, idata: Any, membership: np.ndarray, out: Path
) -> Path:
    """Posterior clustering (membership (n, K)), with ellipses of a spread of posterior draws."""
    means, covariances = (posterior_draws(idata, name) for name in ("means", "covariances"))
    fig, ax = _new(f"Posterior clustering with ellipses of {ELLIPSE_DRAWS} posterior draws")
    _scatter_by(ax, dataset, membership.argmax(axis=1), "posterior component")
    chosen = np.linspace(0, means.shape[0] - 1, ELLIPSE_DRAWS).astype(int)
    for s in chosen:
        for k in range(means.shape[1]):
            mean, cov = means[s, k], covariances[s, k]
            ellipse(ax, mean, cov, 1.0, _colour(k), lw=0.6, alpha=0.35)
            ellipse(ax, mean, cov, 2.0, _colour(k), lw=0.6, alpha=0.25, linestyle="--")
    ax.plot([], [], "k-", lw=0.6, label=f"1{SIGMA} ellipse (one draw)")
    ax.plot([], [], "k--", lw=0.6, label=f"2{SIGMA} ellipse (one draw)")
    _axis_labels(ax, dataset)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out / "posterior_clusters.png")


def plot_misclassified(dataset: Dataset, fits: EMFits, membership: np.ndarray, out: Path) -> Path:
    """Misclassified points (EM and posterior) and uncertain ones (top probability low)."""
    x, y = _plane(dataset.X)
    em_labels = fits.reference_run.labels
    post_labels = membership.argmax(axis=1)
    uncertain = membership.max(axis=1) < UNCERTAIN_BELOW
    fig, ax = _new("Misclassified and uncertain points")
    ax.scatter(x, y, s=8, color="0.8", label="other points")
    if dataset.labels is not None:
        em_wrong = em_labels != dataset.labels
        post_wrong = post_labels != dataset.labels
        ax.scatter(
            x[em_wrong],
            y[em_wrong],
            s=90,
            marker="x",
            color="tab:red",
            label=f"EM label ≠ true ({int(em_wrong.sum())})",
        )
        ax.scatter(
            x[post_wrong],
            y[post_wrong],
            s=40,
            marker="+",
            color="tab:blue",
            label=f"posterior label ≠ true ({int(post_wrong.sum())})",
        )
    else:
        ax.set_title("Uncertain points, and EM/posterior disagreements (true labels unknown)")
        differ = em_labels != post_labels
        ax.scatter(
            x[differ],
            y[differ],
            s=90,
            marker="x",
            color="tab:red",
            label=f"EM label ≠ posterior label ({int(differ.sum())})",
        )
    ax.scatter(
        x[uncertain],
        y[uncertain],
        s=130,
        facecolors="none",
        edgecolors="tab:orange",
        lw=1.5,
        label=f"posterior top probability < {UNCERTAIN_BELOW} ({int(uncertain.sum())})",
    )
    _axis_labels(ax, dataset)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out / "misclassified.png")


# ---------------------------------------------------------------------------------------------
# EM convergence and posterior summaries


def plot_em_convergence(fits: EMFits, out: Path) -> Path:
    """Total log-likelihood by iteration, and its distance to the final value (log scale)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 6.5), layout="constrained", sharex=True)
    fig.suptitle("EM log-likelihood by iteration")
    for i, (name, run) in enumerate(fits.runs.items()):
        history = np.asarray(run.log_likelihood_history)
        steps = np.arange(history.size)
        top.plot(
            steps,
            history,
            marker="o",
            ms=3,
            color=_colour(i),
            label=f"{name}: {run.n_iter} iterations, final {run.log_likelihood:.4f}",
        )
        gap = history[-1] - history[:-1]
        shown = gap > 0
        bottom.semilogy(
            steps[:-1][shown], gap[shown], marker="o", ms=3, color=_colour(i), label=name
        )
    top.set_ylabel("total log-likelihood")
    top.legend(fontsize=8)
    bottom.set_ylabel("final - current log-likelihood")
    bottom.set_xlabel("iteration (0 = starting values)")
    bottom.legend(fontsize=8)
    return _save(fig, out / "em_convergence.png")


def plot_forest(comparison: dict[str, Any], out: Path) -> Path:
    """Posterior intervals and means of every parameter, EM and true values marked."""
    rows = forest_rows(comparison)
    groups = [g for g in ("weights", "means", "covariances") if any(r["group"] == g for r in rows)]
    heights = [sum(r["group"] == g for r in rows) for g in groups]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(7.5, 1.2 + 0.32 * sum(heights)),
        height_ratios=heights,
        layout="constrained",
    )
    reference = comparison["em"]["reference"]
    truth = " and true values" if any(r["true"] is not None for r in rows) else ""
    fig.suptitle(
        f"Posterior {interval_percent()} intervals with EM ({reference} run: estimate and "
        f"Wald interval){truth}"
    )
    for ax, group in zip(np.atleast_1d(axes), groups, strict=True):
        _forest_group(ax, [r for r in rows if r["group"] == group], reference)
        ax.set_title(group, fontsize=10, loc="left")
    # Every panel's entries, once each: K = 1's weight panel has no interval line.
    legend = {}
    for ax in np.atleast_1d(axes):
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(name, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=4, fontsize=8)
    return _save(fig, out / "forest.png")


def forest_rows(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """The forest plot's rows: all, or the MAX_ROWS where EM lies furthest from the posterior.

    The distance is in posterior SDs, |EM's reference estimate - posterior mean| / SD; a row
    without a posterior SD (K = 1's fixed weight) counts as 0.
    """
    reference = comparison["em"]["reference"]

    def departure(row: dict[str, Any]) -> float:
        if not row["posterior_sd"]:
            return 0.0
        return abs(row["em"][reference] - row["posterior_mean"]) / row["posterior_sd"]

    return most_telling(comparison["parameters"], MAX_ROWS, departure)


def _forest_group(ax: Axes, rows: list[dict[str, Any]], reference: str) -> None:
    """One panel of the forest plot: one row per parameter, top to bottom, EM's Wald under it."""
    y = -np.arange(len(rows), dtype=float)
    spread = [
        (r["interval_low"], r["interval_high"], yi)
        for r, yi in zip(rows, y, strict=True)
        if r["interval_low"] is not None  # a fixed parameter (K = 1's weight) has no interval
    ]
    if spread:
        low, high, at = zip(*spread, strict=True)
        ax.hlines(at, low, high, color="tab:blue", lw=2.5, label=f"{interval_percent()} interval")
    ax.plot([r["posterior_mean"] for r in rows], y, "o", color="tab:blue", label="posterior mean")
    wald = [
        (r["em_wald_low"], r["em_wald_high"], yi - WALD_OFFSET)
        for r, yi in zip(rows, y, strict=True)
        if r["em_wald_low"] is not None
    ]
    if wald:
        low, high, at = zip(*wald, strict=True)
        ax.hlines(at, low, high, color="tab:red", lw=1.0, label=f"EM {interval_percent()} Wald")
    ax.plot([r["em"][reference] for r in rows], y, "x", color="tab:red", ms=9, mew=2, label="EM")
    true = [(r["true"], yi) for r, yi in zip(rows, y, strict=True) if r["true"] is not None]
    if true:
        ax.plot(*zip(*true, strict=True), "D", mfc="none", color="black", ms=7, label="true")
    ax.set_yticks(y, [shown_name(r) for r in rows], fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def plot_elbo(vb: VBFit, out: Path) -> Path:
    """VB's ELBO after each iteration, and its increase per iteration (log scale)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 6.5), layout="constrained", sharex=True)
    fig.suptitle(f"VB's ELBO by iteration, under {vb.prior_source}")
    history = np.asarray(vb.lower_bound_history)
    steps = np.arange(1, history.size + 1)
    top.plot(
        steps,
        history,
        marker="o",
        ms=3,
        color=_colour(2),
        label=f"{vb.n_iter} iterations, final {vb.lower_bound:.4f}",
    )
    top.set_ylabel("ELBO (total)")
    top.ticklabel_format(axis="y", useOffset=False, style="plain")
    top.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.legend(fontsize=8)
    increase = np.diff(history)
    shown = increase > 0
    bottom.semilogy(steps[1:][shown], increase[shown], marker="o", ms=3, color=_colour(2))
    bottom.set_ylabel("increase over the previous iteration")
    bottom.set_xlabel("CAVI iteration")
    return _save(fig, out / "elbo.png")


def plot_vb_sd_ratio(comparison: dict[str, Any], out: Path) -> Path:
    """VB SD / NUTS SD (same priors) per parameter, with +-2 Monte Carlo errors, 1 marked."""
    rows = vb_ratio_rows(comparison)
    fig, ax = _new("VB SD / NUTS SD under VB's priors (±2 MC errors)", (7.0, 1.2 + 0.3 * len(rows)))
    y = -np.arange(len(rows), dtype=float)
    groups = ("weights", "means", "covariances")
    for i, group in enumerate(groups):
        chosen = [j for j, r in enumerate(rows) if r["group"] == group]
        if not chosen:
            continue
        ax.errorbar(
            [rows[j]["vb_sd_ratio"] for j in chosen],
            y[chosen],
            xerr=[2 * rows[j]["vb_sd_ratio_mcse"] for j in chosen],
            fmt="o",
            color=_colour(i),
            capsize=3,
            label=group,
        )
    ax.axvline(1.0, color="black", lw=1, linestyle="--", label="equal spread (ratio 1)")
    ax.set_yticks(y, [r["parameter"] for r in rows], fontsize=8)
    ax.set_xlabel("VB SD / NUTS SD")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out / "vb_sd_ratio.png")


def vb_ratio_rows(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows with a VB SD / NUTS SD: all, or the MAX_ROWS furthest from 1 (on a log scale)."""
    trusted, _ = trusted_ratios(comparison["parameters"])
    return most_telling(trusted, MAX_ROWS, lambda r: abs(np.log(r["vb_sd_ratio"])))


def _arviz_figure(pc: Any, title: str, path: Path) -> Path:
    """Title an arviz-plots PlotCollection's figure, lay it out and save it."""
    fig = pc.viz["figure"].item() if hasattr(pc.viz["figure"], "item") else pc.viz["figure"]
    fig.suptitle(title)
    fig.set_layout_engine("constrained")
    return _save(fig, path)


def plot_trace(idata: Any, out: Path) -> Path:
    """ArviZ trace plot (marginal densities and draws by chain) of weights and means."""
    pc = azp.plot_trace_dist(
        idata,
        var_names=list(TRACE_VARIABLES),
        backend="matplotlib",
        figure_kwargs={"figsize": (11, 6)},
    )
    return _arviz_figure(
        pc, "Trace of weights and means (one line style per chain)", out / "trace.png"
    )


def rank_rows(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """The weights and means given a rank plot: all, or the MAX_RANK_PANELS of largest R-hat.

    A row without an R-hat (K = 1's fixed weight) comes last.
    """
    rows = [r for r in comparison["parameters"] if r["group"] in TRACE_VARIABLES]
    return most_telling(rows, MAX_RANK_PANELS, lambda r: r["r_hat"] or -np.inf)


def scalar_posterior(idata: Any, rows: list[dict[str, Any]]) -> xr.DataTree:
    """The posterior's entries named by `rows`: per variable, one `<name> entry` dim of them.

    Each entry's coordinate is its component and coordinate, e.g. "1, x2", so ArviZ titles
    its panel "means" over "1, x2", as it does the variable's own entries.
    """
    variables = {}
    for name in TRACE_VARIABLES:
        variable = idata.posterior[name]
        entries = [
            dict(zip(variable.dims[2:], r["index"], strict=True))
            for r in rows
            if r["group"] == name
        ]
        if not entries:
            continue
        labels = [", ".join(str(variable[d].values[i]) for d, i in at.items()) for at in entries]
        values = np.stack([variable.isel(at).values for at in entries], axis=-1)
        variables[name] = xr.DataArray(
            values,
            dims=("chain", "draw", f"{name} entry"),
            coords={"chain": variable["chain"], "draw": variable["draw"], f"{name} entry": labels},
        )
    return xr.DataTree.from_dict({"posterior": xr.Dataset(variables)})


def plot_rank(idata: Any, rows: list[dict[str, Any]], out: Path) -> Path:
    """ArviZ rank (Δ-ECDF) plot of the scalars of `rows`: flat lines mean the chains agree.

    With a single chain there is nothing to compare: the figure says so.
    """
    if idata.posterior.sizes["chain"] < 2:
        fig, ax = _new("Rank plots need two or more chains", (7.0, 2.0))
        ax.axis("off")
        ax.text(0.5, 0.5, "This run has one chain: run with --chains 2 or more.", ha="center")
        return _save(fig, out / "rank.png")
    n_rows = int(np.ceil(len(rows) / PANEL_COLUMNS))
    pc = azp.plot_rank(
        scalar_posterior(idata, rows),
        backend="matplotlib",
        figure_kwargs={"figsize": (12, 2.4 * n_rows + 1)},
    )
    return _arviz_figure(
        pc, "Rank plots of weights and means (chains should overlap)", out / "rank.png"
    )


def predictive_tree(idata: Any) -> xr.DataTree:
    """Observed and replicated data, their coordinates labelled by name (or x1, x2, ...)."""
    groups = {}
    for group in ("posterior_predictive", "observed_data"):
        data = idata[group].to_dataset()
        if "dim" in data.dims and data["dim"].dtype.kind not in "OUS":  # unnamed: 0..D-1
            data = data.assign_coords(dim=[f"x{j + 1}" for j in range(data.sizes["dim"])])
        groups[group] = data
    return xr.DataTree.from_dict(groups)


def plot_ppc(idata: Any, coordinates: np.ndarray, out: Path) -> Path:
    """Posterior predictive check: the density of each of `coordinates` (indices), a panel each."""
    tree = predictive_tree(idata)
    if "dim" in tree["observed_data"].dims:
        tree = tree.isel(dim=coordinates)
    n = coordinates.size
    pc = azp.plot_ppc_dist(
        tree,
        backend="matplotlib",
        num_samples=PPC_DRAWS,
        cols=["dim"] if "dim" in tree["observed_data"].dims else [],
        col_wrap=PANEL_COLUMNS,
        figure_kwargs={"figsize": (min(4.0 * n, 14.0), 3.8 * int(np.ceil(n / PANEL_COLUMNS)))},
    )
    return _arviz_figure(
        pc,
        f"Posterior predictive check: observed (black) vs {PPC_DRAWS} replicated data sets",
        out / "ppc.png",
    )


def figure_names(results: Results) -> tuple[str, ...]:
    """The figures of this run, in report order.

    Those of methods not run are left out; the pairs plot follows the posterior clusters when
    D > 2 (it draws posterior ellipses, so it needs NUTS).
    """
    nuts = results.idata is not None
    vb = results.vb is not None
    both = results.idata_gauss_wishart is not None
    names = tuple(
        name
        for name in FIGURES
        if (nuts or name not in NUTS_FIGURES)
        and (vb or name not in VB_FIGURES)
        and (both or name not in BOTH_FIGURES)
    )
    if not nuts or results.dataset.n_features <= 2:
        return names
    at = names.index("posterior_clusters") + 1
    return (*names[:at], PAIRS, *names[at:])


def draw_all(results: Results, comparison: dict[str, Any], out: Path) -> dict[str, FigureFile]:
    """Every figure into folder out; returns name -> FigureFile (path, caption) in report order."""
    dataset, fits, idata, membership = (
        results.dataset,
        results.fits,
        results.idata,
        results.membership,
    )
    from analysis.pairs import plot_pairs, shown_coordinates  # it imports this module

    out.mkdir(parents=True, exist_ok=True)
    ranked = rank_rows(comparison)
    shown = shown_coordinates(fits.reference_run.parameters)
    makers: dict[str, Callable[[], Path]] = {
        "data": lambda: plot_data(dataset, out),
        "em_clusters": lambda: plot_em_clusters(dataset, fits, out),
        "posterior_clusters": lambda: plot_posterior_clusters(dataset, idata, membership, out),
        "misclassified": lambda: plot_misclassified(dataset, fits, membership, out),
        "em_convergence": lambda: plot_em_convergence(fits, out),
        "elbo": lambda: plot_elbo(results.vb, out),
        "forest": lambda: plot_forest(comparison, out),
        "vb_sd_ratio": lambda: plot_vb_sd_ratio(comparison, out),
        "trace": lambda: plot_trace(idata, out),
        "rank": lambda: plot_rank(idata, ranked, out),
        "ppc": lambda: plot_ppc(idata, shown, out),
    }
    names = figure_names(results)
    captions = _captions(results, comparison, ranked)
    if PAIRS in names:
        makers[PAIRS] = lambda: plot_pairs(dataset, fits, idata, out)
    makers = {name: makers[name] for name in names}
    in_child = tuple(name for name in CHILD_FIGURES if name in makers) if _can_fork() else ()
    with beside(_draw, makers, in_child, fork=bool(in_child)) as child_done:
        _draw(makers, tuple(name for name in names if name not in in_child))
        try:
            child_done()
        except Exception as error:
            raise RuntimeError(
                f"drawing the figures {', '.join(in_child)} failed: {type(error).__name__}: {error}"
            ) from error
    return {name: FigureFile(out / f"{name}.png", captions[name]) for name in names}


def _captions(
    results: Results, comparison: dict[str, Any], ranked: list[dict[str, Any]]
) -> dict[str, str]:
    """Every figure's caption, saying which parameters or coordinates a large run's figures draw.

    Beyond MAX_ROWS parameters, MAX_RANK_PANELS scalars or MAX_COORDINATES coordinates, a
    figure would be unreadable, or refused by ArviZ or by the PNG format: the most telling part
    is drawn instead, as the caption says.
    """
    from analysis.pairs import coordinates_note, pairs_caption  # it imports this module

    dataset, parameters = results.dataset, comparison["parameters"]
    captions = dict(CAPTIONS)
    captions[PAIRS] = pairs_caption(CAPTIONS[PAIRS], dataset, results.fits)
    captions["ppc"] += coordinates_note(dataset, results.fits)
    captions["forest"] += subset_note(
        len(forest_rows(comparison)),
        len(parameters),
        "parameters",
        "those where EM's estimate lies furthest from the posterior mean, in posterior SDs "
        "(named on the axis)",
    )
    trusted, left_out = trusted_ratios(parameters)
    captions["vb_sd_ratio"] += subset_note(
        len(vb_ratio_rows(comparison)),
        len(trusted),
        "ratios",
        "those furthest from 1 (named on the axis)",
    ) + (f" {left_out}." if left_out else "")
    if results.settings.chains > 1:  # with one chain the figure says it has nothing to rank
        captions["rank"] += subset_note(
            len(ranked),
            sum(r["group"] in TRACE_VARIABLES for r in parameters),
            "weights and means",
            "those with the largest R-hat, " + ", ".join(r["parameter"] for r in ranked),
        )
    return captions


def _can_fork() -> bool:
    """True where half the figures are drawn in a forked process (`analysis.forked`)."""
    return can_fork()


def _draw(makers: dict[str, Callable[[], Path]], names: tuple[str, ...]) -> None:
    """Draw the named figures, in order."""
    for name in names:
        makers[name]()
