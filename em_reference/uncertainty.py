"""How sure is EM? Standard errors from the information matrix, Wald intervals, the bootstrap.

The unconstrained parametrisation theta (P,) of a K-component mixture in D dimensions, in order:

- eta_j = log(w_j / w_{K-1}) for j = 0..K-2: log-ratios of the weights against the last;
- then per component k: the mean mu_k (D,), then the entries of the lower Cholesky factor L_k of
  Sigma_k = L_k L_k^T row by row (i >= j: (0, 0), (1, 0), (1, 1), (2, 0), ...), off-diagonal
  entries as they are and diagonal ones as logs, log L_k[i, i].

So P = (K - 1) + K (D + D (D + 1) / 2), and every theta in R^P is a valid mixture.

With g_ik = log w_k + log N(x_i | mu_k, Sigma_k) and responsibilities r_ik, the point's
log-likelihood l_i = log sum_k exp(g_ik) has the score sum_k r_ik dg_ik, where (whitened point
a = U_k^T (x_i - mu_k), U_k = L_k^{-T} the precision Cholesky factor, b = U_k a = Sigma_k^{-1}
(x_i - mu_k)):

- dl_i / d eta_j = r_ij - w_j;
- dg_ik / d mu_k = b;
- dg_ik / d L_k = lower triangle of U_k (a a^T - I) = b a^T - U_k, times L_k[i, i] on the
  diagonal for the log.

The observed information is minus the Hessian of sum_i l_i:
-sum_i [sum_k r_ik (d2 g_ik + dg_ik dg_ik^T) - s_i s_i^T], with s_i the point's score; d2 g_ik
is computed analytically, one parameter direction at a time (`_component_hessian`). The
empirical information is sum_i s_i s_i^T. Neither ever forms Sigma_k^{-1}: every formula goes
through U_k, as `em_reference.likelihood` does.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import pairwise, permutations
from statistics import NormalDist
from typing import Any

import numpy as np

from em_reference.em import (
    EMRun,
    check_data,
    expectation_step,
    parameters_from_sums,
    responsibility_sums,
    run_em,
)
from em_reference.likelihood import mixture_log_density, precisions_cholesky
from em_reference.parameters import MixtureParameters

INTERVAL_PROB = 0.94
"""Probability of every interval EM reports (Wald and bootstrap), as for the posterior's."""

IDENTIFIABILITY_TOL = 1e-8
"""An eigenvalue of the information scaled to unit diagonal below this is taken as zero."""

BOOTSTRAP_METHODS = ("nonparametric", "parametric", "weighted")
CHUNKS_PER_JOB = 4
"""Bootstrap replicates go to the workers in this many chunks per process, for load balance."""

_UNCONVERGED_ADVICE = "fit EM to convergence (smaller tol, larger max_iter) first"
_LOADING_SHARE = 0.25
"""A parameter is named in a singularity message if its eigenvector entry is this large a share
of the largest entry."""


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class MixtureArrays:
    """Weights (K,), means (K, D), covariances (K, D, D) of standard errors or interval bounds.

    Shaped like `MixtureParameters` but without its constraints.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self) -> None:
        for name in ("weights", "means", "covariances"):
            array = np.array(getattr(self, name), dtype=np.float64, copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def as_dict(self) -> dict[str, list]:
        """Plain nested lists, for JSON."""
        return {
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
        }


@dataclass(frozen=True)
class ParameterIntervals:
    """Lower and upper bounds of an interval of probability `prob` for every parameter."""

    lower: MixtureArrays
    upper: MixtureArrays
    prob: float


# ---------------------------------------------------------------------------------------------
# The unconstrained parametrisation


def _lower_indices(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the lower triangle, row by row: (0,0), (1,0), (1,1), ..."""
    return np.tril_indices(n_features)


def component_size(n_features: int) -> int:
    """Parameters per component in theta: D mean entries and D (D + 1) / 2 Cholesky entries."""
    return n_features + n_features * (n_features + 1) // 2


def n_parameters(n_components: int, n_features: int) -> int:
    """P, the length of theta."""
    return n_components - 1 + n_components * component_size(n_features)


def parameter_names(n_components: int, n_features: int) -> list[str]:
    """A readable name for every entry of theta (P,)."""
    last = n_components - 1
    names = [f"log(weights[{j}] / weights[{last}])" for j in range(last)]
    rows, cols = _lower_indices(n_features)
    for k in range(n_components):
        names += [f"means[{k}, {d}]" for d in range(n_features)]
        names += [
            f"log cholesky[{k}][{i}, {j}]" if i == j else f"cholesky[{k}][{i}, {j}]"
            for i, j in zip(rows, cols, strict=True)
        ]
    return names


def parameter_vector(parameters: Any) -> np.ndarray:
    """The vector theta (P,) of a mixture: weight log-ratios, then each mean and log-Cholesky."""
    params = MixtureParameters.from_any(parameters)
    rows, cols = _lower_indices(params.n_features)
    lower = np.linalg.cholesky(params.covariances)
    entries = lower[:, rows, cols]  # (K, D (D + 1) / 2)
    entries[:, rows == cols] = np.log(entries[:, rows == cols])
    blocks = np.concatenate([params.means, entries], axis=1)  # (K, component size)
    log_ratios = np.log(params.weights[:-1]) - np.log(params.weights[-1])
    return np.concatenate([log_ratios, blocks.ravel()])


def parameters_from_vector(theta: Any, n_components: int, n_features: int) -> MixtureParameters:
    """The mixture of theta (P,): softmax of (eta, 0), means, Sigma_k = L_k L_k^T."""
    theta = np.asarray(theta, dtype=np.float64)
    expected = n_parameters(n_components, n_features)
    if theta.shape != (expected,):
        raise ValueError(
            f"theta must have shape ({expected},) for K={n_components}, D={n_features}, "
            f"got {theta.shape}"
        )
    log_ratios = np.append(theta[: n_components - 1], 0.0)
    weights = np.exp(log_ratios - log_ratios.max())
    blocks = theta[n_components - 1 :].reshape(n_components, component_size(n_features))
    rows, cols = _lower_indices(n_features)
    entries = blocks[:, n_features:].copy()
    entries[:, rows == cols] = np.exp(entries[:, rows == cols])
    lower = np.zeros((n_components, n_features, n_features))
    lower[:, rows, cols] = entries
    return MixtureParameters(
        weights / weights.sum(), blocks[:, :n_features], lower @ lower.transpose(0, 2, 1)
    )


def natural_jacobian(parameters: Any) -> np.ndarray:
    """d(weights, means, covariances)/d theta: (K + K D + K D D, P), natural entries row-major."""
    params = MixtureParameters.from_any(parameters)
    weights, n_features = params.weights, params.n_features
    n_components = weights.shape[0]
    size = component_size(n_features)
    lower = np.linalg.cholesky(params.covariances)
    rows, cols = _lower_indices(n_features)
    n_weights, n_means = n_components, n_components * n_features
    jacobian = np.zeros(
        (n_weights + n_means + n_means * n_features, n_parameters(*params.means.shape))
    )
    # dw_k / d eta_j = w_k (delta_kj - w_j)
    jacobian[:n_weights, : n_components - 1] = (
        np.diag(weights)[:, :-1] - weights[:, None] * weights[None, :-1]
    )
    for k in range(n_components):
        start = n_components - 1 + k * size
        for d in range(n_features):
            jacobian[n_weights + k * n_features + d, start + d] = 1.0
        for column, (i, j) in enumerate(zip(rows, cols, strict=True)):
            step = np.zeros((n_features, n_features))
            step[i, j] = lower[k, i, j] if i == j else 1.0  # dL for a unit step of theta
            # dSigma = dL L^T + L dL^T
            d_covariance = step @ lower[k].T + lower[k] @ step.T
            offset = n_weights + n_means + k * n_features * n_features
            jacobian[offset : offset + n_features * n_features, start + n_features + column] = (
                d_covariance.ravel()
            )
    return jacobian


# ---------------------------------------------------------------------------------------------
# Scores and information


@dataclass(frozen=True)
class _Component:
    """What the derivatives of g_ik for one component need, for all points."""

    lower: np.ndarray  # (D, D): L_k
    precision_chol: np.ndarray  # (D, D): U_k = L_k^{-T}
    whitened: np.ndarray  # (n, D): a_i = U_k^T (x_i - mu_k), as rows
    precision_applied: np.ndarray  # (n, D): b_i = U_k a_i = Sigma_k^{-1} (x_i - mu_k)


def _components(X: np.ndarray, params: MixtureParameters) -> list[_Component]:
    """The per-component pieces (whitened points and their Sigma^{-1}-images) for all points."""
    lowers = np.linalg.cholesky(params.covariances)
    uppers = precisions_cholesky(params.covariances)
    pieces = []
    for lower, upper, mean in zip(lowers, uppers, params.means, strict=True):
        whitened = (X - mean) @ upper
        pieces.append(_Component(lower, upper, whitened, whitened @ upper.T))
    return pieces


def _cholesky_scale(lower: np.ndarray) -> np.ndarray:
    """dL/dtheta for each lower-triangle entry (D (D + 1) / 2,): L_ii on the diagonal, else 1."""
    rows, cols = _lower_indices(lower.shape[0])
    return np.where(rows == cols, lower[rows, cols], 1.0)


def _component_gradient(piece: _Component) -> np.ndarray:
    """dg_ik / d(mu_k, log-Cholesky L_k) for every point: (n, component size)."""
    rows, cols = _lower_indices(piece.lower.shape[0])
    a, b = piece.whitened, piece.precision_applied
    # dg/dL = U (a a^T - I) = b a^T - U, lower triangle only
    by_lower = b[:, rows] * a[:, cols] - piece.precision_chol[rows, cols]
    return np.concatenate([b, by_lower * _cholesky_scale(piece.lower)], axis=1)


def _component_hessian(piece: _Component, responsibilities: np.ndarray) -> np.ndarray:
    """sum_i r_ik d2 g_ik / d theta_k^2 (component size, component size), one direction at a time.

    For a step (dmu, dL): dU = -U dL^T U, da = -U^T (dL a + dmu), db = dU a + U da, and the
    gradient b a^T - U changes by db a^T + b da^T - dU; the log on the diagonal adds the
    gradient times dL_ii there.
    """
    n_features = piece.lower.shape[0]
    rows, cols = _lower_indices(n_features)
    diagonal = rows == cols
    scale = _cholesky_scale(piece.lower)
    a, b, upper = piece.whitened, piece.precision_applied, piece.precision_chol
    by_lower = b[:, rows] * a[:, cols] - upper[rows, cols]
    size = component_size(n_features)
    hessian = np.empty((size, size))
    for column in range(size):
        d_mean = np.zeros(n_features)
        d_lower = np.zeros((n_features, n_features))
        if column < n_features:
            d_mean[column] = 1.0
        else:
            entry = column - n_features
            d_lower[rows[entry], cols[entry]] = scale[entry]
        d_upper = -upper @ d_lower.T @ upper
        d_a = -(a @ d_lower.T + d_mean) @ upper
        d_b = a @ d_upper.T + d_a @ upper.T
        d_by_lower = d_b[:, rows] * a[:, cols] + b[:, rows] * d_a[:, cols] - d_upper[rows, cols]
        d_scale = np.where(diagonal, d_lower[rows, cols], 0.0)
        d_gradient = np.concatenate(
            [d_b, d_by_lower * scale + by_lower * d_scale], axis=1
        )  # (n, size)
        hessian[:, column] = responsibilities @ d_gradient
    return hessian


def _prepare(X: Any, parameters: Any) -> tuple[np.ndarray, MixtureParameters]:
    """X as float64 (n, D) checked against the parameters' D, and the parameters as a value."""
    params = MixtureParameters.from_any(parameters)
    return check_data(X, params.n_features), params


def _responsibilities(X: np.ndarray, params: MixtureParameters) -> np.ndarray:
    """r_ik (n, K) under the parameters."""
    log_resp, _ = expectation_step(
        X, params.weights, params.means, precisions_cholesky(params.covariances)
    )
    return np.exp(log_resp)


def point_scores(X: Any, parameters: Any) -> np.ndarray:
    """Per-point scores d l_i / d theta (n, P) of the mixture log-likelihood."""
    X, params = _prepare(X, parameters)
    responsibilities = _responsibilities(X, params)
    columns = [responsibilities[:, :-1] - params.weights[:-1]]
    for k, piece in enumerate(_components(X, params)):
        columns.append(responsibilities[:, k, None] * _component_gradient(piece))
    return np.concatenate(columns, axis=1)


def empirical_information(X: Any, parameters: Any) -> np.ndarray:
    """sum_i s_i s_i^T (P, P): the outer-product-of-scores estimate of the information."""
    scores = point_scores(X, parameters)
    return scores.T @ scores


def observed_information(X: Any, parameters: Any, method: str = "analytic") -> np.ndarray:
    """Minus the Hessian of the total log-likelihood in theta (P, P).

    method "analytic" uses the formulas of the module docstring; "differences" takes central
    differences of the analytic total score (a check on the former).
    """
    if method == "analytic":
        return _analytic_information(*_prepare(X, parameters))
    if method == "differences":
        return _differenced_information(*_prepare(X, parameters))
    raise ValueError(f"method must be 'analytic' or 'differences', got {method!r}")


def _analytic_information(X: np.ndarray, params: MixtureParameters) -> np.ndarray:
    """-sum_i [sum_k r_ik (d2 g_ik + dg_ik dg_ik^T) - s_i s_i^T] (P, P)."""
    n_components, n_features = params.means.shape
    size = component_size(n_features)
    responsibilities = _responsibilities(X, params)
    others = params.weights[:-1]
    first = np.zeros((n_parameters(n_components, n_features),) * 2)
    # sum_i sum_k r_ik (d2 g_ik + dg_ik dg_ik^T); d2 log w_k / d eta^2 = -(diag(w) - w w^T)
    first[: n_components - 1, : n_components - 1] = X.shape[0] * (
        np.outer(others, others) - np.diag(others)
    )
    masses = responsibilities.sum(axis=0)
    for k, piece in enumerate(_components(X, params)):
        weight_gradient = np.eye(n_components)[k, :-1] - others  # d log w_k / d eta
        first[: n_components - 1, : n_components - 1] += masses[k] * np.outer(
            weight_gradient, weight_gradient
        )
        gradient = _component_gradient(piece)
        block = slice(n_components - 1 + k * size, n_components - 1 + (k + 1) * size)
        cross = np.outer(weight_gradient, responsibilities[:, k] @ gradient)
        first[: n_components - 1, block] += cross
        first[block, : n_components - 1] += cross.T
        first[block, block] += gradient.T @ (responsibilities[:, k, None] * gradient)
        first[block, block] += _component_hessian(piece, responsibilities[:, k])
    scores = point_scores(X, params)
    hessian = first - scores.T @ scores
    return -0.5 * (hessian + hessian.T)


def _differenced_information(X: np.ndarray, params: MixtureParameters) -> np.ndarray:
    """Minus the central differences of the analytic total score (P, P), step 1e-5 (1 + |theta|)."""
    theta = parameter_vector(params)
    n_components, n_features = params.means.shape
    hessian = np.empty((theta.size, theta.size))
    for j in range(theta.size):
        step = 1e-5 * (1.0 + abs(theta[j]))
        totals = []
        for sign in (1.0, -1.0):
            moved = theta.copy()
            moved[j] += sign * step
            shifted = parameters_from_vector(moved, n_components, n_features)
            totals.append(point_scores(X, shifted).sum(axis=0))
        hessian[:, j] = (totals[0] - totals[1]) / (2.0 * step)
    return -0.5 * (hessian + hessian.T)


def point_log_likelihoods(X: Any, theta: Any, n_components: int) -> np.ndarray:
    """Per-point log-likelihoods l_i (n,) at theta (P,): the function the scores differentiate."""
    X = np.asarray(X, dtype=np.float64)
    params = parameters_from_vector(theta, n_components, X.shape[1])
    return mixture_log_density(
        X, params.weights, params.means, precisions_cholesky(params.covariances), n_components
    )


# ---------------------------------------------------------------------------------------------
# Checking the information: is everything identified?


def check_information(
    information: np.ndarray, parameters: Any, masses: np.ndarray | None = None
) -> None:
    """Raise ValueError naming what is not identified when the information (P, P) fails.

    Fails: singular or indefinite (eigenvalues of the information scaled to unit diagonal below
    IDENTIFIABILITY_TOL), or a component whose responsibility mass N_k (K,) is at most D points.
    """
    params = MixtureParameters.from_any(parameters)
    n_components, n_features = params.means.shape
    names = parameter_names(n_components, n_features)
    if masses is not None:
        thin = np.flatnonzero(masses <= n_features)
        if thin.size:
            details = ", ".join(f"component {k} (N_k = {masses[k]:.3g})" for k in thin)
            raise ValueError(
                f"the information is singular: {details} carries the responsibility of at most "
                f"D = {n_features} points, too few to identify its mean and covariance; "
                "fit fewer components"
            )
    diagonal = np.diag(information)
    if np.any(diagonal < 0):
        raise ValueError(
            "the information is indefinite: the log-likelihood curves upwards in "
            f"{_describe([names[j] for j in np.flatnonzero(diagonal < 0)])}, so the parameters "
            f"are not at a maximum; {_UNCONVERGED_ADVICE}"
        )
    if not np.all(diagonal > 0):
        raise ValueError(
            "the information is singular: the log-likelihood is flat in "
            f"{_describe([names[j] for j in np.flatnonzero(~(diagonal > 0))])}"
        )
    scaled = information / np.sqrt(np.outer(diagonal, diagonal))
    eigenvalues, eigenvectors = np.linalg.eigh(scaled)
    bad = eigenvalues < IDENTIFIABILITY_TOL
    if not np.any(bad):
        return
    loaded = set()
    for vector in eigenvectors[:, bad].T:
        size = np.abs(vector)
        loaded.update(np.flatnonzero(size >= _LOADING_SHARE * size.max()).tolist())
    involved = _describe([names[j] for j in sorted(loaded)])
    if eigenvalues.min() < -IDENTIFIABILITY_TOL:
        raise ValueError(
            f"the information is indefinite (smallest scaled eigenvalue {eigenvalues.min():.3g}):"
            f" the parameters are not at a maximum of the likelihood in {involved}; "
            f"{_UNCONVERGED_ADVICE}"
        )
    raise ValueError(
        f"the information is singular (smallest scaled eigenvalue {eigenvalues.min():.3g}): "
        f"not identified: {involved}"
    )


def _describe(names: list[str]) -> str:
    """Parameter names grouped by component, for an error message."""
    by_component: dict[str, list[str]] = {}
    for name in names:
        if name.startswith("log(weights"):
            by_component.setdefault("weights", []).append(name)
        else:
            component = name.split("[")[1].split("]")[0].split(",")[0]
            by_component.setdefault(f"component {component}", []).append(name)
    return "; ".join(f"{group} ({', '.join(items)})" for group, items in by_component.items())


def _information(X: np.ndarray, params: MixtureParameters, information: str) -> np.ndarray:
    """The chosen information (P, P), checked for identifiability."""
    if information == "observed":
        matrix = _analytic_information(X, params)
    elif information == "empirical":
        matrix = empirical_information(X, params)
    else:
        raise ValueError(f"information must be 'observed' or 'empirical', got {information!r}")
    check_information(matrix, params, _responsibilities(X, params).sum(axis=0))
    return matrix


def natural_covariance(X: Any, parameters: Any, information: str = "observed") -> np.ndarray:
    """Delta-method covariance J I^{-1} J^T of (weights, means, covariances) flattened: (Q, Q)."""
    X, params = _prepare(X, parameters)
    matrix = _information(X, params, information)
    jacobian = natural_jacobian(params)
    factor = np.linalg.cholesky(matrix)  # I = C C^T, so J I^{-1} J^T = (C^{-1} J^T)^T (...)
    whitened = np.linalg.solve(factor, jacobian.T)
    return whitened.T @ whitened


def _split(flat: np.ndarray, n_components: int, n_features: int) -> MixtureArrays:
    """(weights, means, covariances) from their flattened concatenation (K + K D + K D D,)."""
    n_means = n_components * n_features
    return MixtureArrays(
        flat[:n_components],
        flat[n_components : n_components + n_means].reshape(n_components, n_features),
        flat[n_components + n_means :].reshape(n_components, n_features, n_features),
    )


def standard_errors(X: Any, parameters: Any, information: str = "observed") -> MixtureArrays:
    """Delta-method standard errors of weights (K,), means (K, D), covariances (K, D, D).

    information "observed" (minus the Hessian) or "empirical" (sum of score outer products).
    """
    params = MixtureParameters.from_any(parameters)
    variances = np.diag(natural_covariance(X, params, information))
    return _split(np.sqrt(np.maximum(variances, 0.0)), *params.means.shape)


def wald_intervals(
    X: Any, parameters: Any, prob: float = INTERVAL_PROB, information: str = "observed"
) -> ParameterIntervals:
    """Wald intervals formed on an unconstrained scale per entry and mapped back.

    Weights: logit(w) +- z se / (w (1 - w)), mapped by the logistic function, so bounds stay in
    (0, 1). Variances (covariance diagonals): log(s) +- z se / s, mapped by exp, so they stay
    positive. Means and covariance off-diagonals are unconstrained entries (an off-diagonal can
    take any sign), so their interval is estimate +- z se on the natural scale; an off-diagonal
    bound is not forced inside +- sqrt(Sigma_ii Sigma_jj). z is the standard normal quantile
    of (1 + prob) / 2, and se the delta-method standard error of `standard_errors`.
    """
    params = MixtureParameters.from_any(parameters)
    z = _normal_quantile(prob)
    errors = standard_errors(X, params, information)
    weights = params.weights
    logit = np.log(weights) - np.log1p(-weights)
    half = z * errors.weights / (weights * (1.0 - weights))
    weight_bounds = [1.0 / (1.0 + np.exp(-(logit + sign * half))) for sign in (-1.0, 1.0)]
    mean_bounds = [params.means + sign * z * errors.means for sign in (-1.0, 1.0)]
    diagonal = np.eye(params.n_features, dtype=bool)
    covariance_bounds = []
    for sign in (-1.0, 1.0):
        bound = params.covariances + sign * z * errors.covariances
        variances = np.diagonal(params.covariances, axis1=1, axis2=2)
        variance_errors = np.diagonal(errors.covariances, axis1=1, axis2=2)
        bound[:, diagonal] = variances * np.exp(sign * z * variance_errors / variances)
        covariance_bounds.append(bound)
    return ParameterIntervals(
        MixtureArrays(weight_bounds[0], mean_bounds[0], covariance_bounds[0]),
        MixtureArrays(weight_bounds[1], mean_bounds[1], covariance_bounds[1]),
        prob,
    )


def _normal_quantile(prob: float) -> float:
    """The z with P(|Z| <= z) = prob for a standard normal Z."""
    if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0.0 < prob < 1.0:
        raise ValueError(f"prob must be a number in (0, 1), got {prob!r}")
    return NormalDist().inv_cdf(0.5 + 0.5 * prob)


# ---------------------------------------------------------------------------------------------
# EM with point weights (the weighted-likelihood bootstrap's refit)


def weighted_expectation(
    X: np.ndarray,
    sample_weight: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_chol: np.ndarray,
) -> tuple[float, Any]:
    """sum_i v_i log p(x_i) and the M-step's sums with responsibilities v_i r_ik, about the means.

    With point weights v (n,) the weighted likelihood's M-step is the usual one with every r_ik
    multiplied by v_i (N_k = sum_i v_i r_ik, w_k = N_k / sum_i v_i, and so on).
    """
    log_resp, point_log_density = expectation_step(X, weights, means, precisions_chol)
    responsibilities = np.exp(log_resp) * sample_weight[:, None]
    return float(sample_weight @ point_log_density), responsibility_sums(X, responsibilities, means)


def weighted_em(
    X: np.ndarray,
    sample_weight: np.ndarray,
    initial: tuple[np.ndarray, np.ndarray, np.ndarray],
    max_iter: int,
    tol: float,
    reg_covar: float,
) -> EMRun:
    """EM for the weighted log-likelihood sum_i v_i log p(x_i), point weights v (n,) >= 0.

    The stopping rule is `run_em`'s; integer weights give the fit of EM on the points repeated
    v_i times.
    """
    weights, means, covariances = initial
    precisions_chol = precisions_cholesky(covariances)
    log_likelihood, sums = weighted_expectation(X, sample_weight, weights, means, precisions_chol)
    history = [log_likelihood]
    converged = False
    for _ in range(max_iter):
        weights, means, covariances = parameters_from_sums(sums, reg_covar)
        precisions_chol = precisions_cholesky(covariances)
        log_likelihood, sums = weighted_expectation(
            X, sample_weight, weights, means, precisions_chol
        )
        history.append(log_likelihood)
        if history[-1] - history[-2] < tol:
            converged = True
            break
    if not np.isfinite(history[-1]):
        raise ValueError("the log-likelihood is not finite: the data or the start are degenerate")
    n_iter = len(history) - 1
    return EMRun(weights, means, covariances, precisions_chol, tuple(history), converged, n_iter)


# ---------------------------------------------------------------------------------------------
# Matching a replicate's components to the original ones


def matching_costs(means: np.ndarray, reference: MixtureParameters) -> np.ndarray:
    """Costs (K, K): squared Mahalanobis distance of replicate mean j from reference mean k.

    cost[k, j] is measured in component k's metric, for replicate means (K, D): the criterion
    `models` uses to match NUTS draws to the EM estimate.
    """
    precision_chol = precisions_cholesky(reference.covariances)  # (K, D, D)
    difference = means[None, :, :] - reference.means[:, None, :]  # (k, j, D)
    projected = np.einsum("kjd,kde->kje", difference, precision_chol)
    return np.sum(projected**2, axis=-1)


def assignment(cost: np.ndarray) -> np.ndarray:
    """The order (K,) minimising sum_k cost[k, order[k]] (K, K): the Hungarian method, O(K^3).

    Shortest augmenting paths with row potentials u and column potentials v (1-based columns,
    column 0 a sentinel); owner[j] is the row currently assigned to column j.
    """
    size = cost.shape[0]
    diagonal = np.arange(size)
    if np.array_equal(np.argmin(cost, axis=1), diagonal):
        return diagonal  # every row's minimum on the diagonal: no order costs less
    u = np.zeros(size + 1)
    v = np.zeros(size + 1)
    owner = np.zeros(size + 1, dtype=np.int64)
    for row in range(1, size + 1):
        owner[0] = row
        column = 0
        slack = np.full(size + 1, np.inf)
        previous = np.zeros(size + 1, dtype=np.int64)
        used = np.zeros(size + 1, dtype=bool)
        while owner[column] != 0:
            used[column] = True
            current = owner[column]
            free = ~used[1:]
            reduced = cost[current - 1] - u[current] - v[1:]
            better = free & (reduced < slack[1:])
            slack[1:][better] = reduced[better]
            previous[1:][better] = column
            candidates = np.where(free, slack[1:], np.inf)
            nxt = int(np.argmin(candidates)) + 1
            delta = candidates[nxt - 1]
            u[owner[used]] += delta
            v[used] -= delta
            slack[~used] -= delta
            column = nxt
        while column != 0:  # flip the augmenting path
            back = previous[column]
            owner[column] = owner[back]
            column = back
    order = np.empty(size, dtype=np.int64)
    order[owner[1:] - 1] = np.arange(size)
    return order


def brute_force_assignment(cost: np.ndarray) -> np.ndarray:
    """The same optimum as `assignment` by trying all K! orders (a check for small K)."""
    best = min(permutations(range(cost.shape[0])), key=lambda p: cost[range(len(p)), p].sum())
    return np.array(best, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# The bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """Refitted parameters of the replicates that succeeded, in the original component order.

    weights (B, K), means (B, K, D), covariances (B, K, D, D) with B = n_boot - n_failed.
    n_failed: replicates whose EM failed (a component collapsed), left out of the arrays;
    n_relabelled: replicates whose components had to be permuted to match the estimate;
    n_unconverged: replicates that reached max_iter (kept).
    """

    method: str
    estimate: MixtureParameters
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    n_boot: int
    n_failed: int
    n_relabelled: int
    n_unconverged: int

    def standard_errors(self) -> MixtureArrays:
        """Standard deviations over the replicates (ddof 1): weights (K,), means, covariances."""
        if self.weights.shape[0] < 2:
            raise ValueError(
                f"standard errors need 2 or more replicates, have {self.weights.shape[0]}"
            )
        return MixtureArrays(
            *(
                np.std(values, axis=0, ddof=1)
                for values in (self.weights, self.means, self.covariances)
            )
        )

    def intervals(self, prob: float = INTERVAL_PROB) -> ParameterIntervals:
        """Percentile intervals: the (1 - prob) / 2 and (1 + prob) / 2 quantiles of replicates."""
        _normal_quantile(prob)  # validates prob
        bounds = [
            MixtureArrays(
                *(
                    np.quantile(values, q, axis=0)
                    for values in (self.weights, self.means, self.covariances)
                )
            )
            for q in (0.5 - 0.5 * prob, 0.5 + 0.5 * prob)
        ]
        return ParameterIntervals(bounds[0], bounds[1], prob)


@dataclass(frozen=True)
class _BootstrapTask:
    """Everything a worker process needs to refit replicates (picklable)."""

    X: np.ndarray
    method: str
    estimate: MixtureParameters
    sampler: Any  # a fitted GaussianMixtureEM without callback, for parametric draws
    max_iter: int
    tol: float
    reg_covar: float


@dataclass(frozen=True)
class _Replicate:
    """One replicate's outcome: parameters in the estimate's order, or None if EM failed."""

    parameters: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    relabelled: bool = False
    converged: bool = True


def _refit(task: _BootstrapTask, seed: np.random.SeedSequence) -> _Replicate:
    """Draw one replicate from its own seed, refit EM from the estimate, match components."""
    rng = np.random.default_rng(seed)
    n_points = task.X.shape[0]
    start = (task.estimate.weights, task.estimate.means, task.estimate.covariances)
    settings = (task.max_iter, task.tol, task.reg_covar)
    try:
        if task.method == "nonparametric":
            run = run_em(task.X[rng.integers(n_points, size=n_points)], start, *settings)
        elif task.method == "parametric":
            drawn, _ = task.sampler.sample(n_points, random_state=rng)
            run = run_em(drawn, start, *settings)
        else:
            sample_weight = n_points * rng.dirichlet(np.ones(n_points))
            run = weighted_em(task.X, sample_weight, start, *settings)
    except (ValueError, np.linalg.LinAlgError):
        return _Replicate(None)
    order = assignment(matching_costs(run.means, task.estimate))
    relabelled = bool(np.any(order != np.arange(order.size)))
    parameters = (run.weights[order], run.means[order], run.covariances[order])
    return _Replicate(parameters, relabelled, run.converged)


def _refit_chunk(task: _BootstrapTask, seeds: list[np.random.SeedSequence]) -> list[_Replicate]:
    """`_refit` for a chunk of replicates, in order (one call per worker task)."""
    return [_refit(task, seed) for seed in seeds]


def _check_jobs(n_jobs: Any) -> int:
    """Worker processes from n_jobs: a positive count, or -1 for every core."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer):
        raise ValueError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}")
    if n_jobs == -1:
        return os.cpu_count() or 1
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}")
    return int(n_jobs)


def _seeds(random_state: Any, n_boot: int) -> list[np.random.SeedSequence]:
    """One child SeedSequence per replicate, so replicate j is the same however work is split."""
    if isinstance(random_state, np.random.SeedSequence):
        root = random_state
    elif random_state is None or (
        isinstance(random_state, int | np.integer) and not isinstance(random_state, bool)
    ):
        root = np.random.SeedSequence(random_state)
    else:
        raise ValueError(
            f"random_state must be an int, a numpy SeedSequence or None, got {random_state!r}"
        )
    return root.spawn(n_boot)


def bootstrap(
    estimator: Any,
    X: Any,
    n_boot: int = 999,
    method: str = "nonparametric",
    random_state: Any = 0,
    n_jobs: int = 1,
) -> BootstrapResult:
    """Bootstrap replicates of a fitted GaussianMixtureEM's parameters on its data X (n, D).

    method: "nonparametric" (n points drawn with replacement), "parametric" (n points drawn from
    the fitted mixture by its `sample`) or "weighted" (every point weighted by n times a
    Dirichlet(1, ..., 1) draw, the weighted likelihood maximised). Each replicate is refitted by
    EM from the estimate with the estimator's max_iter, tol and reg_covar, and its components
    matched to the estimate's. Replicate j uses the j-th child of SeedSequence(random_state),
    so results do not depend on n_jobs (worker processes; -1: every core).
    """
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"method must be one of {BOOTSTRAP_METHODS}, got {method!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    jobs = _check_jobs(n_jobs)
    estimate = estimator.parameters_
    X = check_data(X, estimate.n_features)
    sampler = None
    if method == "parametric":
        sampler = copy.copy(estimator)
        sampler.callback = None  # a callback need not be picklable, and sampling never calls it
    task = _BootstrapTask(
        X, method, estimate, sampler, estimator.max_iter, estimator.tol, estimator.reg_covar
    )
    seeds = _seeds(random_state, int(n_boot))
    replicates = _run_replicates(task, seeds, jobs)
    return _collect(task, replicates)


def _run_replicates(
    task: _BootstrapTask, seeds: list[np.random.SeedSequence], jobs: int
) -> list[_Replicate]:
    """Every replicate's outcome, in seed order; chunks spread over `jobs` processes."""
    if jobs == 1:
        return _refit_chunk(task, seeds)
    n_chunks = min(len(seeds), jobs * CHUNKS_PER_JOB)
    bounds = np.linspace(0, len(seeds), n_chunks + 1).astype(int)
    chunks = [seeds[start:stop] for start, stop in pairwise(bounds)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = pool.map(_refit_chunk, [task] * len(chunks), chunks)
        return [replicate for chunk in results for replicate in chunk]


def _collect(task: _BootstrapTask, replicates: list[_Replicate]) -> BootstrapResult:
    """Stack the successful replicates and count the failed, relabelled and unconverged ones."""
    kept = [replicate for replicate in replicates if replicate.parameters is not None]
    n_components, n_features = task.estimate.means.shape
    stacked = [
        np.array([replicate.parameters[i] for replicate in kept]).reshape(len(kept), *shape)
        for i, shape in enumerate(
            ((n_components,), (n_components, n_features), (n_components, n_features, n_features))
        )
    ]
    return BootstrapResult(
        method=task.method,
        estimate=task.estimate,
        weights=stacked[0],
        means=stacked[1],
        covariances=stacked[2],
        n_boot=len(replicates),
        n_failed=len(replicates) - len(kept),
        n_relabelled=sum(replicate.relabelled for replicate in kept),
        n_unconverged=sum(not replicate.converged for replicate in kept),
    )
