"""EM runs for the comparison: from the source's initial values and from seeded restarts.

Each run is stored as an `EMResult` (plain arrays and numbers, JSON round-trip). Components are
put in one order for every run: the true components' order when labels are known (matched by
maximising agreement), otherwise the order of the best run's first mean coordinate; so the EM
columns, the posterior (sampled with the best run as its reference) and the truth line up.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from analysis.datasets import Dataset
from em_reference import GaussianMixtureEM, MixtureParameters, precisions_cholesky
from em_reference.em import expectation_step

N_INIT = 10
INIT_METHOD = "kmeans++"
# A restart must beat the source's start by more than this (total log-likelihood) to be
# preferred as the reference: equal optima keep the seed program's run.
TIE_TOLERANCE = 1e-2
REG_COVAR = 1e-6
"""EM's absolute covariance regularisation (the seed program's, GaussianMixtureEM's default)."""
MIN_VARIANCE = 100 * REG_COVAR
"""Smallest column variance accepted: reg_covar then adds at most 1 % to it."""
MAX_ABS_VALUE = 1e100
"""Largest absolute value accepted: squared distances of larger values overflow float64."""


@dataclass(frozen=True)
class EMResult:
    """One EM run: where it started, the estimates, and how it converged."""

    name: str
    start: str
    parameters: MixtureParameters
    log_likelihood_history: tuple[float, ...]
    n_iter: int
    converged: bool

    @property
    def log_likelihood(self) -> float:
        """Total log-likelihood of the final estimates."""
        return self.log_likelihood_history[-1]

    def responsibilities(self, X: np.ndarray) -> np.ndarray:
        """p(component k | x_i) under the estimates, shape (n, K)."""
        p = self.parameters
        log_resp, _ = expectation_step(X, p.weights, p.means, precisions_cholesky(p.covariances))
        return np.exp(log_resp)

    def labels(self, X: np.ndarray) -> np.ndarray:
        """The most probable component of each point (n,)."""
        return np.argmax(self.responsibilities(X), axis=1)

    def estimator(self) -> GaussianMixtureEM:
        """A fitted GaussianMixtureEM carrying these estimates (the sampler's reference)."""
        p = self.parameters
        fit = GaussianMixtureEM(p.n_components)
        fit.weights_ = p.weights.copy()
        fit.means_ = p.means.copy()
        fit.covariances_ = p.covariances.copy()
        fit.precisions_cholesky_ = precisions_cholesky(p.covariances)
        fit.log_likelihood_history_ = list(self.log_likelihood_history)
        fit.log_likelihood_ = self.log_likelihood
        fit.converged_ = self.converged
        fit.n_iter_ = self.n_iter
        fit.n_features_in_ = p.n_features
        return fit

    def permuted(self, order: np.ndarray) -> EMResult:
        """The same run with components reordered: new component j is old component order[j]."""
        p = self.parameters
        params = MixtureParameters(p.weights[order], p.means[order], p.covariances[order])
        return EMResult(
            self.name, self.start, params, self.log_likelihood_history, self.n_iter, self.converged
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for em.json."""
        return {
            "name": self.name,
            "start": self.start,
            **self.parameters.as_dict(),
            "log_likelihood": self.log_likelihood,
            "log_likelihood_history": list(self.log_likelihood_history),
            "n_iter": self.n_iter,
            "converged": self.converged,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EMResult:
        """Rebuild a run from `as_dict` output."""
        return cls(
            name=values["name"],
            start=values["start"],
            parameters=MixtureParameters.from_any(values),
            log_likelihood_history=tuple(float(v) for v in values["log_likelihood_history"]),
            n_iter=int(values["n_iter"]),
            converged=bool(values["converged"]),
        )


@dataclass(frozen=True)
class EMFits:
    """The EM runs on one dataset, in one component order, and which one is the reference."""

    runs: dict[str, EMResult]
    reference: str

    @property
    def best(self) -> EMResult:
        """The reference run: highest log-likelihood (the seed program's start on a tie)."""
        return self.runs[self.reference]

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for em.json."""
        return {
            "reference": self.reference,
            "runs": {name: run.as_dict() for name, run in self.runs.items()},
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EMFits:
        """Rebuild from `as_dict` output."""
        runs = {name: EMResult.from_dict(run) for name, run in values["runs"].items()}
        if values["reference"] not in runs:
            raise ValueError(f"em.json names reference run {values['reference']!r}, which it lacks")
        return cls(runs, values["reference"])


# ---------------------------------------------------------------------------------------------
# Running EM


def _result(name: str, start: str, fit: GaussianMixtureEM) -> EMResult:
    """An EMResult from a fitted estimator."""
    return EMResult(
        name,
        start,
        fit.parameters_,
        tuple(fit.log_likelihood_history_),
        int(fit.n_iter_),
        bool(fit.converged_),
    )


def run_from_initial(dataset: Dataset, n_components: int) -> EMResult | None:
    """EM from the source's published initial values, when it has them for this K."""
    if dataset.initial is None or dataset.initial.n_components != n_components:
        return None
    if dataset.initial.n_features != dataset.n_features:
        return None
    fit = GaussianMixtureEM(n_components, init=dataset.initial).fit(dataset.X)
    return _result("initial", "the source program's initial values", fit)


def run_from_restarts(dataset: Dataset, n_components: int, seed: int) -> EMResult:
    """EM from N_INIT k-means++ starts drawn with `seed`; the best log-likelihood is kept."""
    fit = GaussianMixtureEM(n_components, init=INIT_METHOD, n_init=N_INIT, random_state=seed).fit(
        dataset.X
    )
    return _result("restarts", f"best of {N_INIT} {INIT_METHOD} starts (seed {seed})", fit)


def fit_em(dataset: Dataset, n_components: int, seed: int) -> EMFits:
    """Both EM runs (the initial-values one only when the source has one), aligned."""
    check_components(dataset, n_components)
    runs = [
        run
        for run in (
            run_from_initial(dataset, n_components),
            run_from_restarts(dataset, n_components, seed),
        )
        if run is not None
    ]
    reference = choose_reference(runs)
    return align(dataset, {run.name: run for run in runs}, reference.name)


def check_scale(dataset: Dataset) -> None:
    """Raise ValueError unless the data's scale suits EM's absolute reg_covar and float64.

    Estimates are not rescaled silently: the published seed-7907 table depends on reg_covar
    being absolute, so data whose columns vary by less than `MIN_VARIANCE` (reg_covar would bias
    the covariances) or hold values beyond `MAX_ABS_VALUE` (squares overflow) are refused with
    the advice to rescale them.
    """
    largest = float(np.max(np.abs(dataset.X)))
    if largest > MAX_ABS_VALUE:
        raise ValueError(
            f"{dataset.name} has values as large as {largest:.3g}, too large for float64 "
            f"arithmetic (squared distances overflow above {MAX_ABS_VALUE:g}): rescale the "
            f"data, e.g. divide it by {10 ** np.floor(np.log10(largest)):.0e}"
        )
    spreads = standard_deviations(dataset.X)
    small = np.flatnonzero(spreads**2 < MIN_VARIANCE)
    if small.size:
        j = int(small[0])
        raise ValueError(
            f"{dataset.name}: column {j + 1} varies too little (standard deviation "
            f"{spreads[j]:.3g}, variance below {MIN_VARIANCE:g}): EM adds {REG_COVAR:g} to every "
            "variance, which would bias the estimates; rescale the data (multiply it by a power "
            "of 10) or drop a constant column"
        )


def standard_deviations(X: np.ndarray) -> np.ndarray:
    """Each column's standard deviation (D,), from the column over its largest absolute value.

    Dividing first keeps the squares of tiny values (1e-300) from underflowing to zero.
    """
    largest = np.max(np.abs(X), axis=0)
    unit = np.where(largest > 0, largest, 1.0)
    return (X / unit).std(axis=0) * unit


def check_components(dataset: Dataset, n_components: int) -> None:
    """Raise ValueError unless 1 <= K <= n (and the data's scale is usable, `check_scale`)."""
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"the number of components must be an integer >= 1, got {n_components!r}")
    if dataset.n_points < n_components:
        raise ValueError(
            f"{dataset.name} has {dataset.n_points} points, fewer than the "
            f"{n_components} components asked for"
        )
    check_scale(dataset)


def choose_reference(runs: list[EMResult]) -> EMResult:
    """The run with the highest log-likelihood; the first (the source's start) on a tie."""
    best = runs[0]
    for run in runs[1:]:
        if run.log_likelihood > best.log_likelihood + TIE_TOLERANCE:
            best = run
    return best


# ---------------------------------------------------------------------------------------------
# One component order for everything


def confusion_matrix(
    true_labels: np.ndarray, labels: np.ndarray, n_true: int, n_est: int
) -> np.ndarray:
    """Counts (n_true, n_est): row = true component, column = estimated component."""
    counts = np.zeros((n_true, n_est), dtype=np.int64)
    np.add.at(counts, (true_labels, labels), 1)
    return counts


def matching_order(agreement: np.ndarray) -> np.ndarray:
    """Order (K,) of the columns of agreement (m, K) maximising the matched total.

    Column order[j] becomes component j; columns matched to no row (K > m) follow in their
    original order.
    """
    rows, cols = linear_sum_assignment(agreement, maximize=True)
    order = [int(c) for _, c in sorted(zip(rows, cols, strict=True))]
    rest = [c for c in range(agreement.shape[1]) if c not in order]
    return np.array(order + rest, dtype=np.int64)


def align(dataset: Dataset, runs: dict[str, EMResult], reference: str) -> EMFits:
    """Reorder the reference to the truth (or by first mean coordinate), the others to it."""
    X = dataset.X
    best = runs[reference]
    if dataset.labels is not None:
        n_true = int(dataset.labels.max()) + 1
        counts = confusion_matrix(
            dataset.labels, best.labels(X), n_true, best.parameters.n_components
        )
        best = best.permuted(matching_order(counts))
    else:
        best = best.permuted(np.argsort(best.parameters.means[:, 0], kind="stable"))
    aligned = {}
    for name, run in runs.items():
        if name == reference:
            aligned[name] = best
            continue
        k = best.parameters.n_components
        counts = confusion_matrix(best.labels(X), run.labels(X), k, k)
        aligned[name] = run.permuted(matching_order(counts))
    return EMFits(aligned, reference)


def main(argv: list[str] | None = None) -> int:
    """`python -m analysis.fitting [NAME] [--json]`: the same as `gmm-compare em`."""
    from analysis.cli import main as cli_main

    return cli_main(["em", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
