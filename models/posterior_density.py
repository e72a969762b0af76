"""The models' log posterior density and its gradient, written out by hand and compiled by Numba.

NUTS evaluates the log density of `build_model`'s models and its gradient thousands of times,
in the unconstrained space of PyMC's value variables (raveled in `model.value_vars` order).
PyTensor compiles that from the model's graph, one Numba function per operation: hundreds of
functions to compile on an empty cache, and a graph to rewrite per model even on a warm one.
Here the same density is written as two loops (one per prior), with the gradient by hand: two
functions to compile once, cached by Numba beside this file, nothing to rewrite
(benchmarks/README.md has the measurements).

The formulas are PyMC's, term by term: the priors' log densities, the log-Jacobians of PyMC's
transforms (simplex for the weights, log for standard deviations and chi-square variables, the
Cholesky-correlation transform) and `em_reference`'s mixture likelihood. tests/test_posterior_
density.py checks value and gradient against the model's own compiled `logp_dlogp_function`,
for both priors, D = 1..4 and K = 1..4, so the model stays the definition and this its faster
evaluator.

Conventions: a component's covariance enters the likelihood either through its lower Cholesky
factor L (Sigma = L L^T; default prior, z = L^{-1}(x - mu)) or through a lower precision factor
F (Lambda = F F^T; Gauss-Wishart prior, u = F^T (x - mu)).
"""

from __future__ import annotations

import functools
from math import exp, log, pi, sqrt
from typing import Any

import numba
import numpy as np
import pymc as pm
from numba.core import cgutils
from numba.core.caching import FunctionCache
from numba.core.ccallback import CFunc
from numba.extending import intrinsic
from pymc.blocking import DictToArrayBijection, RaveledVars
from scipy.special import gammaln

from em_reference import MixtureParameters
from em_reference.variational import GaussWishartPrior
from models.mixture import (
    BARTLETT_CHI2,
    BARTLETT_NORMALS,
    PRIOR_SCALE_CHOLESKY,
    DefaultPrior,
    bartlett_point,
    check_shape,
    model_prior,
    observed_data,
    parameter_point,
    prior_centre_spread,
)

LOG_2PI = log(2.0 * pi)

DEFAULT_VALUES = (
    "weights_simplex__",
    "means",
    "standard_deviations_log__",
    "correlation_cholesky_choleskycorr__",
)
GAUSS_WISHART_VALUES = ("weights_simplex__", "wishart_chi2_log__", "wishart_normals", "means")
"""The value variables of each model, in `model.value_vars` order (see `value_names`)."""

PAIRED_VALUES = ("correlation_cholesky_choleskycorr__", "wishart_normals")
"""The value variables with one entry per pair of dimensions, absent at D = 1."""


def value_names(gauss_wishart: bool, n_features: int) -> tuple[str, ...]:
    """The value variables of a `build_model` model in D dimensions, in `value_vars` order."""
    names = GAUSS_WISHART_VALUES if gauss_wishart else DEFAULT_VALUES
    return tuple(name for name in names if n_features > 1 or name not in PAIRED_VALUES)


# ---------------------------------------------------------------------------------------------
# Numba kernels (float64 throughout; Numba's default, no fastmath, so a first (compiling) run and
# a later one give bit-identical values)

KERNEL_OPTIONS = {"cache": True, "error_model": "numpy"}
"""Numba's options for the kernels and callbacks. NumPy's error model: x / 0 is inf or NaN, as in
NumPy, where Python's model raises ZeroDivisionError, which a C callback cannot pass to nutpie
(it printed a traceback per call and returned an unset value). Where a standard deviation or a
chi-square variable underflows to 0 the value then comes out NaN and `_finish` rejects the point.
"""

kernel = numba.njit(**KERNEL_OPTIONS)


@kernel
def _simplex(free: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights w (K,) and log w (K,) from PyMC's simplex value (K-1,): softmax of (y, -sum y)."""
    z = np.empty(n_components)
    total = 0.0
    for j in range(n_components - 1):
        z[j] = free[j]
        total += free[j]
    z[n_components - 1] = -total
    top = z.max()
    scale = 0.0
    for j in range(n_components):
        scale += exp(z[j] - top)
    log_norm = top + log(scale)
    log_weights = z - log_norm
    return np.exp(log_weights), log_weights


@kernel
def _simplex_gradient(
    weights: np.ndarray, weight_gradient: np.ndarray, concentration: np.ndarray, out: np.ndarray
) -> float:
    """Dirichlet(a) log density plus the simplex log-Jacobian, less constants: sum a_k log w_k.

    Writes into out (K-1,) the gradient in the simplex value of that term plus the likelihood's,
    whose gradient in log w is weight_gradient (K,) (the components' responsibility sums).
    """
    n_components = weights.size
    value = 0.0
    both = concentration + weight_gradient  # d/d(log w) of the prior and likelihood terms
    total = both.sum()
    for j in range(n_components):
        value += concentration[j] * log(weights[j])
    last = both[n_components - 1] - total * weights[n_components - 1]
    for j in range(n_components - 1):
        out[j] = both[j] - total * weights[j] - last
    return value


@kernel
def _mixture_log_likelihood(
    X: np.ndarray,
    log_weights: np.ndarray,
    means: np.ndarray,
    factors: np.ndarray,
    precision: bool,
    grad_log_weights: np.ndarray,
    grad_means: np.ndarray,
    grad_factors: np.ndarray,
) -> float:
    """sum_i log sum_k w_k N(x_i | mu_k, Sigma_k) for X (n, D), and its gradient.

    factors (K, D, D) are lower Cholesky factors of the covariances (precision=False) or lower
    factors F of the precisions (precision=True). Writes the gradients in log w (K,), the means
    (K, D) and the factors' lower triangles (K, D, D).
    """
    n_points, n_features = X.shape
    n_components = means.shape[0]
    log_det = np.empty(n_components)  # log |Sigma_k|^{-1/2}
    inverse_diagonal = np.empty((n_components, n_features))
    for k in range(n_components):
        total = 0.0
        for j in range(n_features):
            total += log(factors[k, j, j])
            inverse_diagonal[k, j] = 1.0 / factors[k, j, j]
        log_det[k] = total if precision else -total
    offset = -0.5 * n_features * LOG_2PI
    terms = np.empty(n_components)
    residuals = np.empty((n_components, n_features))  # x - mu_k
    scaled = np.empty((n_components, n_features))  # z = L^{-1}(x - mu) or u = F^T (x - mu)
    masses = np.zeros(n_components)
    scaled_sums = np.zeros((n_components, n_features))
    outer_sums = np.zeros((n_components, n_features, n_features))  # lower triangles
    log_likelihood = 0.0
    for i in range(n_points):
        for k in range(n_components):
            for j in range(n_features):
                residuals[k, j] = X[i, j] - means[k, j]
            squares = 0.0
            for j in range(n_features):
                if precision:
                    value = 0.0
                    for m in range(j, n_features):
                        value += factors[k, m, j] * residuals[k, m]
                else:
                    value = residuals[k, j]
                    for m in range(j):
                        value -= factors[k, j, m] * scaled[k, m]
                    value *= inverse_diagonal[k, j]
                scaled[k, j] = value
                squares += value * value
            terms[k] = log_weights[k] + offset + log_det[k] - 0.5 * squares
        top = terms[0]
        for k in range(1, n_components):
            top = max(top, terms[k])
        scale = 0.0
        for k in range(n_components):
            terms[k] = exp(terms[k] - top)
            scale += terms[k]
        log_likelihood += top + log(scale)
        for k in range(n_components):
            weight = terms[k] / scale  # responsibility
            masses[k] += weight
            for j in range(n_features):
                scaled_sums[k, j] += weight * scaled[k, j]
                left = residuals[k, j] if precision else scaled[k, j]
                for m in range(j + 1):
                    outer_sums[k, j, m] += weight * left * scaled[k, m]
    grad_log_weights[:] = masses
    for k in range(n_components):
        if precision:
            _precision_gradients(
                factors[k], masses[k], scaled_sums[k], outer_sums[k], grad_means[k], grad_factors[k]
            )
        else:
            _cholesky_gradients(
                factors[k], masses[k], scaled_sums[k], outer_sums[k], grad_means[k], grad_factors[k]
            )
    return log_likelihood


@kernel
def _cholesky_gradients(
    lower: np.ndarray,
    mass: float,
    z_sum: np.ndarray,
    zz_sum: np.ndarray,
    grad_mean: np.ndarray,
    grad_lower: np.ndarray,
) -> None:
    """Gradients of sum_i r_i log N(x_i | mu, L L^T) in mu (D,) and L's lower triangle (D, D).

    With z_i = L^{-1}(x_i - mu): d/dmu = L^{-T} sum r z, d/dL = tril(L^{-T} sum r z z^T) -
    (sum r) diag(1 / L_jj). zz_sum holds the lower triangle of sum r z z^T.
    """
    n_features = lower.shape[0]
    _back_substitute(lower, z_sum, grad_mean)
    column = np.empty(n_features)
    solved = np.empty(n_features)
    for m in range(n_features):
        for j in range(n_features):
            column[j] = zz_sum[j, m] if j >= m else zz_sum[m, j]
        _back_substitute(lower, column, solved)
        for j in range(n_features):
            if j >= m:
                grad_lower[j, m] = solved[j]
            else:
                grad_lower[j, m] = 0.0
        grad_lower[m, m] -= mass / lower[m, m]


@kernel
def _back_substitute(lower: np.ndarray, rhs: np.ndarray, out: np.ndarray) -> None:
    """Out (D,) = L^{-T} rhs for lower triangular L (D, D)."""
    n_features = lower.shape[0]
    for j in range(n_features - 1, -1, -1):
        value = rhs[j]
        for m in range(j + 1, n_features):
            value -= lower[m, j] * out[m]
        out[j] = value / lower[j, j]


@kernel
def _precision_gradients(
    factor: np.ndarray,
    mass: float,
    u_sum: np.ndarray,
    ru_sum: np.ndarray,
    grad_mean: np.ndarray,
    grad_factor: np.ndarray,
) -> None:
    """Gradients of sum_i r_i log N(x_i | mu, (F F^T)^{-1}) in mu (D,) and F's lower triangle.

    With u_i = F^T (x_i - mu): d/dmu = F sum r u, d/dF = (sum r) diag(1 / F_jj) - tril(sum r
    (x - mu) u^T). ru_sum holds the lower triangle of sum r (x - mu) u^T.
    """
    n_features = factor.shape[0]
    for j in range(n_features):
        value = 0.0
        for m in range(j + 1):
            value += factor[j, m] * u_sum[m]
        grad_mean[j] = value
        for m in range(n_features):
            grad_factor[j, m] = -ru_sum[j, m] if m <= j else 0.0
        grad_factor[j, j] += mass / factor[j, j]


@kernel
def _default_log_density(
    point: np.ndarray,
    X: np.ndarray,
    concentration: np.ndarray,
    centre: np.ndarray,
    mean_sd: np.ndarray,
    sd_scale: np.ndarray,
    correlation_power: float,
    correlation_index: np.ndarray,
    gradient: np.ndarray,
) -> float:
    """The default model's log density at point (p,), less constants; writes its gradient (p,).

    correlation_index (D, D) gives, for each strictly lower entry of a correlation factor, its
    position in the component's correlation value (PyMC's spiral order); correlation_power is
    the LKJ density's and the transform's Jacobian's common exponent of 1 / row norm.
    """
    n_components, n_features = concentration.size, X.shape[1]
    n_pairs = n_features * (n_features - 1) // 2
    at_means = n_components - 1
    at_sds = at_means + n_components * n_features
    at_corr = at_sds + n_components * n_features
    weights, log_weights = _simplex(point[:at_means], n_components)
    means = point[at_means:at_sds].copy().reshape((n_components, n_features))
    log_sds = point[at_sds:at_corr].reshape((n_components, n_features))
    sds = np.exp(log_sds)
    corr = np.zeros((n_components, n_features, n_features))
    norms = np.ones((n_components, n_features))
    for k in range(n_components):
        corr[k, 0, 0] = 1.0
        for j in range(1, n_features):
            squares = 1.0
            for m in range(j):
                value = point[at_corr + k * n_pairs + correlation_index[j, m]]
                corr[k, j, m] = value
                squares += value * value
            norms[k, j] = sqrt(squares)
            corr[k, j, j] = 1.0
            for m in range(j + 1):
                corr[k, j, m] /= norms[k, j]
    lower = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        for j in range(n_features):
            for m in range(n_features):
                lower[k, j, m] = sds[k, j] * corr[k, j, m]
    grad_log_weights = np.empty(n_components)
    grad_means = np.empty((n_components, n_features))
    grad_lower = np.empty((n_components, n_features, n_features))
    value = _mixture_log_likelihood(
        X, log_weights, means, lower, False, grad_log_weights, grad_means, grad_lower
    )
    value += _simplex_gradient(weights, grad_log_weights, concentration, gradient[:at_means])
    for k in range(n_components):
        for j in range(n_features):
            shift = means[k, j] - centre[j]
            precision = 1.0 / (mean_sd[j] * mean_sd[j])
            value -= 0.5 * shift * shift * precision
            gradient[at_means + k * n_features + j] = grad_means[k, j] - shift * precision
            ratio = sds[k, j] / sd_scale[j]
            value += log_sds[k, j] - 0.5 * ratio * ratio
            grad_sd = 0.0
            for m in range(j + 1):
                grad_sd += grad_lower[k, j, m] * corr[k, j, m]
            gradient[at_sds + k * n_features + j] = 1.0 - ratio * ratio + grad_sd * sds[k, j]
        for j in range(1, n_features):
            value -= correlation_power * log(norms[k, j])
            # d/dC of the likelihood, projected onto the unit sphere of the row, plus the prior.
            along = 0.0
            for m in range(j + 1):
                along += grad_lower[k, j, m] * sds[k, j] * corr[k, j, m]
            for m in range(j):
                grad_corr = grad_lower[k, j, m] * sds[k, j]
                gradient[at_corr + k * n_pairs + correlation_index[j, m]] = (
                    grad_corr - (along + correlation_power) * corr[k, j, m]
                ) / norms[k, j]
    return value


@kernel
def _gauss_wishart_log_density(
    point: np.ndarray,
    X: np.ndarray,
    concentration: np.ndarray,
    chi2_shape: np.ndarray,
    scale_lower: np.ndarray,
    prior_mean: np.ndarray,
    mean_precision: float,
    gradient: np.ndarray,
) -> float:
    """The Gauss-Wishart model's log density at point (p,), less constants; writes its gradient.

    F_k = L_0 A_k with A_k's diagonal sqrt(chi2) and strictly lower part the standard normals
    (row-major order); chi2_shape (D,) are the chi-square variables' Gamma shapes.
    """
    n_components, n_features = concentration.size, X.shape[1]
    n_pairs = n_features * (n_features - 1) // 2
    at_chi2 = n_components - 1
    at_normals = at_chi2 + n_components * n_features
    at_means = at_normals + n_components * n_pairs
    weights, log_weights = _simplex(point[:at_chi2], n_components)
    log_chi2 = point[at_chi2:at_normals].reshape((n_components, n_features))
    means = point[at_means:].copy().reshape((n_components, n_features))
    bartlett = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        pair = 0
        for j in range(n_features):
            bartlett[k, j, j] = sqrt(exp(log_chi2[k, j]))
            for m in range(j):
                bartlett[k, j, m] = point[at_normals + k * n_pairs + pair]
                pair += 1
    factors = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        factors[k] = scale_lower @ bartlett[k]
    grad_log_weights = np.empty(n_components)
    grad_means = np.empty((n_components, n_features))
    grad_factors = np.empty((n_components, n_features, n_features))
    value = _mixture_log_likelihood(
        X, log_weights, means, factors, True, grad_log_weights, grad_means, grad_factors
    )
    value += _simplex_gradient(weights, grad_log_weights, concentration, gradient[:at_chi2])
    # The means' prior N(m_0, (beta_0 F F^T)^{-1}) is one more "point" m_0 seen by each mean,
    # with the precision factor sqrt(beta_0) F: the likelihood's terms with weight 1.
    root = sqrt(mean_precision)
    shift = np.empty(n_features)
    scaled = np.empty(n_features)
    for k in range(n_components):
        squares = 0.0
        for j in range(n_features):
            shift[j] = means[k, j] - prior_mean[j]
        for j in range(n_features):
            total = 0.0
            for m in range(j, n_features):
                total += factors[k, m, j] * shift[m]
            scaled[j] = root * total
            squares += scaled[j] * scaled[j]
            value += log(factors[k, j, j])
        value -= 0.5 * squares
        for j in range(n_features):
            total = 0.0
            for m in range(j + 1):
                total += factors[k, j, m] * scaled[m]
            grad_means[k, j] -= root * total
            for m in range(j + 1):
                grad_factors[k, j, m] -= root * shift[j] * scaled[m]
            grad_factors[k, j, j] += 1.0 / factors[k, j, j]
        grad_bartlett = scale_lower.T @ grad_factors[k]
        pair = 0
        for j in range(n_features):
            chi2 = exp(log_chi2[k, j])
            value += chi2_shape[j] * log_chi2[k, j] - 0.5 * chi2
            gradient[at_chi2 + k * n_features + j] = (
                chi2_shape[j] - 0.5 * chi2 + 0.5 * bartlett[k, j, j] * grad_bartlett[j, j]
            )
            for m in range(j):
                normal = point[at_normals + k * n_pairs + pair]
                value -= 0.5 * normal * normal
                gradient[at_normals + k * n_pairs + pair] = grad_bartlett[j, m] - normal
                pair += 1
        for j in range(n_features):
            gradient[at_means + k * n_features + j] = grad_means[k, j]
    return value


# ---------------------------------------------------------------------------------------------
# The kernels as C functions: what nutpie calls, and what `PosteriorDensity` calls through ctypes

CALLBACK_SIGNATURE = numba.types.int64(
    numba.types.uint64,
    numba.types.voidptr,
    numba.types.voidptr,
    numba.types.voidptr,
    numba.types.voidptr,
)
"""A density as a C function: (p, point (p,), gradient out (p,), log density out, table) ->
status; nutpie's log-density callback (its pointers are double* there: the same C ABI)."""

TABLE_SIZE = 10
"""Entries of a density's table (`PosteriorDensity.table`): n, D, K and seven array addresses."""


@intrinsic
def _pointer(typingctx: Any, address: Any) -> Any:
    """The memory at an integer address, as a void pointer (a Numba intrinsic)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return numba.types.voidptr(address), codegen


@kernel
def _finish(value: float, gradient: np.ndarray, logp: np.ndarray) -> int:
    """Write the log density into logp (1,); return the status nutpie reads.

    0, or 3 (gradient) or 4 (value) when not finite: nutpie then rejects the point (a divergence,
    or another initial point). Such a point's log density is written as -inf, so that
    `PosteriorDensity` callers (`start_point`) reject it as well.
    """
    status = 0
    if not np.all(np.isfinite(gradient)):
        status = 3
    elif not np.isfinite(value):
        status = 4
    logp[0] = -np.inf if status else value
    return status


def _default_callback(size, point_, gradient_, logp_, table_):
    """`_default_log_density` as a C function (`CALLBACK_SIGNATURE`, compiled by `callback`)."""
    table = numba.carray(table_, (TABLE_SIZE,), np.int64)
    n, d, k = table[0], table[1], table[2]
    point = numba.carray(point_, (size,), np.float64)
    gradient = numba.carray(gradient_, (size,), np.float64)
    scalars = numba.carray(_pointer(table[9]), (2,), np.float64)
    value = scalars[1] + _default_log_density(
        point,
        numba.carray(_pointer(table[3]), (n, d), np.float64),
        numba.carray(_pointer(table[4]), (k,), np.float64),
        numba.carray(_pointer(table[5]), (d,), np.float64),
        numba.carray(_pointer(table[6]), (d,), np.float64),
        numba.carray(_pointer(table[7]), (d,), np.float64),
        scalars[0],
        numba.carray(_pointer(table[8]), (d, d), np.int64),
        gradient,
    )
    return _finish(value, gradient, numba.carray(logp_, (1,), np.float64))


def _gauss_wishart_callback(size, point_, gradient_, logp_, table_):
    """`_gauss_wishart_log_density` as a C function (`CALLBACK_SIGNATURE`, see `callback`)."""
    table = numba.carray(table_, (TABLE_SIZE,), np.int64)
    n, d, k = table[0], table[1], table[2]
    point = numba.carray(point_, (size,), np.float64)
    gradient = numba.carray(gradient_, (size,), np.float64)
    scalars = numba.carray(_pointer(table[9]), (2,), np.float64)
    value = scalars[1] + _gauss_wishart_log_density(
        point,
        numba.carray(_pointer(table[3]), (n, d), np.float64),
        numba.carray(_pointer(table[4]), (k,), np.float64),
        numba.carray(_pointer(table[5]), (d,), np.float64),
        numba.carray(_pointer(table[6]), (d, d), np.float64),
        numba.carray(_pointer(table[7]), (d,), np.float64),
        scalars[0],
        gradient,
    )
    return _finish(value, gradient, numba.carray(logp_, (1,), np.float64))


@functools.cache
def callback(gauss_wishart: bool) -> CFunc:
    """One prior's density as a C function, compiled (or loaded from Numba's cache) on first use."""
    source = _gauss_wishart_callback if gauss_wishart else _default_callback
    return numba.cfunc(CALLBACK_SIGNATURE, **KERNEL_OPTIONS)(source)


def kernels_cached() -> bool:
    """True when Numba's cache holds both priors' C functions compiled from this source file."""
    return all(
        FunctionCache(source)._cache_file._load_index()
        for source in (_default_callback, _gauss_wishart_callback)
    )


# ---------------------------------------------------------------------------------------------
# The density of one model, and what NUTS and PyMC's trace need from it


class PosteriorDensity:
    """Log density and gradient of a `build_model` model (either prior) at raveled value points.

    Calling it with a point (p,) in `model.value_vars` order returns (log density, gradient
    (p,)), PyMC's value to rounding (constants included, so `lp` in sample_stats is
    PyMC's). `constrained(point)` gives every recorded variable. The data and priors are read
    from the model when built; `PosteriorDensity(model)` again after `pm.set_data`.
    Raises ValueError for a model `build_model` did not make or a flat one.
    """

    def __init__(self, model: pm.Model) -> None:
        prior = model_prior(model)
        if prior is None:
            raise ValueError("the model was not made by build_model, or has flat priors")
        self.X = np.ascontiguousarray(observed_data(model), dtype=np.float64)
        self.n_components = len(model.coords["component"])
        self.n_features = self.X.shape[1]
        self.gauss_wishart = isinstance(prior, GaussWishartPrior)
        self.names = tuple(value.name for value in model.value_vars)
        expected = value_names(self.gauss_wishart, self.n_features)
        if self.names != expected:
            raise ValueError(f"value variables {self.names} are not build_model's {expected}")
        if self.gauss_wishart:
            self._set_gauss_wishart(prior, model[PRIOR_SCALE_CHOLESKY].get_value())
        else:
            self._set_default(prior, *prior_centre_spread(model))
        self.layout = self._layout()
        self.table, self._table_arrays = self._table()
        self.table_address = self.table.ctypes.data
        self.callback = callback(self.gauss_wishart)

    def _set_default(self, prior: DefaultPrior, centre: np.ndarray, spread: np.ndarray) -> None:
        """The default prior's constants: Dirichlet(1), Normal, HalfNormal, LKJ(eta)."""
        n_components, n_features = self.n_components, self.n_features
        self.concentration = np.ones(n_components)
        self.centre = np.asarray(centre, dtype=np.float64)
        self.mean_sd = prior.mean_scale * np.asarray(spread, dtype=np.float64)
        self.sd_scale = prior.sd_scale * np.asarray(spread, dtype=np.float64)
        self.correlation_power = 2.0 * prior.eta + n_features - 1.0
        self.correlation_index = correlation_index(n_features)
        self.constant = (
            _dirichlet_constant(self.concentration)
            + n_components * np.sum(-np.log(self.mean_sd) - 0.5 * LOG_2PI)
            + n_components * np.sum(0.5 * np.log(2.0 / np.pi) - np.log(self.sd_scale))
            + (n_components * lkj_constant(prior.eta, n_features) if n_features > 1 else 0.0)
        )

    def _set_gauss_wishart(self, prior: GaussWishartPrior, scale_lower: np.ndarray) -> None:
        """The Gauss-Wishart prior's constants: Dirichlet, the Bartlett variables, means."""
        n_components, n_features = self.n_components, self.n_features
        n_pairs = n_features * (n_features - 1) // 2
        self.concentration = np.full(n_components, float(prior.weight_concentration))
        self.chi2_shape = 0.5 * (prior.degrees_of_freedom - np.arange(n_features))
        self.scale_lower = np.ascontiguousarray(scale_lower, dtype=np.float64)
        self.prior_mean = np.asarray(prior.mean, dtype=np.float64)
        self.mean_precision = float(prior.mean_precision)
        self.constant = (
            _dirichlet_constant(self.concentration)
            + n_components * np.sum(-gammaln(self.chi2_shape) - self.chi2_shape * np.log(2.0))
            - 0.5 * n_components * n_pairs * LOG_2PI
            + 0.5 * n_components * n_features * (np.log(self.mean_precision) - LOG_2PI)
        )

    @property
    def size(self) -> int:
        """Number of free scalars p, the length of a point."""
        return sum(place.stop - place.start for place, _ in self.layout.values())

    def __call__(self, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The log density (a 0-d array) and its gradient (p,) at point (p,)."""
        point = np.ascontiguousarray(point, dtype=np.float64)
        gradient = np.empty(point.size)
        value = np.empty(())
        addresses = (point.ctypes.data, gradient.ctypes.data, value.ctypes.data)
        self.callback.ctypes(point.size, *addresses, self.table_address)
        return value, gradient

    def _table(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The table (TABLE_SIZE,) `callback` reads, and the arrays it points to.

        The table holds n, D, K and the addresses of the data and constants; the arrays must
        live as long as it does.
        """
        if self.gauss_wishart:
            arrays = [self.concentration, self.chi2_shape, self.scale_lower, self.prior_mean]
            arrays += [np.zeros(0, dtype=np.int64)]
            scalars = np.array([self.mean_precision, self.constant])
        else:
            arrays = [self.concentration, self.centre, self.mean_sd, self.sd_scale]
            arrays += [self.correlation_index]
            scalars = np.array([self.correlation_power, self.constant])
        arrays = [np.ascontiguousarray(a) for a in (self.X, *arrays, scalars)]
        sizes = [*self.X.shape, self.n_components]
        return np.array(sizes + [a.ctypes.data for a in arrays], dtype=np.int64), arrays

    def constrained(self, points: np.ndarray) -> dict[str, np.ndarray]:
        """Every variable PyMC's trace records at points (..., p), by name.

        The value variables, the model's variables (weights (..., K), means (..., K, D), ...) and
        the covariances (..., K, D, D), for one point or a whole array of draws.
        """
        lead = points.shape[:-1]
        values = {
            name: points[..., place].reshape((*lead, *shape))
            for name, (place, shape) in self.layout.items()
        }
        free_weights = values["weights_simplex__"]
        z = np.concatenate([free_weights, -free_weights.sum(axis=-1, keepdims=True)], axis=-1)
        scaled = np.exp(z - z.max(axis=-1, keepdims=True))
        values["weights"] = scaled / scaled.sum(axis=-1, keepdims=True)
        rows, cols = np.tril_indices(self.n_features, k=-1)
        diagonal = np.arange(self.n_features)
        square = (*lead, self.n_components, self.n_features, self.n_features)
        if self.gauss_wishart:
            values["wishart_chi2"] = np.exp(values["wishart_chi2_log__"])
            bartlett = np.zeros(square)  # A_k
            bartlett[..., diagonal, diagonal] = np.sqrt(values["wishart_chi2"])
            if self.n_features > 1:
                bartlett[..., rows, cols] = values["wishart_normals"]
            inverse = np.linalg.inv(self.scale_lower @ bartlett)  # F_k^{-1}
            values["covariances"] = np.swapaxes(inverse, -1, -2) @ inverse
            return values
        values["standard_deviations"] = np.exp(values["standard_deviations_log__"])
        corr = np.zeros(square)
        corr[..., diagonal, diagonal] = 1.0
        if self.n_features > 1:
            free = values["correlation_cholesky_choleskycorr__"]
            corr[..., rows, cols] = free[..., self.correlation_index[rows, cols]]
            corr /= np.sqrt(np.sum(corr * corr, axis=-1, keepdims=True))
            values["correlation_cholesky"] = corr
        lower = values["standard_deviations"][..., None] * corr
        values["covariances"] = lower @ np.swapaxes(lower, -1, -2)
        return values

    def raveled_point(self, parameters: Any) -> RaveledVars:
        """The raveled value point (p,) at mixture parameters, with PyMC's layout of it.

        PyMC's forward transforms, in NumPy: `constrained` undoes them.
        """
        params = MixtureParameters.from_any(parameters)
        check_shape(params, self.n_components, self.n_features)
        log_weights = np.log(params.weights)
        values = {
            "weights_simplex__": log_weights[:-1] - log_weights.mean(),
            "means": np.array(params.means, dtype=np.float64),
        }
        if self.gauss_wishart:
            bartlett = bartlett_point(params, self.scale_lower)
            values["wishart_chi2_log__"] = np.log(bartlett[BARTLETT_CHI2])
            if self.n_features > 1:
                values["wishart_normals"] = bartlett[BARTLETT_NORMALS]
        else:
            free = parameter_point(params)
            values["standard_deviations_log__"] = np.log(free["standard_deviations"])
            if self.n_features > 1:
                corr = free["correlation_cholesky"]
                rows, cols = np.tril_indices(self.n_features, k=-1)
                free_corr = np.empty((self.n_components, rows.size))
                free_corr[:, self.correlation_index[rows, cols]] = (
                    corr[:, rows, cols] / corr[:, rows, rows]
                )
                values["correlation_cholesky_choleskycorr__"] = free_corr
        return DictToArrayBijection.map({name: values[name] for name in self.names})

    def _layout(self) -> dict[str, tuple[slice, tuple[int, ...]]]:
        """Each value variable's place in a point and its shape, in order."""
        n_components, n_features = self.n_components, self.n_features
        layout, start = {}, 0
        for name in self.names:
            if name == "weights_simplex__":
                shape: tuple[int, ...] = (n_components - 1,)
            elif name in PAIRED_VALUES:
                shape = (n_components, n_features * (n_features - 1) // 2)
            else:
                shape = (n_components, n_features)
            size = int(np.prod(shape))
            layout[name] = (slice(start, start + size), shape)
            start += size
        return layout


def correlation_index(n_features: int) -> np.ndarray:
    """Positions (D, D) of a correlation factor's strictly lower entries in its value vector.

    PyMC's `CholeskyCorrTransform` fills the factor from the vector in TensorFlow Probability's
    spiral order; entries on and above the diagonal are 0 here.
    """
    index = np.zeros((n_features, n_features), dtype=np.int64)
    if n_features < 2:
        return index
    size = n_features - 1
    order = np.arange(size * (size + 1) // 2)
    filled = np.concatenate([order[size:], order[::-1]]).reshape(size, size)
    rows, cols = np.tril_indices(size)
    index[rows + 1, cols] = filled[rows, cols]
    return index


def lkj_constant(eta: float, n_features: int) -> float:
    """Log normalising constant of the LKJ(eta) density of one D x D correlation matrix."""
    k = np.arange(1, n_features)
    return float(
        (n_features - 1) * gammaln(eta + 0.5 * (n_features - 1))
        - np.sum(0.5 * k * np.log(np.pi) + gammaln(eta + 0.5 * (n_features - 1 - k)))
    )


def _dirichlet_constant(concentration: np.ndarray) -> float:
    """Dirichlet(a)'s log normaliser plus the simplex transform's constant log K."""
    return float(
        gammaln(concentration.sum()) - gammaln(concentration).sum() + np.log(concentration.size)
    )
