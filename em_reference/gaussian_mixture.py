"""Maximum-likelihood Gaussian mixture by EM: one run (`run_em`) and the estimator.

The estimator follows the seed program step by step and exposes the scikit-learn API. Each run
iterates `em_reference.em`'s E- and M-steps, computed by the single-pass engine
(`em_reference.shifted_sums`), under `em_reference.base`'s rule: stop after the iteration whose
total log-likelihood improved on the previous one by less than `tol` (absolute, summed over
points), or after `max_iter` iterations; either way the newest parameters are kept and
`converged_` says which rule stopped the run (the second with a `ConvergenceWarning`).

A run stops at the first log-likelihood that is not finite, or covariance that is not positive
definite, with a `DegenerateFitError` naming the cause; among several starts, such runs are
skipped and counted, and the fit fails only when every start fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from em_reference import uncertainty
from em_reference.base import (
    DegenerateFitError,
    MixtureEstimator,
    RunOutcome,
    best_run,
    explicit_start,
    iterate,
    warn_unless_converged,
)
from em_reference.em import expectation_step
from em_reference.generator import draw_mixture
from em_reference.likelihood import precisions_cholesky
from em_reference.parameters import MixtureParameters
from em_reference.shifted_sums import ResponsibilitySums, expectation_pass, parameters_from_sums
from em_reference.validation import check_data, check_integer, check_non_negative

Callback = Callable[[int, MixtureParameters, np.ndarray, float], None]

# Squared distances overflow float64 beyond about 1e308: values this large cannot be fitted.
OVERFLOW_SQUARE = float(np.sqrt(np.finfo(np.float64).max))


class MixtureState(NamedTuple):
    """EM's parameters: weights (K,), means (K, D), covariances (K, D, D), precision factors."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_chol: np.ndarray


# ---------------------------------------------------------------------------------------------
# One EM run


def run_em(
    X: np.ndarray,
    initial: tuple[np.ndarray, np.ndarray, np.ndarray],
    max_iter: int,
    tol: float,
    reg_covar: float,
    callback: Callback | None = None,
    sample_weight: np.ndarray | None = None,
) -> RunOutcome[MixtureState]:
    """Iterate E- and M-steps from initial (weights, means, covariances) until the stopping rule.

    Each pass over the data is the E-step of the current parameters: it gives their total
    log-likelihood for the stopping rule and the sums from which the M-step computes the next
    parameters, so every iteration reads the data once. With point weights v (n,) >= 0 the
    objective is sum_i v_i log p(x_i) (integer weights: EM on the points repeated v_i times).
    """
    weights, means, covariances = initial
    precisions_chol = checked_precisions(covariances, 0)
    state = MixtureState(weights, means, covariances, precisions_chol)
    log_likelihood, sums = quiet_expectation_pass(X, state, None, sample_weight)
    check_finite(X, log_likelihood, 0, state)

    def step(
        current: tuple[MixtureState, ResponsibilitySums], iteration: int
    ) -> tuple[tuple[MixtureState, ResponsibilitySums], float]:
        """One M-step from the previous pass's sums, then the pass of the new parameters."""
        weights, means, covariances = parameters_from_sums(current[1], reg_covar)
        state = MixtureState(
            weights, means, covariances, checked_precisions(covariances, iteration)
        )
        responsibilities = None if callback is None else np.empty((X.shape[0], weights.shape[0]))
        log_likelihood, sums = quiet_expectation_pass(X, state, responsibilities, sample_weight)
        check_finite(X, log_likelihood, iteration, state)
        if callback is not None:
            params = MixtureParameters(weights, means, covariances)
            callback(iteration, params, responsibilities, log_likelihood)
        return (state, sums), log_likelihood

    outcome = iterate(step, (state, sums), [log_likelihood], max_iter, tol)
    return replace(outcome, state=outcome.state[0])


def quiet_expectation_pass(
    X: np.ndarray,
    state: MixtureState,
    responsibilities_out: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, ResponsibilitySums]:
    """`expectation_pass` without NumPy's overflow warnings: `check_finite` names the cause."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return expectation_pass(
            X,
            state.weights,
            state.means,
            state.precisions_chol,
            responsibilities_out,
            sample_weight,
        )


def checked_precisions(covariances: np.ndarray, iteration: int) -> np.ndarray:
    """Precision Cholesky factors (K, D, D); DegenerateFitError naming the collapsed components."""
    if not np.all(np.isfinite(covariances)):
        raise DegenerateFitError(
            f"the covariances are not finite after iteration {iteration}: the data's values "
            "are too large for float64 (squares overflow); rescale the data"
        )
    try:
        return precisions_cholesky(covariances)
    except ValueError:
        bad = [k for k, c in enumerate(covariances) if not _is_positive_definite(c)]
        raise DegenerateFitError(
            f"the covariance of component(s) {bad} is not positive definite after iteration "
            f"{iteration}: the component collapsed onto too few points; increase reg_covar "
            "or use fewer components"
        ) from None


def _is_positive_definite(covariance: np.ndarray) -> bool:
    """Whether one covariance (D, D) has a Cholesky factor."""
    try:
        np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        return False
    return True


def check_finite(X: np.ndarray, log_likelihood: float, iteration: int, state: MixtureState) -> None:
    """DegenerateFitError naming the cause when the total log-likelihood is not finite.

    `state` holds the parameters it was computed from.
    """
    if np.isfinite(log_likelihood):
        return
    when = "of the starting parameters" if iteration == 0 else f"after iteration {iteration}"
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _, point_log_density = expectation_step(
            X, state.weights, state.means, state.precisions_chol
        )
    bad = np.flatnonzero(~np.isfinite(point_log_density))
    largest = float(np.max(np.abs(X)))
    cause = (
        f"the data's values (up to {largest:.3g}) are too large: squared distances overflow "
        "float64; rescale the data"
        if largest >= OVERFLOW_SQUARE
        else "the start or a component is degenerate"
    )
    raise DegenerateFitError(
        f"the log-likelihood {when} is {log_likelihood}: {bad.size} point(s) (first at row "
        f"{bad[0] if bad.size else '?'}) have no finite density under any component; {cause}"
    )


# ---------------------------------------------------------------------------------------------
# The estimator


class GaussianMixtureEM(MixtureEstimator):
    """Maximum-likelihood Gaussian mixture with full covariances, fitted by EM.

    Parameters
    ----------
    n_components : int
        K, the number of mixture components (>= 1).
    init : "kmeans++", "random", or parameters
        How each run starts: k-means++ seeding or K random data points (each followed by one
        M-step from hard assignments), or explicit initial values: anything with `weights` (K,),
        `means` (K, D) and `covariances` (K, D, D) as attributes or mapping keys.
    n_init : int
        Runs from different data-driven starts; the one with the highest log-likelihood is kept.
        Must be 1 with explicit initial values.
    max_iter, tol : int, float
        Stop after the iteration whose total log-likelihood improved by less than `tol`, or after
        `max_iter` iterations (the seed program's rule: 100 and 1e-5).
    reg_covar : float
        Added to the diagonal of every covariance after each M-step (seed program: 1e-6).
    random_state : int, numpy Generator or None
        Seed for data-driven starts and for `sample`.
    callback : callable or None
        Called after each iteration as callback(iteration, parameters, responsibilities (n, K),
        log_likelihood) with the new parameters and the responsibilities they imply.

    Fitted attributes: `weights_` (K,), `means_` (K, D), `covariances_` (K, D, D),
    `precisions_cholesky_` (K, D, D), `converged_`, `n_iter_`, `log_likelihood_` (total, final),
    `log_likelihood_history_` (n_iter_ + 1 totals, the first for the starting parameters),
    `n_failed_starts_` (starts skipped because their run was degenerate, see
    `DegenerateFitError`; a `ConvergenceWarning` says so), `n_features_in_`.
    A `ConvergenceWarning` also flags a kept run that stopped at max_iter.

    """

    _fitted_attribute = "weights_"

    def __init__(
        self,
        n_components: int = 1,
        *,
        init: Any = "kmeans++",
        n_init: int = 1,
        max_iter: int = 100,
        tol: float = 1e-5,
        reg_covar: float = 1e-6,
        random_state: int | np.random.Generator | None = None,
        callback: Callback | None = None,
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.random_state = random_state
        self.callback = callback

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> GaussianMixtureEM:
        """Estimate the parameters from data X (n, D); returns self. `y` is ignored."""
        settings = self._fit_settings(X)
        reg_covar = check_non_negative("reg_covar", self.reg_covar)
        X = settings.X
        starts = self._starts(settings, reg_covar, "parameters")
        if starts is None:
            start = explicit_start(self.init, settings.n_components, X.shape[1])
            starts = [(start.weights.copy(), start.means.copy(), start.covariances.copy())]

        def run(start: tuple[np.ndarray, np.ndarray, np.ndarray]) -> RunOutcome[MixtureState]:
            """EM from one start with the checked settings."""
            return run_em(X, start, settings.max_iter, settings.tol, reg_covar, self.callback)

        best, n_failed = best_run(run, starts, "EM")
        warn_unless_converged(best, "EM", "log-likelihood", settings.max_iter, settings.tol)
        self._set_fitted(best, X.shape[1])
        self.n_failed_starts_ = n_failed
        return self

    def _set_fitted(self, outcome: RunOutcome[MixtureState], n_features: int) -> None:
        """Store the chosen run's results as the fitted attributes."""
        self.weights_ = outcome.state.weights
        self.means_ = outcome.state.means
        self.covariances_ = outcome.state.covariances
        self.precisions_cholesky_ = outcome.state.precisions_chol
        self.log_likelihood_history_ = list(outcome.objective_history)
        self.log_likelihood_ = outcome.objective
        self.converged_ = outcome.converged
        self.n_iter_ = outcome.n_iter
        self.n_features_in_ = n_features

    # -- using the fit ----------------------------------------------------------------------

    def _e_step(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Log-responsibilities (n, K) and log-densities (n,) of new data under the fit.

        ValueError naming the rows whose density underflows float64 under every component (a
        point so far away that no responsibilities can be computed for it).
        """
        self._check_fitted()
        X = check_data(X, self.n_features_in_)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            log_resp, point_log_density = expectation_step(
                X, self.weights_, self.means_, self.precisions_cholesky_
            )
        bad = np.flatnonzero(~np.isfinite(point_log_density))
        if bad.size:
            raise ValueError(
                f"X has {bad.size} row(s) (first at row {bad[0]}) too far from every fitted "
                "component: their density is below what float64 can represent, so neither "
                "their log-density nor their responsibilities can be computed"
            )
        return log_resp, point_log_density

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities (n, K): the probability of each component for each point."""
        return np.exp(self._e_step(X)[0])

    def predict(self, X: Any) -> np.ndarray:
        """The most probable component of each point (n,)."""
        return np.argmax(self._e_step(X)[0], axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log p(x_i) under the fitted mixture for each point (n,)."""
        return self._e_step(X)[1]

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per point (higher is better: the default of a grid search)."""
        return float(self.score_samples(X).mean())

    def n_parameters(self) -> int:
        """Free parameters: K - 1 weights, K D means, K D (D + 1) / 2 covariance entries."""
        self._check_fitted()
        k, d = self.means_.shape
        return (k - 1) + k * d + k * d * (d + 1) // 2

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on X: -2 log L + p log n (lower is better)."""
        log_density = self.score_samples(X)
        n_points = log_density.shape[0]
        return float(-2.0 * log_density.sum() + self.n_parameters() * np.log(n_points))

    def aic(self, X: Any) -> float:
        """Akaike information criterion on X: -2 log L + 2 p (lower is better)."""
        return float(-2.0 * self.score_samples(X).sum() + 2.0 * self.n_parameters())

    def sample(self, n_samples: int = 1, random_state: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw points (n_samples, D) and their components (n_samples,) from the fitted mixture.

        Uses NumPy's generator seeded by `random_state` (default: the estimator's), not the seed
        program's LCG; use `sample_mixture` for that.
        """
        self._check_fitted()
        n_samples = check_integer("n_samples", n_samples)
        seed = self.random_state if random_state is None else random_state
        rng = np.random.default_rng(seed)
        lower = np.linalg.cholesky(self.covariances_)
        return draw_mixture(rng, (n_samples,), self.weights_, self.means_, lower)

    # -- uncertainty (em_reference.uncertainty, em_reference.bootstrap) ----------------------

    def standard_errors(self, X: Any, information: str = "observed") -> Any:
        """Delta-method standard errors of the fit on its data X (n, D), like `parameters_`.

        A value with weights (K,), means (K, D), covariances (K, D, D), from the "observed"
        (minus the Hessian) or "empirical" (score outer products) information.
        """
        return uncertainty.standard_errors(X, self.parameters_, information)

    def wald_intervals(self, X: Any, prob: float | None = None) -> Any:
        """Wald intervals of every parameter, of probability `prob` (default INTERVAL_PROB).

        See `uncertainty.wald_intervals` for how each is formed.
        """
        if prob is None:
            prob = uncertainty.INTERVAL_PROB
        return uncertainty.wald_intervals(X, self.parameters_, prob)

    def bootstrap(
        self,
        X: Any,
        n_boot: int = 999,
        method: str = "nonparametric",
        random_state: Any = 0,
        n_jobs: int = 1,
    ) -> Any:
        """Bootstrap replicates of the fit on its data X (see `em_reference.bootstrap`)."""
        from em_reference.bootstrap import bootstrap  # imports this module

        return bootstrap(self, X, n_boot, method, random_state, n_jobs)
