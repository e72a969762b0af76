"""VB speed: a whole fit on seed-7907, and time per iteration at n = 1,000,000 against our EM.

The seed fit is timed from the seed program's initial values (EM's responsibilities of them as
the start) and from k-means++ (random_state 0), each to convergence with the default priors
and tolerance, beside scikit-learn's BayesianGaussianMixture (Dirichlet weights) from the same
responsibilities and with the same tolerance. The large case runs VB, EM and scikit-learn's
VB for a fixed number of iterations (tol = 0) from the seed program's initial values on points
drawn from the seed-7907 mixture, interleaved round by round; VB and EM make the same single
pass over the data per iteration, so their ratio is the cost of VB's extra arithmetic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

from benchmarks.em_speed import EMCase, case_data
from benchmarks.timing import interleaved
from em_reference import GaussianMixtureEM, seed7907
from em_reference.em import expectation_step
from em_reference.likelihood import precisions_cholesky
from em_reference.variational import TOL, VariationalGaussianMixture


@dataclass(frozen=True)
class VBSettings:
    """Rounds of the seed fit, and the large case (n, iterations, rounds)."""

    seed_rounds: int
    large: EMCase


FULL = VBSettings(seed_rounds=21, large=EMCase(1_000_000, 2, 3, iterations=10, rounds=5))
QUICK = VBSettings(seed_rounds=3, large=EMCase(20_000, 2, 3, iterations=3, rounds=2))


class _FromResponsibilities(BayesianGaussianMixture):
    """scikit-learn's VB started from given responsibilities (`start`, set before fit)."""

    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self.start)


def seed_responsibilities(X: np.ndarray) -> np.ndarray:
    """EM's responsibilities (n, 3) of the seed program's initial values."""
    initial = seed7907.INITIAL
    log_resp, _ = expectation_step(
        X, initial.weights, initial.means, precisions_cholesky(initial.covariances)
    )
    return np.exp(log_resp)


def sklearn_vb(X: np.ndarray, start: np.ndarray, max_iter: int, tol: float) -> Any:
    """scikit-learn's BayesianGaussianMixture (Dirichlet, reg_covar 0) from responsibilities."""
    peer = _FromResponsibilities(
        n_components=start.shape[1],
        weight_concentration_prior_type="dirichlet_distribution",
        reg_covar=0.0,
        max_iter=max_iter,
        tol=tol,
    )
    peer.start = start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return peer.fit(X)


def seed_fit(rounds: int) -> dict[str, Any]:
    """Median seconds of a whole VB fit of seed-7907, ours from two starts and scikit-learn's."""
    X, _ = seed7907.load()
    start = seed_responsibilities(X)
    runs = {
        "ours, seed start": lambda: VariationalGaussianMixture(3, init=seed7907.INITIAL).fit(X),
        "ours, k-means++": lambda: VariationalGaussianMixture(3, random_state=0).fit(X),
        "sklearn, seed start": lambda: sklearn_vb(X, start, 500, TOL),
    }
    iterations = {name: run().n_iter_ for name, run in runs.items()}
    timings = interleaved(runs, rounds)
    return {
        "rounds": rounds,
        "seconds": {name: timings.median(name) for name in runs},
        "n_iter": iterations,
        "ratio_to_sklearn": timings.paired_ratio("ours, seed start", "sklearn, seed start"),
    }


def large_case(case: EMCase) -> dict[str, Any]:
    """Seconds per iteration of VB, EM and scikit-learn's VB, fixed iterations, same start."""
    X, (weights, means, covariances) = case_data(case)
    init = {"weights": weights, "means": means, "covariances": covariances}
    start = np.exp(expectation_step(X, weights, means, precisions_cholesky(covariances))[0])
    k, n_iter = case.n_components, case.iterations

    def vb() -> VariationalGaussianMixture:
        fit = VariationalGaussianMixture(k, init=init, max_iter=n_iter, tol=0.0).fit(X)
        if fit.n_iter_ != n_iter:
            raise RuntimeError(f"VB stopped after {fit.n_iter_} of {n_iter} iterations")
        return fit

    runs = {
        "vb": vb,
        "em": lambda: GaussianMixtureEM(k, init=init, max_iter=n_iter, tol=0.0).fit(X),
        "sklearn_vb": lambda: sklearn_vb(X, start, n_iter, 0.0),
    }
    timings = interleaved(runs, case.rounds)
    return {
        "case": case.label,
        "iterations": n_iter,
        "rounds": case.rounds,
        "seconds_per_iteration": {name: timings.median(name) / n_iter for name in runs},
        "ratio_to_em": timings.paired_ratio("vb", "em"),
        "sklearn_vb_ratio_to_em": timings.paired_ratio("sklearn_vb", "em"),
    }


def run(quick: bool, progress=print) -> dict[str, Any]:
    """Both measurements as plain values."""
    settings = QUICK if quick else FULL
    progress(f"VB: seed-7907 fit x {settings.seed_rounds} rounds")
    seed = seed_fit(settings.seed_rounds)
    progress(f"  {seed}")
    progress(f"VB: {settings.large.label}, {settings.large.iterations} iterations")
    large = large_case(settings.large)
    progress(f"  {large}")
    return {"seed7907": seed, "large": large}
