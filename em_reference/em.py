"""Expectation-maximisation for a full-covariance Gaussian mixture, in NumPy only.

The estimator follows the seed program step by step and exposes the scikit-learn API:

1. E-step: responsibilities r_ik = w_k N(x_i | mu_k, Sigma_k) / sum_j w_j N(x_i | mu_j, Sigma_j),
   computed in the log domain; the same pass gives the total log-likelihood of the parameters.
2. M-step: N_k = sum_i r_ik; w_k = N_k / n; mu_k = sum_i r_ik x_i / N_k;
   Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k around the *new* mean, plus reg_covar I.
3. Stop after the iteration whose total log-likelihood improved on the previous one by less
   than `tol` (absolute, summed over points), or after `max_iter` iterations; either way the
   newest parameters are kept and `converged_` says which rule stopped the run (the second
   with a `ConvergenceWarning`).

A run stops at the first log-likelihood that is not finite, or covariance that is not positive
definite, with a `DegenerateFitError` naming the cause; among several starts, such runs are
skipped and counted, and the fit fails only when every start fails.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from em_reference.likelihood import (
    log_sum_exp_rows,
    log_weighted_densities,
    precisions_cholesky,
)
from em_reference.parameters import MixtureParameters

# Added to each N_k so that a component whose responsibilities vanish keeps finite parameters.
EMPTY_COMPONENT_MASS = 10 * np.finfo(np.float64).eps
INIT_METHODS = ("kmeans++", "random")
# Data are processed in blocks of rows so that temporaries stay small and in cache.
BLOCK_ELEMENTS = 2**17
BLOCK_MIN_ROWS = 256

Callback = Callable[[int, MixtureParameters, np.ndarray, float], None]


class NotFittedError(ValueError, AttributeError):
    """Raised when a method needs a fitted estimator and `fit` has not been called."""


class DegenerateFitError(ValueError):
    """An EM run met a collapsed component or a log-likelihood that is not finite."""


class ConvergenceWarning(UserWarning):
    """EM stopped at max_iter before converging, or some of its starts failed."""


# Squared distances overflow float64 beyond about 1e308: values this large cannot be fitted.
OVERFLOW_SQUARE = float(np.sqrt(np.finfo(np.float64).max))


# ---------------------------------------------------------------------------------------------
# Input checks


def check_data(X: Any, n_features: int | None = None) -> np.ndarray:
    """Return X as a float64 array (n, D), raising ValueError if it is not finite 2-D data."""
    try:
        array = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"X must be a numeric array of shape (n, D): {error}") from None
    if array.ndim != 2:
        raise ValueError(f"X must be 2-D with shape (n, D), got {array.ndim}-D shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"X must have at least one row and one column, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad_rows = np.flatnonzero(~np.all(np.isfinite(array), axis=1))
        raise ValueError(
            f"X contains NaN or infinite values ({bad_rows.size} rows, first at row {bad_rows[0]})"
        )
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(
            f"X has {array.shape[1]} columns but the model was fitted with {n_features}"
        )
    return array


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return value as an int, raising ValueError unless it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_non_negative(name: str, value: Any) -> float:
    """Return value as a float, raising ValueError unless it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# The E-step and the M-step, one function per equation
#
# The M-step needs only three sums over the points per component: R_k = sum_i r_ik,
# s_k = sum_i r_ik (x_i - c_k) and S_k = sum_i r_ik (x_i - c_k)(x_i - c_k)^T, about a shift c_k.
# EM accumulates them block by block in the same pass as the E-step, with c_k the current means,
# so an iteration reads the data once and never holds an (n, K) or (n, D) temporary.


@dataclass(frozen=True)
class ResponsibilitySums:
    """R_k (K,), s_k (K, D) and S_k (K, D, D) about the shifts c_k (K, D): all the M-step needs."""

    shifts: np.ndarray
    totals: np.ndarray
    first: np.ndarray
    second: np.ndarray

    def __add__(self, other: ResponsibilitySums) -> ResponsibilitySums:
        """The sums over the union of two disjoint sets of points (same shifts)."""
        return ResponsibilitySums(
            self.shifts,
            self.totals + other.totals,
            self.first + other.first,
            self.second + other.second,
        )


def block_rows(n_components: int, n_features: int) -> int:
    """Rows per block: the (K, D, rows) temporaries of a block stay within about 1 MiB."""
    return max(BLOCK_MIN_ROWS, BLOCK_ELEMENTS // (n_components * n_features))


def expectation_step(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, precisions_chol: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Log-responsibilities (n, K) and the log-density of each point (n,) in one pass."""
    weighted = log_weighted_densities(X, weights, means, precisions_chol, weights.shape[0])
    point_log_density = log_sum_exp_rows(weighted)
    return weighted - point_log_density[:, None], point_log_density


def block_sums(
    X: np.ndarray, responsibilities: np.ndarray, shifts: np.ndarray
) -> ResponsibilitySums:
    """R_k, s_k, S_k of the points X (b, D) with responsibilities (b, K), about shifts (K, D)."""
    coordinates = np.ascontiguousarray(X.T)  # (D, b): points along contiguous rows
    centred = coordinates[None, :, :] - shifts[:, :, None]  # (K, D, b): x_i - c_k
    by_component = responsibilities.T  # (K, b)
    # S_k = A_k A_k^T with A_k = sqrt(r_ik) (x_i - c_k): a product of a matrix with its own
    # transpose, which NumPy hands to BLAS's symmetric rank-k update (half the work of a general
    # product, and S_k comes out exactly symmetric).
    scaled = centred * np.sqrt(by_component)[:, None, :]  # (K, D, b)
    return ResponsibilitySums(
        shifts,
        responsibilities.sum(axis=0),
        np.matmul(centred, by_component[:, :, None])[:, :, 0],
        np.matmul(scaled, scaled.transpose(0, 2, 1)),
    )


def responsibility_sums(
    X: np.ndarray, responsibilities: np.ndarray, shifts: np.ndarray
) -> ResponsibilitySums:
    """R_k, s_k, S_k of all points X (n, D) given responsibilities (n, K), block by block."""
    rows = block_rows(*shifts.shape)
    blocks = [
        block_sums(X[start : start + rows], responsibilities[start : start + rows], shifts)
        for start in range(0, X.shape[0], rows)
    ]
    return sum(blocks[1:], start=blocks[0])


def expectation_pass(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_chol: np.ndarray,
    responsibilities_out: np.ndarray | None = None,
) -> tuple[float, ResponsibilitySums]:
    """E-step block by block: the total log-likelihood and the M-step's sums about the means.

    The responsibilities (n, K) are written to `responsibilities_out` only if it is given.
    """
    rows = block_rows(*means.shape)
    log_likelihood = 0.0
    sums = None
    for start in range(0, X.shape[0], rows):
        block = X[start : start + rows]
        log_resp, point_log_density = expectation_step(block, weights, means, precisions_chol)
        responsibilities = np.exp(log_resp, out=log_resp)
        if responsibilities_out is not None:
            responsibilities_out[start : start + rows] = responsibilities
        log_likelihood += float(point_log_density.sum())
        new = block_sums(block, responsibilities, means)
        sums = new if sums is None else sums + new
    return log_likelihood, sums


def component_masses(sums: ResponsibilitySums) -> np.ndarray:
    """N_k = sum_i r_ik (K,), never exactly zero."""
    return sums.totals + EMPTY_COMPONENT_MASS


def estimate_weights(masses: np.ndarray) -> np.ndarray:
    """w_k = N_k / n (K,); dividing by sum N_k = n keeps the sum at 1 despite the guard mass."""
    return masses / masses.sum()


def estimate_means(sums: ResponsibilitySums, masses: np.ndarray) -> np.ndarray:
    """mu_k = sum_i r_ik x_i / N_k (K, D), where sum_i r_ik x_i = s_k + R_k c_k."""
    return (sums.first + sums.totals[:, None] * sums.shifts) / masses[:, None]


def estimate_covariances(
    sums: ResponsibilitySums, masses: np.ndarray, means: np.ndarray, reg_covar: float
) -> np.ndarray:
    """Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k + reg_covar I (K, D, D).

    The scatter about mu_k follows from the sums about c_k (parallel-axis theorem): with
    m_k = mu_k - c_k it is S_k - m_k s_k^T - s_k m_k^T + R_k m_k m_k^T. EM's shifts are the
    previous means, so m_k is a small step and the subtraction loses no precision.
    """
    offsets = means - sums.shifts  # (K, D): m_k
    cross = offsets[:, :, None] * sums.first[:, None, :]  # (K, D, D): m_k s_k^T
    spread = sums.totals[:, None, None] * offsets[:, :, None] * offsets[:, None, :]
    scatter = sums.second - cross - cross.transpose(0, 2, 1) + spread
    covariances = scatter / masses[:, None, None]
    n_features = means.shape[1]
    covariances += reg_covar * np.eye(n_features)
    return covariances


def parameters_from_sums(
    sums: ResponsibilitySums, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The M-step: new weights (K,), means (K, D) and covariances (K, D, D) from the sums."""
    masses = component_masses(sums)
    means = estimate_means(sums, masses)
    covariances = estimate_covariances(sums, masses, means, reg_covar)
    return estimate_weights(masses), means, covariances


def maximisation_step(
    X: np.ndarray, responsibilities: np.ndarray, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New weights (K,), means (K, D) and covariances (K, D, D) from responsibilities (n, K).

    Two passes for a standalone M-step: the means mu_k = sum_i r_ik x_i / N_k first, then the
    sums about them, so the covariances are the textbook sum_i r_ik (x_i - mu_k)(...)^T / N_k.
    """
    masses = responsibilities.sum(axis=0) + EMPTY_COMPONENT_MASS
    means = (responsibilities.T @ X) / masses[:, None]
    return parameters_from_sums(responsibility_sums(X, responsibilities, means), reg_covar)


# ---------------------------------------------------------------------------------------------
# Initialisation from the data


def kmeans_plus_plus_centres(
    X: np.ndarray, n_components: int, rng: np.random.Generator
) -> np.ndarray:
    """K centres (K, D) by k-means++ seeding: each new centre drawn with prob. ~ distance^2."""
    centres = [X[rng.integers(X.shape[0])]]
    closest_sq = np.sum((X - centres[0]) ** 2, axis=1)
    for _ in range(1, n_components):
        total = closest_sq.sum()
        index = (
            rng.choice(X.shape[0], p=closest_sq / total) if total > 0 else rng.integers(X.shape[0])
        )
        centres.append(X[index])
        closest_sq = np.minimum(closest_sq, np.sum((X - X[index]) ** 2, axis=1))
    return np.array(centres)


def random_centres(X: np.ndarray, n_components: int, rng: np.random.Generator) -> np.ndarray:
    """K distinct data points (K, D) chosen uniformly at random as centres."""
    return X[rng.choice(X.shape[0], size=n_components, replace=False)]


def parameters_from_centres(
    X: np.ndarray, centres: np.ndarray, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One M-step from hard assignments of every point to its nearest centre (K, D)."""
    sq_distances = np.sum((X[:, None, :] - centres[None, :, :]) ** 2, axis=2)  # (n, K)
    hard = np.zeros_like(sq_distances)
    hard[np.arange(X.shape[0]), np.argmin(sq_distances, axis=1)] = 1.0
    return maximisation_step(X, hard, reg_covar)


# ---------------------------------------------------------------------------------------------
# One EM run


@dataclass(frozen=True)
class EMRun:
    """The outcome of one EM run from one starting point."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    log_likelihood_history: tuple[float, ...]
    converged: bool
    n_iter: int

    @property
    def log_likelihood(self) -> float:
        """Total log-likelihood of the final parameters."""
        return self.log_likelihood_history[-1]


def run_em(
    X: np.ndarray,
    initial: tuple[np.ndarray, np.ndarray, np.ndarray],
    max_iter: int,
    tol: float,
    reg_covar: float,
    callback: Callback | None = None,
) -> EMRun:
    """Iterate E- and M-steps from initial (weights, means, covariances) until the stopping rule.

    Each pass over the data is the E-step of the current parameters: it gives their total
    log-likelihood for the stopping rule and the sums from which the M-step computes the next
    parameters, so every iteration reads the data once.
    """
    weights, means, covariances = initial
    precisions_chol = checked_precisions(covariances, 0)
    log_likelihood, sums = quiet_expectation_pass(X, weights, means, precisions_chol)
    check_finite(X, log_likelihood, 0, (weights, means, precisions_chol))
    history = [log_likelihood]
    converged = False
    for iteration in range(1, max_iter + 1):
        weights, means, covariances = parameters_from_sums(sums, reg_covar)
        precisions_chol = checked_precisions(covariances, iteration)
        responsibilities = None if callback is None else np.empty((X.shape[0], weights.shape[0]))
        log_likelihood, sums = quiet_expectation_pass(
            X, weights, means, precisions_chol, responsibilities
        )
        check_finite(X, log_likelihood, iteration, (weights, means, precisions_chol))
        history.append(log_likelihood)
        if callback is not None:
            params = MixtureParameters(weights, means, covariances)
            callback(iteration, params, responsibilities, history[-1])
        if history[-1] - history[-2] < tol:
            converged = True
            break
    return EMRun(weights, means, covariances, precisions_chol, tuple(history), converged, iteration)


def quiet_expectation_pass(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_chol: np.ndarray,
    responsibilities_out: np.ndarray | None = None,
) -> tuple[float, ResponsibilitySums]:
    """`expectation_pass` without NumPy's overflow warnings: `check_finite` names the cause."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return expectation_pass(X, weights, means, precisions_chol, responsibilities_out)


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


def check_finite(
    X: np.ndarray,
    log_likelihood: float,
    iteration: int,
    parameters: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """DegenerateFitError naming the cause when the total log-likelihood is not finite.

    `parameters` are the (weights, means, precision Cholesky factors) it was computed from.
    """
    if np.isfinite(log_likelihood):
        return
    when = "of the starting parameters" if iteration == 0 else f"after iteration {iteration}"
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _, point_log_density = expectation_step(X, *parameters)
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


class GaussianMixtureEM:
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

    def fit(self, X: Any) -> GaussianMixtureEM:
        """Estimate the parameters from data X (n, D); returns self."""
        n_components = _check_positive_int("n_components", self.n_components)
        n_init = _check_positive_int("n_init", self.n_init)
        max_iter = _check_positive_int("max_iter", self.max_iter)
        tol = _check_non_negative("tol", self.tol)
        reg_covar = _check_non_negative("reg_covar", self.reg_covar)
        X = check_data(X)
        if X.shape[0] < n_components:
            raise ValueError(f"X has {X.shape[0]} points, fewer than n_components={n_components}")
        starts = self._starting_points(X, n_components, n_init, reg_covar)
        runs, failures = [], []
        for start in starts:
            try:
                runs.append(run_em(X, start, max_iter, tol, reg_covar, self.callback))
            except DegenerateFitError as error:
                failures.append(error)
        if not runs:
            which = "the start" if len(starts) == 1 else f"all {len(starts)} starts"
            raise DegenerateFitError(f"EM failed from {which}: {failures[0]}")
        if failures:
            warnings.warn(
                f"{len(failures)} of {len(starts)} EM starts failed and were skipped "
                f"(the first: {failures[0]})",
                ConvergenceWarning,
                stacklevel=2,
            )
        best = max(runs, key=lambda run: run.log_likelihood)
        if not best.converged:
            change = best.log_likelihood_history[-1] - best.log_likelihood_history[-2]
            warnings.warn(
                f"EM stopped at max_iter={max_iter} before converging (the last iteration "
                f"changed the log-likelihood by {change:.3g}, tol={tol:g}): increase max_iter",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_fitted(best, X.shape[1])
        self.n_failed_starts_ = len(failures)
        return self

    def _starting_points(
        self, X: np.ndarray, n_components: int, n_init: int, reg_covar: float
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The n_init starting (weights, means, covariances), explicit or drawn from the data."""
        if isinstance(self.init, str):
            if self.init not in INIT_METHODS:
                raise ValueError(
                    f"init must be one of {INIT_METHODS} or parameters, got {self.init!r}"
                )
            choose = kmeans_plus_plus_centres if self.init == "kmeans++" else random_centres
            rng = np.random.default_rng(self.random_state)
            return [
                parameters_from_centres(X, choose(X, n_components, rng), reg_covar)
                for _ in range(n_init)
            ]
        initial = MixtureParameters.from_any(self.init)
        if initial.n_components != n_components:
            raise ValueError(
                f"init has {initial.n_components} components but n_components={n_components}"
            )
        if initial.n_features != X.shape[1]:
            raise ValueError(f"init means have {initial.n_features} columns but X has {X.shape[1]}")
        if n_init != 1:
            raise ValueError(f"n_init must be 1 with explicit initial values, got {n_init}")
        return [(initial.weights.copy(), initial.means.copy(), initial.covariances.copy())]

    def _set_fitted(self, run: EMRun, n_features: int) -> None:
        """Store the chosen run's results as the fitted attributes."""
        self.weights_ = run.weights
        self.means_ = run.means
        self.covariances_ = run.covariances
        self.precisions_cholesky_ = run.precisions_cholesky
        self.log_likelihood_history_ = list(run.log_likelihood_history)
        self.log_likelihood_ = run.log_likelihood
        self.converged_ = run.converged
        self.n_iter_ = run.n_iter
        self.n_features_in_ = n_features

    # -- using the fit ----------------------------------------------------------------------

    @property
    def parameters_(self) -> MixtureParameters:
        """The fitted weights, means and covariances as one validated value."""
        self._check_fitted()
        return MixtureParameters(self.weights_, self.means_, self.covariances_)

    def _check_fitted(self) -> None:
        """Raise NotFittedError unless `fit` has been called."""
        if not hasattr(self, "weights_"):
            raise NotFittedError("this GaussianMixtureEM is not fitted yet: call fit(X) first")

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

    def score(self, X: Any) -> float:
        """Mean log-likelihood per point."""
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
        n_samples = _check_positive_int("n_samples", n_samples)
        seed = self.random_state if random_state is None else random_state
        rng = np.random.default_rng(seed)
        labels = rng.choice(self.n_components, size=n_samples, p=self.weights_)
        lower = np.linalg.cholesky(self.covariances_)
        normals = rng.standard_normal((n_samples, self.n_features_in_))
        X = self.means_[labels] + np.einsum("nij,nj->ni", lower[labels], normals)
        return X, labels

    # -- uncertainty (em_reference.uncertainty, em_reference.bootstrap) ----------------------

    def standard_errors(self, X: Any, information: str = "observed") -> Any:
        """Delta-method standard errors of the fit on its data X (n, D), like `parameters_`.

        A value with weights (K,), means (K, D), covariances (K, D, D), from the "observed"
        (minus the Hessian) or "empirical" (score outer products) information.
        """
        from em_reference import uncertainty  # imports this module

        return uncertainty.standard_errors(X, self.parameters_, information)

    def wald_intervals(self, X: Any, prob: float | None = None) -> Any:
        """Wald intervals of every parameter, of probability `prob` (default INTERVAL_PROB).

        See `uncertainty.wald_intervals` for how each is formed.
        """
        from em_reference import uncertainty

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
        from em_reference.bootstrap import bootstrap

        return bootstrap(self, X, n_boot, method, random_state, n_jobs)
