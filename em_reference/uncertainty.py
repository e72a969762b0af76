"""How sure is EM? Standard errors from the information matrix and Wald intervals.

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

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from em_reference.em import expectation_step
from em_reference.likelihood import mixture_log_density, precisions_cholesky
from em_reference.parameters import MixtureArrays, MixtureParameters
from em_reference.validation import check_data

INTERVAL_PROB = 0.94
"""Probability of every interval EM reports (Wald and bootstrap), as for the posterior's."""

IDENTIFIABILITY_TOL = 1e-8
"""An eigenvalue of the information scaled to unit diagonal below this is taken as zero."""

_UNCONVERGED_ADVICE = "fit EM to convergence (smaller tol, larger max_iter) first"
LOADING_SHARE = 0.25
"""A parameter (or a column, `analysis.collapse`) is named as part of a flat direction if its
eigenvector entry is this large a share of the largest entry."""


# ---------------------------------------------------------------------------------------------
# Values


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
        loaded.update(np.flatnonzero(size >= LOADING_SHARE * size.max()).tolist())
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
    (0, 1); the weight of a single component (K = 1) is fixed at 1, its SE 0 and its interval
    the point [1, 1]. Variances (covariance diagonals): log(s) +- z se / s, mapped by exp, so
    they stay positive. Means and covariance off-diagonals are unconstrained entries (an
    off-diagonal can take any sign), so their interval is estimate +- z se on the natural scale;
    an off-diagonal bound is not forced inside +- sqrt(Sigma_ii Sigma_jj). z is the standard
    normal quantile of (1 + prob) / 2, and se the delta-method standard error of
    `standard_errors`.
    """
    params = MixtureParameters.from_any(parameters)
    z = normal_quantile(prob)
    errors = standard_errors(X, params, information)
    weight_bounds = _weight_bounds(params.weights, errors.weights, z)
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


def _weight_bounds(weights: np.ndarray, errors: np.ndarray, z: float) -> list[np.ndarray]:
    """Lower and upper Wald bounds (K,) of the weights, formed on the logit scale.

    With K = 1 the weight is 1 exactly, not estimated: its logit is infinite, so its bounds are
    the weight itself rather than the NaN the formula would give.
    """
    if weights.shape[0] == 1:
        return [weights.copy(), weights.copy()]
    logit = np.log(weights) - np.log1p(-weights)
    half = z * errors / (weights * (1.0 - weights))
    return [1.0 / (1.0 + np.exp(-(logit + sign * half))) for sign in (-1.0, 1.0)]


def normal_quantile(prob: float) -> float:
    """The z with P(|Z| <= z) = prob for a standard normal Z."""
    if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0.0 < prob < 1.0:
        raise ValueError(f"prob must be a number in (0, 1), got {prob!r}")
    return NormalDist().inv_cdf(0.5 + 0.5 * prob)
