"""EM per-iteration time and peak memory: ours vs scikit-learn vs the seed tutorial's style.

All three start from the same initial values on the same data and run the same fixed number of
iterations (tol = 0), so they do the same arithmetic and must end at the same parameters.
Time per iteration is the fit's wall time divided by the iteration count: it includes the
fixed costs of one fit (input checks, the final E-step), which both peers pay too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from benchmarks.timing import interleaved, peak_memory
from benchmarks.tutorial_em import tutorial_em
from em_reference import ConvergenceWarning as EMConvergenceWarning
from em_reference import GaussianMixtureEM, sample_mixture, seed7907
from em_reference.base import kmeans_plus_plus_centres, parameters_from_centres

REG_COVAR = 1e-6
METHODS = ("ours", "sklearn", "tutorial")
Start = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class EMCase:
    """One benchmark size: n points, D dimensions, K components, fixed iterations, rounds."""

    n_points: int
    n_features: int
    n_components: int
    iterations: int
    rounds: int

    @property
    def label(self) -> str:
        """A short name such as 'n=1,000,000 D=2 K=3'."""
        return f"n={self.n_points:,} D={self.n_features} K={self.n_components}"


FULL_CASES = (
    EMCase(500, 2, 3, iterations=10, rounds=21),
    EMCase(1_000_000, 2, 3, iterations=10, rounds=5),
    EMCase(100_000, 16, 8, iterations=10, rounds=5),
)
QUICK_CASES = (
    EMCase(500, 2, 3, iterations=10, rounds=5),
    EMCase(100_000, 2, 3, iterations=5, rounds=3),
    EMCase(10_000, 16, 8, iterations=5, rounds=3),
)


def benchmark_mixture(n_features: int, n_components: int) -> tuple[Any, ...]:
    """The mixture to sample: seed-7907's for D=2, K=3, else a fixed random overlapping one."""
    if (n_features, n_components) == (2, 3):
        true = seed7907.TRUE
        return true.weights, true.means, true.covariances
    rng = np.random.default_rng(1000 * n_features + n_components)
    weights = rng.dirichlet(np.full(n_components, 3.0))
    means = rng.normal(scale=1.0, size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features)) / np.sqrt(n_features)
    covariances = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(n_features)
    return weights, means, covariances


def case_data(case: EMCase) -> tuple[np.ndarray, Start]:
    """Points X (n, D) drawn with the seed LCG (seed 7907) and the shared starting values."""
    mixture = benchmark_mixture(case.n_features, case.n_components)
    X, _ = sample_mixture(case.n_points, *mixture, seed=seed7907.SEED)
    if (case.n_features, case.n_components) == (2, 3):
        initial = seed7907.INITIAL
        return X, (initial.weights, initial.means, initial.covariances)
    rng = np.random.default_rng(0)
    centres = kmeans_plus_plus_centres(X, case.n_components, rng)
    return X, parameters_from_centres(X, centres, REG_COVAR)


def fit_ours(X: np.ndarray, start: Start, iterations: int) -> Start:
    """Our EM for exactly `iterations` iterations; returns weights, means, covariances."""
    init = dict(zip(("weights", "means", "covariances"), start, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EMConvergenceWarning)  # tol = 0 by design
        fit = GaussianMixtureEM(len(start[0]), init=init, max_iter=iterations, tol=0.0).fit(X)
    if fit.n_iter_ != iterations:
        raise RuntimeError(f"our EM stopped after {fit.n_iter_} of {iterations} iterations")
    return fit.weights_, fit.means_, fit.covariances_


def fit_sklearn(X: np.ndarray, start: Start, iterations: int) -> Start:
    """scikit-learn's GaussianMixture(full) from the same start for exactly `iterations`."""
    weights, means, covariances = start
    peer = GaussianMixture(
        len(weights),
        covariance_type="full",
        weights_init=weights,
        means_init=means,
        precisions_init=np.linalg.inv(covariances),
        reg_covar=REG_COVAR,
        max_iter=iterations,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        peer.fit(X)
    return peer.weights_, peer.means_, peer.covariances_


def fit_tutorial(X: np.ndarray, start: Start, iterations: int) -> Start:
    """The seed tutorial's loop-and-pdf EM for `iterations` iterations."""
    weights, means, covariances, _ = tutorial_em(X, start, iterations, REG_COVAR)
    return weights, means, covariances


FITTERS: dict[str, Callable[[np.ndarray, Start, int], Start]] = {
    "ours": fit_ours,
    "sklearn": fit_sklearn,
    "tutorial": fit_tutorial,
}


def largest_difference(first: Start, second: Start) -> float:
    """Largest absolute difference over weights, means and covariances."""
    return max(float(np.max(np.abs(a - b))) for a, b in zip(first, second, strict=True))


def run_case(case: EMCase, methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """Time, memory and agreement of each method on one case, as plain values."""
    X, start = case_data(case)
    runs = {name: _bound(FITTERS[name], X, start, case.iterations) for name in methods}
    results = {name: run() for name, run in runs.items()}
    timings = interleaved(runs, case.rounds)
    peaks = {name: peak_memory(run) for name, run in runs.items()}
    per_iteration = {name: timings.median(name) / case.iterations for name in methods}
    return {
        "case": case.label,
        "n_points": case.n_points,
        "n_features": case.n_features,
        "n_components": case.n_components,
        "iterations": case.iterations,
        "rounds": case.rounds,
        "seconds_per_iteration": per_iteration,
        "ratio_to_sklearn": {
            name: timings.paired_ratio(name, "sklearn") for name in methods if "sklearn" in methods
        },
        "peak_bytes": peaks,
        "peak_ratio_to_sklearn": {
            name: peaks[name] / peaks["sklearn"] for name in methods if "sklearn" in methods
        },
        "largest_difference_to_sklearn": {
            name: largest_difference(results[name], results["sklearn"])
            for name in methods
            if "sklearn" in methods
        },
        "data_bytes": X.nbytes,
    }


def _bound(fitter: Callable[..., Start], X: np.ndarray, start: Start, iterations: int):
    """fitter(X, start, iterations) as a no-argument callable."""
    return lambda: fitter(X, start, iterations)


def run_all(cases: tuple[EMCase, ...], progress: Callable[[str], None] = print) -> list[dict]:
    """run_case for every case, reporting progress as it goes."""
    rows = []
    for case in cases:
        progress(f"EM speed: {case.label}, {case.iterations} iterations x {case.rounds} rounds")
        rows.append(run_case(case))
        progress(summary_line(rows[-1]))
    return rows


def summary_line(row: dict[str, Any]) -> str:
    """One line per case: per-iteration times, ratios to sklearn, largest difference."""
    parts = [row["case"]]
    for name, seconds in row["seconds_per_iteration"].items():
        ratio = row["ratio_to_sklearn"].get(name, float("nan"))
        memory = row["peak_ratio_to_sklearn"].get(name, float("nan"))
        difference = row["largest_difference_to_sklearn"].get(name, float("nan"))
        parts.append(
            f"{name} {seconds * 1e3:.2f} ms/it (x{ratio:.2f} time, x{memory:.2f} memory, "
            f"diff {difference:.1e})"
        )
    return " | ".join(parts)
