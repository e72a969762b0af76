"""EM runs for the comparison: from the source's initial values and from seeded restarts.

Each run is an `EMFit` (plain arrays and numbers, JSON round-trip) that carries its
responsibilities (n, K) and labels (n,), computed once by em_reference's E-step when the run is
made or loaded. Components are put in one order for every run: the true components' order when
labels are known (matched by maximising agreement), otherwise the order of the reference run's
first mean coordinate; so the EM columns, the posterior (sampled with the reference run as its
reference) and the truth line up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.checks import check_components
from analysis.datasets import Dataset
from em_reference import GaussianMixtureEM, MixtureParameters, precisions_cholesky
from em_reference.em import expectation_step

N_INIT = 10
INIT_METHOD = "kmeans++"
TIE_TOLERANCE = 1e-2
"""A restart must beat the source's start by more than this (total log-likelihood) to be
preferred as the reference: equal optima keep the seed program's run."""


def responsibilities(X: np.ndarray, parameters: MixtureParameters) -> np.ndarray:
    """p(component k | x_i) under the parameters, (n, K): em_reference's E-step."""
    p = parameters
    log_resp, _ = expectation_step(X, p.weights, p.means, precisions_cholesky(p.covariances))
    return np.exp(log_resp)


@dataclass(frozen=True, eq=False)
class EMFit:
    """One EM run: where it started, the estimates, how it converged, and its clustering.

    `responsibilities` (n, K) and `labels` (n,) are those of the estimates on the run's data.
    """

    name: str
    start: str
    parameters: MixtureParameters
    log_likelihood_history: tuple[float, ...]
    n_iter: int
    converged: bool
    responsibilities: np.ndarray
    labels: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        """The labels: the most probable component of each point."""
        object.__setattr__(self, "labels", np.argmax(self.responsibilities, axis=1))

    @property
    def log_likelihood(self) -> float:
        """Total log-likelihood of the final estimates."""
        return self.log_likelihood_history[-1]

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

    def permuted(self, order: np.ndarray) -> EMFit:
        """The same run with components reordered: new component j is old component order[j]."""
        p = self.parameters
        params = MixtureParameters(p.weights[order], p.means[order], p.covariances[order])
        return EMFit(
            self.name,
            self.start,
            params,
            self.log_likelihood_history,
            self.n_iter,
            self.converged,
            self.responsibilities[:, order],
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for em.json (responsibilities are recomputed on loading)."""
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
    def from_dict(cls, values: dict[str, Any], X: np.ndarray) -> EMFit:
        """Rebuild a run from `as_dict` output and the data X (n, D) it was fitted on."""
        parameters = MixtureParameters.from_any(values)
        return cls(
            name=values["name"],
            start=values["start"],
            parameters=parameters,
            log_likelihood_history=tuple(float(v) for v in values["log_likelihood_history"]),
            n_iter=int(values["n_iter"]),
            converged=bool(values["converged"]),
            responsibilities=responsibilities(X, parameters),
        )

    @classmethod
    def from_estimator(cls, name: str, start: str, fit: GaussianMixtureEM, X: np.ndarray) -> EMFit:
        """A run from a GaussianMixtureEM fitted on X (n, D)."""
        return cls(
            name,
            start,
            fit.parameters_,
            tuple(fit.log_likelihood_history_),
            int(fit.n_iter_),
            bool(fit.converged_),
            responsibilities(X, fit.parameters_),
        )


@dataclass(frozen=True)
class EMFits:
    """The EM runs on one dataset, in one component order, and the name of the reference run."""

    runs: dict[str, EMFit]
    reference: str

    @property
    def reference_run(self) -> EMFit:
        """The reference run: highest log-likelihood (the seed program's start on a tie)."""
        return self.runs[self.reference]

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for em.json."""
        return {
            "reference": self.reference,
            "runs": {name: run.as_dict() for name, run in self.runs.items()},
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], X: np.ndarray) -> EMFits:
        """Rebuild from `as_dict` output and the data X (n, D) the runs were fitted on."""
        runs = {name: EMFit.from_dict(run, X) for name, run in values["runs"].items()}
        if values["reference"] not in runs:
            raise ValueError(f"em.json names reference run {values['reference']!r}, which it lacks")
        return cls(runs, values["reference"])


# ---------------------------------------------------------------------------------------------
# Running EM


def run_from_initial(dataset: Dataset, n_components: int) -> EMFit | None:
    """EM from the source's published initial values, when it has them for this K."""
    if dataset.initial is None or dataset.initial.n_components != n_components:
        return None
    if dataset.initial.n_features != dataset.n_features:
        return None
    fit = GaussianMixtureEM(n_components, init=dataset.initial).fit(dataset.X)
    return EMFit.from_estimator("initial", "the source program's initial values", fit, dataset.X)


def run_from_restarts(dataset: Dataset, n_components: int, random_seed: int) -> EMFit:
    """EM from N_INIT k-means++ starts drawn with `random_seed`; the best log-likelihood is kept."""
    fit = GaussianMixtureEM(
        n_components, init=INIT_METHOD, n_init=N_INIT, random_state=random_seed
    ).fit(dataset.X)
    start = f"best of {N_INIT} {INIT_METHOD} starts (seed {random_seed})"
    return EMFit.from_estimator("restarts", start, fit, dataset.X)


def fit_em(dataset: Dataset, n_components: int, random_seed: int) -> EMFits:
    """Both EM runs (the initial-values one only when the source has one), aligned."""
    check_components(dataset, n_components)
    runs = [
        run
        for run in (
            run_from_initial(dataset, n_components),
            run_from_restarts(dataset, n_components, random_seed),
        )
        if run is not None
    ]
    reference = choose_reference(runs)
    return align(dataset, {run.name: run for run in runs}, reference.name)


def choose_reference(runs: list[EMFit]) -> EMFit:
    """The run with the highest log-likelihood; the first (the source's start) on a tie."""
    chosen = runs[0]
    for run in runs[1:]:
        if run.log_likelihood > chosen.log_likelihood + TIE_TOLERANCE:
            chosen = run
    return chosen


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
    from scipy.optimize import linear_sum_assignment  # slow to import: only when aligning

    rows, cols = linear_sum_assignment(agreement, maximize=True)
    order = [int(c) for _, c in sorted(zip(rows, cols, strict=True))]
    rest = [c for c in range(agreement.shape[1]) if c not in order]
    return np.array(order + rest, dtype=np.int64)


def align(dataset: Dataset, runs: dict[str, EMFit], reference: str) -> EMFits:
    """Reorder the reference to the truth (or by first mean coordinate), the others to it."""
    chosen = runs[reference]
    k = chosen.parameters.n_components
    if dataset.labels is not None:
        n_true = int(dataset.labels.max()) + 1
        counts = confusion_matrix(dataset.labels, chosen.labels, n_true, k)
        chosen = chosen.permuted(matching_order(counts))
    else:
        chosen = chosen.permuted(np.argsort(chosen.parameters.means[:, 0], kind="stable"))
    aligned = {}
    for name, run in runs.items():
        if name == reference:
            aligned[name] = chosen
            continue
        counts = confusion_matrix(chosen.labels, run.labels, k, k)
        aligned[name] = run.permuted(matching_order(counts))
    return EMFits(aligned, reference)
