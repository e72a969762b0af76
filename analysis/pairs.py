"""The pairs plot for D > 2: every pair of coordinates, with EM's and posterior draws' ellipses.

A Gaussian's marginal in coordinates (i, j) is N(mu[(i, j)], Sigma[(i, j), (i, j)]), so each
panel's ellipses are exact, not projections of a fit in fewer dimensions. Beyond
`MAX_COORDINATES` coordinates only those that separate EM's components best are drawn
(`separation`), and the caption names them; the posterior predictive check draws the same ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from analysis.datasets import Dataset
from analysis.em_fits import EMFits
from analysis.figures import SIGMA, _colour, _save, axis_names, ellipse, posterior_draws
from em_reference import MixtureParameters

MAX_COORDINATES = 8
"""Most coordinates a pairs plot shows: 8 x 8 panels are still readable on a page."""

PAIRS_DRAWS = 20
"""Posterior draws whose 1 sigma ellipses are drawn on every panel."""

PANEL_INCHES = 2.0
HISTOGRAM_BINS = 30


def separation(parameters: MixtureParameters) -> np.ndarray:
    """Between- over within-component variance of each coordinate (D,) under a fitted mixture.

    For coordinate j, with m_j = sum_k w_k mu_kj: between = sum_k w_k (mu_kj - m_j)^2 and
    within = sum_k w_k Sigma_k,jj; the mixture's variance of x_j is their sum. A large ratio
    means the components' centres lie far apart compared with their spread along that
    coordinate (a one-dimensional Fisher criterion); it does not depend on the coordinate's unit.
    """
    weights, means = parameters.weights, parameters.means
    centre = weights @ means
    between = weights @ (means - centre) ** 2
    within = weights @ np.diagonal(parameters.covariances, axis1=1, axis2=2)
    return between / within


def shown_coordinates(parameters: MixtureParameters, limit: int = MAX_COORDINATES) -> np.ndarray:
    """Indices of the coordinates drawn, in column order: all D, or the `limit` most separating."""
    n_features = parameters.n_features
    if n_features <= limit:
        return np.arange(n_features)
    best = np.argsort(-separation(parameters), kind="stable")[:limit]
    return np.sort(best)


def pairs_caption(base: str, dataset: Dataset, fits: EMFits) -> str:
    """The pairs plot's caption: `base`, and which coordinates are shown when not all are."""
    return base + coordinates_note(dataset, fits)


def coordinates_note(dataset: Dataset, fits: EMFits) -> str:
    """A caption's sentence naming the coordinates drawn when not all are ('' when all are).

    The pairs plot and the posterior predictive check draw the same `shown_coordinates`.
    """
    shown = shown_coordinates(fits.reference_run.parameters)
    if shown.size == dataset.n_features:
        return ""
    names = axis_names(dataset)
    return (
        f" Only {shown.size} of the {dataset.n_features} coordinates are drawn: "
        f"{', '.join(names[j] for j in shown)}, the ones along which EM's components are "
        "furthest apart for their spread (largest between- over within-component variance)."
    )


def plot_pairs(dataset: Dataset, fits: EMFits, idata: Any, out: Path) -> Path:
    """Scatter matrix of the shown coordinates, EM's and posterior draws' ellipses on each panel.

    Lower triangle: points coloured by EM's component, EM's 1 and 2 sigma ellipses (black) and
    the 1 sigma ellipses of PAIRS_DRAWS posterior draws (component colours). Diagonal: the
    coordinate's histogram with EM's weighted component densities and their sum.
    """
    params = fits.reference_run.parameters
    shown = shown_coordinates(params)
    size = shown.size
    fig, axes = plt.subplots(
        size,
        size,
        figsize=(PANEL_INCHES * size + 0.6, PANEL_INCHES * size + 0.6),
        layout="constrained",
        squeeze=False,
    )
    fig.suptitle(
        f"Pairs plot: EM's 1{SIGMA} and 2{SIGMA} ellipses (black)\n"
        f"and {PAIRS_DRAWS} posterior draws' 1{SIGMA} ellipses (colours)"
    )
    means, covariances = (posterior_draws(idata, name) for name in ("means", "covariances"))
    chosen = np.linspace(0, means.shape[0] - 1, PAIRS_DRAWS).astype(int)
    limits = [_limits(dataset.X[:, j]) for j in shown]
    labels = fits.reference_run.labels
    for row, i in enumerate(shown):
        for col, j in enumerate(shown):
            ax = axes[row, col]
            if col > row:
                ax.set_axis_off()
                continue
            if col == row:
                _diagonal_panel(ax, dataset.X[:, j], params, j)
            else:
                pair = np.array([j, i])
                _scatter_panel(ax, dataset.X[:, pair], labels)
                _ellipses(ax, params, means[chosen], covariances[chosen], pair)
                ax.set_ylim(limits[row])
            ax.set_xlim(limits[col])
            _outer_labels(ax, row, col, size, axis_names(dataset), i, j)
    _legend(fig, params.n_components)
    return _save(fig, out / "pairs.png")


def _limits(values: np.ndarray) -> tuple[float, float]:
    """Axis limits around a coordinate's values, with a 5 % margin."""
    low, high = float(values.min()), float(values.max())
    margin = 0.05 * (high - low)
    return low - margin, high + margin


def _scatter_panel(ax: Axes, points: np.ndarray, labels: np.ndarray) -> None:
    """Points (n, 2) coloured by their EM component."""
    for k in np.unique(labels):
        chosen = labels == k
        ax.scatter(*points[chosen].T, s=4, color=_colour(int(k)), alpha=0.5, lw=0)


def _ellipses(
    ax: Axes,
    params: MixtureParameters,
    means: np.ndarray,
    covariances: np.ndarray,
    pair: np.ndarray,
) -> None:
    """EM's and the draws' (means (S, K, D), covariances (S, K, D, D)) ellipses in two coordinates.

    The marginal of N(mu, Sigma) in `pair` is N(mu[pair], Sigma[pair, pair]): exact.
    """
    block = np.ix_(pair, pair)
    for s in range(means.shape[0]):
        for k in range(means.shape[1]):
            ellipse(
                ax, means[s, k][pair], covariances[s, k][block], 1.0, _colour(k), lw=0.5, alpha=0.35
            )
    for k in range(params.n_components):
        for n_sigma, style in ((1.0, "-"), (2.0, "--")):
            ellipse(
                ax,
                params.means[k][pair],
                params.covariances[k][block],
                n_sigma,
                "black",
                linestyle=style,
                lw=1.0,
            )


def _diagonal_panel(ax: Axes, values: np.ndarray, params: MixtureParameters, j: int) -> None:
    """A coordinate's histogram with EM's weighted component densities w_k N(x | mu_kj, S_kjj)."""
    ax.hist(values, bins=HISTOGRAM_BINS, density=True, color="0.8")
    grid = np.linspace(*_limits(values), 200)
    total = np.zeros_like(grid)
    for k in range(params.n_components):
        sd = float(np.sqrt(params.covariances[k, j, j]))
        density = params.weights[k] * np.exp(-0.5 * ((grid - params.means[k, j]) / sd) ** 2)
        density /= sd * np.sqrt(2.0 * np.pi)
        total += density
        ax.plot(grid, density, color=_colour(k), lw=1.0)
    ax.plot(grid, total, color="black", lw=1.0)
    ax.set_yticks([])


def _outer_labels(
    ax: Axes, row: int, col: int, size: int, names: list[str], i: int, j: int
) -> None:
    """Coordinate names on the bottom row and the left column only; inner tick labels hidden."""
    if row == size - 1:
        ax.set_xlabel(names[j])
    else:
        ax.tick_params(labelbottom=False)
    if col == 0 and row > 0:
        ax.set_ylabel(names[i])
    elif col > 0:
        ax.tick_params(labelleft=False)
    ax.tick_params(labelsize=7)


def _legend(fig: Any, n_components: int) -> None:
    """One legend for the whole figure, in the empty upper triangle."""
    handles = [
        plt.Line2D([], [], color=_colour(k), marker="o", lw=0.8, label=f"EM component {k}")
        for k in range(n_components)
    ]
    handles += [
        plt.Line2D([], [], color="black", lw=1.0, label=f"EM 1{SIGMA}"),
        plt.Line2D([], [], color="black", lw=1.0, linestyle="--", label=f"EM 2{SIGMA}"),
        plt.Line2D([], [], color="0.4", lw=0.5, label=f"posterior draw 1{SIGMA}"),
    ]
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.98, 0.93), fontsize=9)
