"""EM's uncertainty on seed-7907: bootstrap wall time per process count, and every SE side by side.

The fit is the pipeline's: EM from the seed program's start with its settings (tol 1e-5), so each
replicate is a warm-started EM of a few iterations on 500 points. Runs with different n_jobs are
interleaved round by round (timing.interleaved) and summarised by medians.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.timing import interleaved
from em_reference import BootstrapResult, GaussianMixtureEM, seed7907
from em_reference.bootstrap import BOOTSTRAP_METHODS

JOBS = (1, 2)
GOAL_SECONDS = 10.0
"""999 nonparametric replicates on seed-7907 in at most this many seconds on 2 cores."""


def seed_fit() -> tuple[np.ndarray, GaussianMixtureEM]:
    """The seed-7907 points (500, 2) and EM fitted to them as the pipeline fits it."""
    X, _ = seed7907.load()
    return X, GaussianMixtureEM(seed7907.N_COMPONENTS, init=seed7907.INITIAL).fit(X)


def timing_rows(
    X: np.ndarray, fit: GaussianMixtureEM, n_boot: int, rounds: int
) -> tuple[list[dict[str, Any]], dict[str, BootstrapResult]]:
    """Median wall seconds and counts of `fit.bootstrap` per method and n_jobs, and the results.

    A method's result is the same for every n_jobs (one seed per replicate); the first is kept.
    """
    results: dict[tuple[str, int], BootstrapResult] = {}

    def timed(method: str, jobs: int):
        def call() -> None:
            results[method, jobs] = fit.bootstrap(
                X, n_boot, method=method, random_state=0, n_jobs=jobs
            )

        return call

    keys = [(method, jobs) for method in BOOTSTRAP_METHODS for jobs in JOBS]
    timings = interleaved({f"{m}/{j}": timed(m, j) for m, j in keys}, rounds)
    rows = []
    for method, jobs in keys:
        result = results[method, jobs]
        rows.append(
            {
                "method": method,
                "n_jobs": jobs,
                "n_boot": n_boot,
                "rounds": rounds,
                "seconds": timings.median(f"{method}/{jobs}"),
                "all_seconds": timings.seconds[f"{method}/{jobs}"],
                "n_failed": result.n_failed,
                "n_relabelled": result.n_relabelled,
                "n_unconverged": result.n_unconverged,
            }
        )
    return rows, {method: results[method, JOBS[0]] for method in BOOTSTRAP_METHODS}


def standard_error_rows(
    X: np.ndarray, fit: GaussianMixtureEM, bootstraps: dict[str, BootstrapResult]
) -> list[dict[str, Any]]:
    """One row per distinct parameter: estimate, information SEs and the bootstrap SEs."""
    columns = {
        "observed": fit.standard_errors(X, "observed"),
        "empirical": fit.standard_errors(X, "empirical"),
    }
    columns.update({method: result.standard_errors() for method, result in bootstraps.items()})
    estimate = fit.parameters_
    rows = []
    for label, pick in parameter_entries(estimate.n_components, estimate.n_features):
        row = {"parameter": label, "estimate": float(pick(estimate))}
        row.update({name: float(pick(errors)) for name, errors in columns.items()})
        rows.append(row)
    return rows


def parameter_entries(n_components: int, n_features: int) -> list[tuple[str, Any]]:
    """(label, picker) for every weight, mean and distinct covariance entry (i >= j)."""
    entries = []
    for k in range(n_components):
        entries.append((f"weights[{k}]", lambda p, k=k: p.weights[k]))
        for d in range(n_features):
            entries.append((f"means[{k}, {d}]", lambda p, k=k, d=d: p.means[k, d]))
        for i, j in zip(*np.tril_indices(n_features), strict=True):
            entries.append(
                (f"covariances[{k}][{i}, {j}]", lambda p, k=k, i=i, j=j: p.covariances[k, i, j])
            )
    return entries


def run(n_boot: int = 999, rounds: int = 3) -> dict[str, Any]:
    """The bootstrap section: timings per method and n_jobs, and the standard-error table."""
    X, fit = seed_fit()
    rows, bootstraps = timing_rows(X, fit, n_boot, rounds)
    return {
        "dataset": "seed7907",
        "goal_seconds": GOAL_SECONDS,
        "timings": rows,
        "standard_errors": standard_error_rows(X, fit, bootstraps),
    }
