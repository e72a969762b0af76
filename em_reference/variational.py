"""Variational Bayes for a full-covariance Gaussian mixture (Bishop, PRML §10.2), in NumPy only.

The model: weights pi ~ Dirichlet(alpha_0), and for each component a Gauss-Wishart prior,
Lambda_k ~ Wishart(W_0, nu_0) and mu_k | Lambda_k ~ N(m_0, (beta_0 Lambda_k)^-1); each point
x_n ~ N(mu_{z_n}, Lambda_{z_n}^-1) with z_n ~ pi. The mean-field posterior
q(Z) q(pi) q(mu, Lambda) is fitted by coordinate ascent (CAVI):

1. responsibilities r_nk from the current q(pi) q(mu, Lambda) (10.46, 10.49, 10.64-10.66);
2. the statistics N_k, xbar_k, S_k of those responsibilities (10.51-10.53);
3. q(pi) = Dirichlet(alpha) (10.58) and q(mu_k, Lambda_k) = N(m_k, (beta_k Lambda_k)^-1)
   Wishart(W_k, nu_k) (10.60-10.63, with nu_k = nu_0 + N_k);
4. the evidence lower bound (ELBO, 10.70-10.77) of the new q, constants included, so it is a
   true lower bound on log p(X).

As in EM, step 1 and the sums of step 2 are one blockwise pass over the data
(`em_reference.shifted_sums.expectation_pass`), so an iteration reads the data once; starts,
restarts and the stopping rule are EM's (`em_reference.base`). Every Wishart scale
W_k is held through its Cholesky factor (W_k = U_k U_k^T, U_k upper triangular), computed from
W_k^-1 as EM computes precision factors from covariances: no inverse or determinant is formed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from em_reference.base import (
    DegenerateFitError,
    FitSettings,
    MixtureEstimator,
    RunOutcome,
    best_run,
    explicit_start,
    iterate,
    warn_unless_converged,
)
from em_reference.em import expectation_step
from em_reference.likelihood import LOG_2PI, precisions_cholesky
from em_reference.parameters import MixtureParameters
from em_reference.shifted_sums import (
    ResponsibilitySums,
    covariances_from_sums,
    expectation_pass,
    masses_from_sums,
    means_from_sums,
    responsibility_sums,
    sums_about_weighted_means,
)
from em_reference.validation import (
    check_data,
    check_integer,
    check_non_negative,
    check_positive,
)

TOL = 1e-5
"""Stop after the iteration whose ELBO (total over points) improved by less than this."""

MAX_ITER = 500
"""Iterations at most; CAVI converges more slowly than EM near a flat optimum."""

START_REG_COVAR = 1e-6
"""Added to the covariances of a data-driven start (one EM M-step from k-means++ centres)."""

RESPONSIBILITY_SUM_TOLERANCE = 1e-8

SEED1000_PRIORS: Mapping[str, Any] = MappingProxyType(
    {
        "weight_concentration_prior": 1.5,
        "mean_precision_prior": 1.5,
        "mean_prior": (1.0, 1.0),
        "degrees_of_freedom_prior": 2.0,
        "covariance_prior": ((1.0, 0.0), (0.0, 1.0)),
    }
)
"""The seed(1000) notebook's priors: alpha_0 = 1.5, beta_0 = 1.5, m_0 = (1, 1), nu_0 = 2,
W_0 = I (so covariance_prior = W_0^-1 = I). Use as VariationalGaussianMixture(3, **SEED1000_PRIORS).
"""

LOG_PI = math.log(math.pi)
LOG_2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------
# Special functions (NumPy has neither; scipy is not allowed here)

DIGAMMA_ASYMPTOTIC_FROM = 10.0
# B_2j / (2j) for j = 1..7: psi(x) ~ ln x - 1/(2x) - sum_j B_2j / (2j x^2j). From x >= 10 the
# first omitted term is below 1e-16.
DIGAMMA_SERIES = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)


def digamma(values: Any) -> np.ndarray:
    """psi(x) = d ln Gamma(x) / dx for x > 0, elementwise (any shape).

    psi(x) = psi(x + 1) - 1/x moves every argument to x >= 10, where the asymptotic series is
    accurate to double precision.
    """
    x = np.array(values, dtype=np.float64)
    if not np.all(x > 0):
        raise ValueError(f"digamma needs positive arguments, got {x.tolist()}")
    result = np.zeros_like(x)
    small = x < DIGAMMA_ASYMPTOTIC_FROM
    while np.any(small):
        result[small] -= 1.0 / x[small]
        x[small] += 1.0
        small = x < DIGAMMA_ASYMPTOTIC_FROM
    inverse_square = 1.0 / (x * x)
    series = np.zeros_like(x)
    for coefficient in reversed(DIGAMMA_SERIES):  # Horner in 1/x^2
        series = (series + coefficient) * inverse_square
    return result + np.log(x) - 0.5 / x - series


def log_gamma(values: Any) -> np.ndarray:
    """Log-gamma ln Gamma(x) elementwise (any shape), by math.lgamma: arrays here are tiny."""
    x = np.asarray(values, dtype=np.float64)
    return np.array([math.lgamma(v) for v in x.ravel()]).reshape(x.shape)


# ---------------------------------------------------------------------------------------------
# The prior and the variational posterior, as values


@dataclass(frozen=True)
class GaussWishartPrior:
    """alpha_0, beta_0, m_0 (D,), nu_0 and W_0^-1 (D, D): the Dirichlet and Gauss-Wishart priors."""

    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: np.ndarray

    @property
    def scale_cholesky(self) -> np.ndarray:
        """U_0 (D, D), upper triangular, with W_0 = U_0 U_0^T."""
        return precisions_cholesky(self.covariance[None])[0]


@dataclass(frozen=True)
class VariationalPosterior:
    """q(pi) = Dir(alpha) and q(mu_k, Lambda_k) = N(m_k, (beta_k Lambda_k)^-1) W(W_k, nu_k).

    weight_concentration alpha (K,), mean_precision beta (K,), means m (K, D),
    degrees_of_freedom nu (K,), scale_cholesky U (K, D, D) upper triangular with W_k = U_k U_k^T.
    """

    weight_concentration: np.ndarray
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: np.ndarray
    scale_cholesky: np.ndarray


@dataclass(frozen=True)
class ComponentStatistics:
    """N_k (K,), xbar_k (K, D) and S_k (K, D, D) of responsibilities (10.51-10.53)."""

    masses: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


# ---------------------------------------------------------------------------------------------
# Expectations under q (10.64-10.66)


def log_det_cholesky(cholesky: np.ndarray) -> np.ndarray:
    """Log-determinant ln |U_k U_k^T| = 2 sum_i ln (U_k)_ii of triangular U (K, D, D): (K,)."""
    return 2.0 * np.sum(np.log(np.diagonal(cholesky, 0, -2, -1)), axis=-1)


def expected_log_weights(weight_concentration: np.ndarray) -> np.ndarray:
    """E[ln pi_k] = psi(alpha_k) - psi(sum_j alpha_j) (10.66): (K,)."""
    return digamma(weight_concentration) - digamma(weight_concentration.sum())


def expected_log_det_precisions(
    degrees_of_freedom: np.ndarray, scale_cholesky: np.ndarray
) -> np.ndarray:
    """E[ln |Lambda_k|] = sum_i psi((nu_k + 1 - i) / 2) + D ln 2 + ln |W_k| (10.65): (K,)."""
    n_features = scale_cholesky.shape[-1]
    halves = 0.5 * (degrees_of_freedom[:, None] - np.arange(n_features)[None, :])  # (K, D)
    return digamma(halves).sum(axis=1) + n_features * LOG_2 + log_det_cholesky(scale_cholesky)


def responsibility_terms(posterior: VariationalPosterior) -> tuple[np.ndarray, np.ndarray]:
    """The log of rho_nk (10.46) in the form of EM's ln(w_k N(x_n | m_k, P_k)): offsets and P_k.

    With E[(x - mu_k)^T Lambda_k (x - mu_k)] = D / beta_k + nu_k (x - m_k)^T W_k (x - m_k)
    (10.64), ln rho_nk = E[ln pi_k] + E[ln |Lambda_k|] / 2 - D ln(2 pi) / 2 - D / (2 beta_k)
    - (x - m_k)^T (nu_k W_k) (x - m_k) / 2. That is ln N(x_n | m_k, (nu_k W_k)^-1) plus a
    per-component offset, so EM's E-step evaluates it with precision factors P_k =
    sqrt(nu_k) U_k and log-weights equal to the offsets (K,) (they need not sum to one).
    """
    n_features = posterior.means.shape[1]
    precisions_chol = (
        np.sqrt(posterior.degrees_of_freedom)[:, None, None] * posterior.scale_cholesky
    )
    log_offsets = (
        expected_log_weights(posterior.weight_concentration)
        + 0.5 * expected_log_det_precisions(posterior.degrees_of_freedom, posterior.scale_cholesky)
        - 0.5 * log_det_cholesky(precisions_chol)
        - 0.5 * n_features / posterior.mean_precision
    )
    return log_offsets, precisions_chol


def log_responsibilities(X: np.ndarray, posterior: VariationalPosterior) -> np.ndarray:
    """Log-responsibilities ln r_nk = ln rho_nk - ln sum_j rho_nj (10.49) of X (n, D): (n, K)."""
    log_offsets, precisions_chol = responsibility_terms(posterior)
    return expectation_step(X, np.exp(log_offsets), posterior.means, precisions_chol)[0]


def responsibility_entropy(
    log_normaliser_total: float,
    sums: ResponsibilitySums,
    log_offsets: np.ndarray,
    precisions_chol: np.ndarray,
) -> float:
    """-sum_nk r_nk ln r_nk (minus 10.75) from the pass's totals, without the (n, K) array.

    ln r_nk = ln rho_nk - ln sum_j rho_nj, so the entropy is sum_n ln sum_j rho_nj (the pass's
    total) minus sum_nk r_nk ln rho_nk; the latter needs only R_k and the scatter about m_k,
    S_k (the sums' shifts are the m_k): R_k (offset_k + ln|P_k| - D ln(2 pi) / 2)
    - tr(P_k^T S_k P_k) / 2.
    """
    n_features = precisions_chol.shape[-1]
    quadratic = np.einsum("kij,kij->k", precisions_chol, sums.second @ precisions_chol)
    expected_log_rho = (
        sums.totals
        * (log_offsets + 0.5 * log_det_cholesky(precisions_chol) - 0.5 * n_features * LOG_2PI)
        - 0.5 * quadratic
    )
    return log_normaliser_total - float(expected_log_rho.sum())


def variational_pass(
    X: np.ndarray, posterior: VariationalPosterior
) -> tuple[float, ResponsibilitySums]:
    """One pass over X (n, D): the entropy of q(Z) and the sums R_k, s_k, S_k about the m_k."""
    log_offsets, precisions_chol = responsibility_terms(posterior)
    total, sums = expectation_pass(X, np.exp(log_offsets), posterior.means, precisions_chol)
    return responsibility_entropy(total, sums, log_offsets, precisions_chol), sums


# ---------------------------------------------------------------------------------------------
# The updates of q(pi) q(mu, Lambda) (10.51-10.63)


def component_statistics(sums: ResponsibilitySums) -> ComponentStatistics:
    """N_k = sum_n r_nk (10.51), xbar_k (10.52), S_k (10.53), from the sums about any shifts."""
    masses = masses_from_sums(sums)
    means = means_from_sums(sums, masses)
    return ComponentStatistics(masses, means, covariances_from_sums(sums, masses, means, 0.0))


def update_weight_concentration(prior: GaussWishartPrior, masses: np.ndarray) -> np.ndarray:
    """alpha_k = alpha_0 + N_k (10.58): (K,)."""
    return prior.weight_concentration + masses


def update_mean_precision(prior: GaussWishartPrior, masses: np.ndarray) -> np.ndarray:
    """beta_k = beta_0 + N_k (10.60): (K,)."""
    return prior.mean_precision + masses


def update_means(
    prior: GaussWishartPrior, stats: ComponentStatistics, mean_precision: np.ndarray
) -> np.ndarray:
    """m_k = (beta_0 m_0 + N_k xbar_k) / beta_k (10.61): (K, D)."""
    weighted = prior.mean_precision * prior.mean + stats.masses[:, None] * stats.means
    return weighted / mean_precision[:, None]


def update_scale_inverse(prior: GaussWishartPrior, stats: ComponentStatistics) -> np.ndarray:
    """W_k^-1 = W_0^-1 + N_k S_k + beta_0 N_k / (beta_0 + N_k) (xbar_k - m_0)(...)^T (10.62)."""
    offsets = stats.means - prior.mean  # (K, D)
    shrink = prior.mean_precision * stats.masses / (prior.mean_precision + stats.masses)
    return (
        prior.covariance
        + stats.masses[:, None, None] * stats.covariances
        + shrink[:, None, None] * offsets[:, :, None] * offsets[:, None, :]
    )


def update_degrees_of_freedom(prior: GaussWishartPrior, masses: np.ndarray) -> np.ndarray:
    """nu_k = nu_0 + N_k (10.63; some printings have a misprint there): (K,)."""
    return prior.degrees_of_freedom + masses


def update_posterior(prior: GaussWishartPrior, stats: ComponentStatistics) -> VariationalPosterior:
    """The optimal q(pi) q(mu, Lambda) given the responsibilities' statistics."""
    mean_precision = update_mean_precision(prior, stats.masses)
    return VariationalPosterior(
        weight_concentration=update_weight_concentration(prior, stats.masses),
        mean_precision=mean_precision,
        means=update_means(prior, stats, mean_precision),
        degrees_of_freedom=update_degrees_of_freedom(prior, stats.masses),
        scale_cholesky=precisions_cholesky(update_scale_inverse(prior, stats)),
    )


# ---------------------------------------------------------------------------------------------
# The evidence lower bound (10.70-10.77), constants included


def log_dirichlet_normaliser(concentration: np.ndarray) -> float:
    """Dirichlet log-normaliser ln C(alpha) = ln Gamma(sum_k alpha_k) - sum_k ln Gamma(alpha_k)."""
    return float(log_gamma(concentration.sum()) - log_gamma(concentration).sum())


def log_wishart_normaliser(
    scale_cholesky: np.ndarray, degrees_of_freedom: np.ndarray
) -> np.ndarray:
    """The Wishart log-normaliser ln B(W, nu) (B.79), scale factors (..., D, D), nu (...,): (...).

    ln B = -nu/2 ln|W| - nu D/2 ln 2 - D(D-1)/4 ln pi - sum_i ln Gamma((nu + 1 - i)/2).
    """
    n_features = scale_cholesky.shape[-1]
    nu = np.asarray(degrees_of_freedom, dtype=np.float64)
    halves = 0.5 * (nu[..., None] - np.arange(n_features))
    return (
        -0.5 * nu * log_det_cholesky(scale_cholesky)
        - 0.5 * nu * n_features * LOG_2
        - 0.25 * n_features * (n_features - 1) * LOG_PI
        - log_gamma(halves).sum(axis=-1)
    )


def wishart_entropy(
    scale_cholesky: np.ndarray, degrees_of_freedom: np.ndarray, expected_log_det: np.ndarray
) -> np.ndarray:
    """H[W(Lambda | W_k, nu_k)] = -ln B - (nu - D - 1)/2 E[ln|Lambda|] + nu D / 2 (B.82): (K,)."""
    n_features = scale_cholesky.shape[-1]
    return (
        -log_wishart_normaliser(scale_cholesky, degrees_of_freedom)
        - 0.5 * (degrees_of_freedom - n_features - 1) * expected_log_det
        + 0.5 * degrees_of_freedom * n_features
    )


def quadratic_form(scale_cholesky: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """v_k^T W_k v_k = ||U_k^T v_k||^2 for vectors (K, D): (K,)."""
    projected = np.einsum("kd,kde->ke", vectors, scale_cholesky)
    return np.sum(projected * projected, axis=1)


def trace_product(scale_cholesky: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """tr(A_k W_k) = tr(U_k^T A_k U_k) for symmetric matrices A (K, D, D) or (D, D): (K,)."""
    return np.einsum("kij,kij->k", scale_cholesky, matrices @ scale_cholesky)


def expected_log_likelihood(
    posterior: VariationalPosterior, stats: ComponentStatistics, expected_log_det: np.ndarray
) -> float:
    """E[ln p(X | Z, mu, Lambda)] (10.71).

    = 1/2 sum_k N_k {E ln|Lambda_k| - D/beta_k - nu_k tr(S_k W_k)
                     - nu_k (xbar_k - m_k)^T W_k (xbar_k - m_k) - D ln(2 pi)}.
    """
    n_features = posterior.means.shape[1]
    nu, chol = posterior.degrees_of_freedom, posterior.scale_cholesky
    per_component = (
        expected_log_det
        - n_features / posterior.mean_precision
        - nu * trace_product(chol, stats.covariances)
        - nu * quadratic_form(chol, stats.means - posterior.means)
        - n_features * LOG_2PI
    )
    return float(0.5 * np.sum(stats.masses * per_component))


def expected_log_assignments(masses: np.ndarray, expected_log_pi: np.ndarray) -> float:
    """E[ln p(Z | pi)] = sum_nk r_nk E[ln pi_k] = sum_k N_k E[ln pi_k] (10.72)."""
    return float(np.sum(masses * expected_log_pi))


def expected_log_weight_prior(prior: GaussWishartPrior, expected_log_pi: np.ndarray) -> float:
    """E[ln p(pi)] = ln C(alpha_0) + (alpha_0 - 1) sum_k E[ln pi_k] (10.73)."""
    concentration = np.full(expected_log_pi.shape[0], prior.weight_concentration)
    return log_dirichlet_normaliser(concentration) + float(
        (prior.weight_concentration - 1.0) * expected_log_pi.sum()
    )


def expected_log_gauss_wishart_prior(
    prior: GaussWishartPrior, posterior: VariationalPosterior, expected_log_det: np.ndarray
) -> float:
    """E[ln p(mu, Lambda)] (10.74).

    = 1/2 sum_k {D ln(beta_0 / 2 pi) + E ln|Lambda_k| - D beta_0 / beta_k
                 - beta_0 nu_k (m_k - m_0)^T W_k (m_k - m_0)}
      + K ln B(W_0, nu_0) + (nu_0 - D - 1)/2 sum_k E ln|Lambda_k| - 1/2 sum_k nu_k tr(W_0^-1 W_k).
    """
    n_components, n_features = posterior.means.shape
    beta_0, nu_0 = prior.mean_precision, prior.degrees_of_freedom
    nu, chol = posterior.degrees_of_freedom, posterior.scale_cholesky
    gaussian = (
        n_features * (math.log(beta_0) - LOG_2PI)
        + expected_log_det
        - n_features * beta_0 / posterior.mean_precision
        - beta_0 * nu * quadratic_form(chol, posterior.means - prior.mean)
    )
    wishart = (
        n_components * float(log_wishart_normaliser(prior.scale_cholesky, nu_0))
        + 0.5 * (nu_0 - n_features - 1) * expected_log_det.sum()
        - 0.5 * np.sum(nu * trace_product(chol, prior.covariance))
    )
    return float(0.5 * gaussian.sum() + wishart)


def expected_log_q_weights(posterior: VariationalPosterior, expected_log_pi: np.ndarray) -> float:
    """E[ln q(pi)] = sum_k (alpha_k - 1) E[ln pi_k] + ln C(alpha) (10.76)."""
    alpha = posterior.weight_concentration
    return float(np.sum((alpha - 1.0) * expected_log_pi)) + log_dirichlet_normaliser(alpha)


def expected_log_q_gauss_wishart(
    posterior: VariationalPosterior, expected_log_det: np.ndarray
) -> float:
    """E[ln q(mu, Lambda)] (10.77).

    = sum_k {1/2 E ln|Lambda_k| + D/2 ln(beta_k / 2 pi) - D/2 - H[q(Lambda_k)]}.
    """
    n_features = posterior.means.shape[1]
    entropy = wishart_entropy(
        posterior.scale_cholesky, posterior.degrees_of_freedom, expected_log_det
    )
    per_component = (
        0.5 * expected_log_det
        + 0.5 * n_features * (np.log(posterior.mean_precision) - LOG_2PI)
        - 0.5 * n_features
        - entropy
    )
    return float(per_component.sum())


def evidence_lower_bound(
    prior: GaussWishartPrior,
    posterior: VariationalPosterior,
    stats: ComponentStatistics,
    entropy: float,
) -> float:
    """The ELBO (10.70) of q(Z) (through its statistics and entropy) and q(pi) q(mu, Lambda).

    E[ln p(X, Z, pi, mu, Lambda)] - E[ln q]: every normalising constant is kept, so the value
    is a lower bound on the log evidence ln p(X) itself.
    """
    log_pi = expected_log_weights(posterior.weight_concentration)
    log_det = expected_log_det_precisions(posterior.degrees_of_freedom, posterior.scale_cholesky)
    return (
        expected_log_likelihood(posterior, stats, log_det)
        + expected_log_assignments(stats.masses, log_pi)
        + expected_log_weight_prior(prior, log_pi)
        + expected_log_gauss_wishart_prior(prior, posterior, log_det)
        + entropy
        - expected_log_q_weights(posterior, log_pi)
        - expected_log_q_gauss_wishart(posterior, log_det)
    )


# ---------------------------------------------------------------------------------------------
# One CAVI run


def run_vb(
    X: np.ndarray,
    prior: GaussWishartPrior,
    start: ResponsibilitySums,
    max_iter: int,
    tol: float,
) -> RunOutcome[VariationalPosterior]:
    """CAVI from the sums of starting responsibilities until the ELBO improves by < tol.

    q(pi) q(mu, Lambda) is first set from the start; each iteration then makes one pass (new
    responsibilities, their entropy and sums), updates q(pi) q(mu, Lambda), and records the
    ELBO of the pair, as scikit-learn does. DegenerateFitError if the ELBO is not finite.
    """

    def step(posterior: VariationalPosterior, iteration: int) -> tuple[VariationalPosterior, float]:
        """One CAVI sweep: q(Z) from q(pi) q(mu, Lambda), then their update and the ELBO."""
        entropy, sums = variational_pass(X, posterior)
        stats = component_statistics(sums)
        posterior = update_posterior(prior, stats)
        elbo = evidence_lower_bound(prior, posterior, stats, entropy)
        if not np.isfinite(elbo):
            raise DegenerateFitError(
                f"the ELBO after iteration {iteration} is {elbo}: the data, the priors or the "
                "start are degenerate"
            )
        return posterior, elbo

    start_posterior = update_posterior(prior, component_statistics(start))
    return iterate(step, start_posterior, [], max_iter, tol)


# ---------------------------------------------------------------------------------------------
# Priors and starts, checked once at fit


def _check_vector(name: str, value: Any, n_features: int) -> np.ndarray:
    """Return value as a finite float array (D,), raising ValueError naming `name` otherwise."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers of shape ({n_features},): {error}") from None
    if array.shape != (n_features,) or not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} must be finite numbers of shape ({n_features},), got {array.tolist()}"
        )
    return array


def _check_covariance_prior(value: Any, n_features: int) -> np.ndarray:
    """Return W_0^-1 as a symmetric positive definite (D, D) array, or raise ValueError."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"covariance_prior must be a ({n_features}, {n_features}) matrix: {error}"
        ) from None
    if array.shape != (n_features, n_features) or not np.all(np.isfinite(array)):
        raise ValueError(
            f"covariance_prior must be a finite ({n_features}, {n_features}) matrix, "
            f"got {array.tolist()}"
        )
    if not np.allclose(array, array.T, rtol=0, atol=1e-8 * max(1.0, np.max(np.abs(array)))):
        raise ValueError(f"covariance_prior must be symmetric, got {array.tolist()}")
    if np.any(np.linalg.eigvalsh(array) <= 0):
        raise ValueError(f"covariance_prior must be positive definite, got {array.tolist()}")
    return 0.5 * (array + array.T)


def resolve_prior(
    X: np.ndarray,
    n_components: int,
    weight_concentration_prior: Any,
    mean_precision_prior: Any,
    mean_prior: Any,
    degrees_of_freedom_prior: Any,
    covariance_prior: Any,
) -> GaussWishartPrior:
    """The prior with every None replaced by scikit-learn's data-scaled default, checked."""
    n_features = X.shape[1]
    if weight_concentration_prior is None:
        alpha_0 = 1.0 / n_components
    else:
        alpha_0 = check_positive("weight_concentration_prior", weight_concentration_prior)
    if mean_precision_prior is None:
        beta_0 = 1.0
    else:
        beta_0 = check_positive("mean_precision_prior", mean_precision_prior)
    if covariance_prior is None and X.shape[0] < 2:
        raise ValueError(
            "covariance_prior must be given when X has 1 sample (n_samples = 1): a single point "
            "has no covariance to default to"
        )
    if mean_prior is None or covariance_prior is None:
        data_mean, data_covariance = data_moments(X)
    m_0 = data_mean if mean_prior is None else _check_vector("mean_prior", mean_prior, n_features)
    if degrees_of_freedom_prior is None:
        nu_0 = float(n_features)
    else:
        nu_0 = check_non_negative("degrees_of_freedom_prior", degrees_of_freedom_prior)
        if nu_0 <= n_features - 1:
            raise ValueError(
                f"degrees_of_freedom_prior must be > D - 1 = {n_features - 1}, got {nu_0!r}"
            )
    if covariance_prior is None:
        if np.any(np.linalg.eigvalsh(data_covariance) <= 0):
            raise ValueError(
                "covariance_prior: the default, the data's covariance, is not positive definite "
                "(a column is constant or columns are collinear); give covariance_prior"
            )
        psi_0 = data_covariance
    else:
        psi_0 = _check_covariance_prior(covariance_prior, n_features)
    return GaussWishartPrior(alpha_0, beta_0, m_0, nu_0, psi_0)


def data_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean (D,) and covariance (D, D, ddof = 1) of X (n, D), in one blockwise pass.

    EM's sums with every responsibility 1, about the first point, give both.
    """
    sums = responsibility_sums(X, np.ones((X.shape[0], 1)), X[:1])
    n_points = np.array([float(X.shape[0])])
    mean = means_from_sums(sums, n_points)
    scatter = covariances_from_sums(sums, n_points, mean, 0.0) * X.shape[0]
    return mean[0], scatter[0] / max(X.shape[0] - 1, 1)


def check_responsibilities(value: Any, n_points: int, n_components: int) -> np.ndarray:
    """Return starting responsibilities (n, K), raising ValueError unless rows are probabilities."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (n_points, n_components):
        raise ValueError(
            f"init responsibilities must have shape (n, K) = ({n_points}, {n_components}), "
            f"got {array.shape}"
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError("init responsibilities must be finite and non-negative")
    worst = float(np.max(np.abs(array.sum(axis=1) - 1.0)))
    if worst > RESPONSIBILITY_SUM_TOLERANCE:
        raise ValueError(f"init responsibilities' rows must sum to 1; one is off by {worst:.3g}")
    return array


def sums_from_parameters(X: np.ndarray, parameters: MixtureParameters) -> ResponsibilitySums:
    """The sums of the responsibilities that mixture parameters give X (EM's E-step)."""
    precisions_chol = precisions_cholesky(parameters.covariances)
    return expectation_pass(X, parameters.weights, parameters.means, precisions_chol)[1]


# ---------------------------------------------------------------------------------------------
# The estimator


class VariationalGaussianMixture(MixtureEstimator):
    """Bayesian Gaussian mixture with full covariances, fitted by CAVI (Bishop, PRML §10.2).

    Parameters
    ----------
    n_components : int
        K, the number of components (>= 1); components the data do not need keep alpha_k near
        alpha_0 and weights near zero.
    weight_concentration_prior : float or None
        alpha_0 of the symmetric Dirichlet prior on the weights; default 1 / K.
    mean_precision_prior : float or None
        beta_0: mu_k | Lambda_k ~ N(m_0, (beta_0 Lambda_k)^-1); default 1.
    mean_prior : array (D,) or None
        m_0; default the mean of X.
    degrees_of_freedom_prior : float or None
        nu_0 (> D - 1) of the Wishart prior on each precision; default D.
    covariance_prior : array (D, D) or None
        W_0^-1, the inverse of the Wishart scale; default the covariance of X (ddof = 1).
        (The defaults are scikit-learn's BayesianGaussianMixture's; `SEED1000_PRIORS` holds the
        seed(1000) notebook's.)
    init : "kmeans++", "random", parameters, or responsibilities (n, K)
        The start: k-means++ seeding or K random data points, each followed by one EM M-step
        from hard assignments, then EM's responsibilities of those parameters; or explicit
        parameters (weights, means, covariances as attributes or keys); or explicit
        responsibilities. q(pi) q(mu, Lambda) is first computed from the start's responsibilities.
    n_init : int
        Runs from data-driven starts; the one with the highest final ELBO is kept.
    max_iter, tol : int, float
        Stop after the iteration whose ELBO (total, not per point) improved by less than `tol`,
        or after `max_iter` iterations.
    random_state : int, numpy Generator or None
        Seed for data-driven starts and for `sample_posterior`.

    Fitted attributes (scikit-learn's names and meanings; Bishop's symbols in brackets):
    `weight_concentration_` [alpha_k] (K,), `mean_precision_` [beta_k] (K,), `means_` [m_k]
    (K, D), `degrees_of_freedom_` [nu_k] (K,), `scale_cholesky_` (K, D, D) upper triangular
    with W_k = U_k U_k^T; `weights_` = E_q[pi] (K,), `covariances_` = (nu_k W_k)^-1 =
    E_q[Lambda_k]^-1 (K, D, D), `precisions_cholesky_` = sqrt(nu_k) U_k; `lower_bound_` (the
    final ELBO, a bound on ln p(X)), `lower_bound_history_` (one ELBO per iteration), `n_iter_`,
    `converged_`, `n_failed_starts_` (as EM's), `n_features_in_`, and the priors actually used:
    `weight_concentration_prior_`, `mean_precision_prior_`, `mean_prior_`,
    `degrees_of_freedom_prior_`, `covariance_prior_`; `parameters_` holds `weights_`,
    `means_` and `covariances_` as one `MixtureParameters`, as EM's does.

    """

    _fitted_attribute = "weight_concentration_"

    def __init__(
        self,
        n_components: int = 1,
        *,
        weight_concentration_prior: float | None = None,
        mean_precision_prior: float | None = None,
        mean_prior: Any = None,
        degrees_of_freedom_prior: float | None = None,
        covariance_prior: Any = None,
        init: Any = "kmeans++",
        n_init: int = 1,
        max_iter: int = MAX_ITER,
        tol: float = TOL,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_components = n_components
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> VariationalGaussianMixture:
        """Fit q to data X (n, D); returns self. `y` is ignored."""
        settings = self._fit_settings(X)
        X = settings.X
        prior = resolve_prior(
            X,
            settings.n_components,
            self.weight_concentration_prior,
            self.mean_precision_prior,
            self.mean_prior,
            self.degrees_of_freedom_prior,
            self.covariance_prior,
        )
        starts = self._starting_sums(settings)

        def run(start: ResponsibilitySums) -> RunOutcome[VariationalPosterior]:
            """CAVI from one start with the checked settings."""
            return run_vb(X, prior, start, settings.max_iter, settings.tol)

        best, n_failed = best_run(run, starts, "VB")
        warn_unless_converged(best, "VB", "ELBO", settings.max_iter, settings.tol)
        self._set_fitted(best, prior, X.shape[1])
        self.n_failed_starts_ = n_failed
        return self

    def _starting_sums(self, settings: FitSettings) -> list[ResponsibilitySums]:
        """The sums of the n_init starting responsibilities, explicit or drawn from the data."""
        X = settings.X
        starts = self._starts(settings, START_REG_COVAR, "parameters or responsibilities")
        if starts is not None:
            return [sums_from_parameters(X, MixtureParameters(*start)) for start in starts]
        if isinstance(self.init, np.ndarray | list | tuple):
            responsibilities = check_responsibilities(self.init, X.shape[0], settings.n_components)
            return [sums_about_weighted_means(X, responsibilities)]
        start = explicit_start(self.init, settings.n_components, X.shape[1])
        return [sums_from_parameters(X, start)]

    def _set_fitted(
        self, run: RunOutcome[VariationalPosterior], prior: GaussWishartPrior, n_features: int
    ) -> None:
        """Store the chosen run's q, the scikit-learn summaries of it and the priors used."""
        q = run.state
        self.weight_concentration_ = q.weight_concentration
        self.mean_precision_ = q.mean_precision
        self.means_ = q.means
        self.degrees_of_freedom_ = q.degrees_of_freedom
        self.scale_cholesky_ = q.scale_cholesky
        self.weights_ = q.weight_concentration / q.weight_concentration.sum()
        self.precisions_cholesky_ = np.sqrt(q.degrees_of_freedom)[:, None, None] * q.scale_cholesky
        self.covariances_ = _covariances_from_precisions_cholesky(self.precisions_cholesky_)
        self.lower_bound_ = run.objective
        self.lower_bound_history_ = list(run.objective_history)
        self.n_iter_ = run.n_iter
        self.converged_ = run.converged
        self.n_features_in_ = n_features
        self.weight_concentration_prior_ = prior.weight_concentration
        self.mean_precision_prior_ = prior.mean_precision
        self.mean_prior_ = prior.mean
        self.degrees_of_freedom_prior_ = prior.degrees_of_freedom
        self.covariance_prior_ = prior.covariance

    # -- using the fit ----------------------------------------------------------------------

    @property
    def posterior_(self) -> VariationalPosterior:
        """The fitted q(pi) q(mu, Lambda) as one value."""
        self._check_fitted()
        return VariationalPosterior(
            self.weight_concentration_,
            self.mean_precision_,
            self.means_,
            self.degrees_of_freedom_,
            self.scale_cholesky_,
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities r_nk (n, K) of new points under the fitted q (10.49)."""
        posterior = self.posterior_
        return np.exp(log_responsibilities(check_data(X, self.n_features_in_), posterior))

    def predict(self, X: Any) -> np.ndarray:
        """The component with the highest responsibility for each point (n,)."""
        return np.argmax(self.predict_proba(X), axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """The log-normaliser ln sum_k rho_nk (10.46) of each point of X (n, D): (n,).

        The normaliser of the responsibilities, E_q[ln pi_k] + E_q[ln N(x_n | mu_k, Lambda_k)]
        summed over k in the exponent; scikit-learn's BayesianGaussianMixture.score_samples. Not
        a normalised density: the ELBO, not this, bounds ln p(X).
        """
        posterior = self.posterior_
        log_offsets, precisions_chol = responsibility_terms(posterior)
        X = check_data(X, self.n_features_in_)
        return expectation_step(X, np.exp(log_offsets), posterior.means, precisions_chol)[1]

    def score(self, X: Any, y: Any = None) -> float:
        """The mean of `score_samples` over the points (higher is better, as in a grid search)."""
        return float(self.score_samples(X).mean())

    def sample_posterior(
        self, n_draws: int, random_state: int | np.random.Generator | None = None
    ) -> dict[str, np.ndarray]:
        """Draws from q: weights (S, K), means (S, K, D), covariances (S, K, D, D).

        See `draw_posterior`; `random_state` defaults to the estimator's.
        """
        posterior = self.posterior_
        n_draws = check_integer("n_draws", n_draws)
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        return draw_posterior(posterior, n_draws, rng)


def draw_posterior(
    posterior: VariationalPosterior, n_draws: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Draws from q: weights (S, K), means (S, K, D), covariances (S, K, D, D).

    pi ~ Dir(alpha); Lambda_k ~ W(W_k, nu_k) by the Bartlett decomposition Lambda_k = F F^T
    with F = U_k A (A lower triangular, A_ii^2 ~ chi^2(nu_k - i + 1), A_ij ~ N(0, 1) below);
    Sigma_k = Lambda_k^-1 = G^T G with G = F^-1 (one triangular-factor solve); and
    mu_k = m_k + G^T z / sqrt(beta_k), z ~ N(0, I), so Cov(mu_k | Lambda_k) = Sigma_k / beta_k.
    A saved q (e.g. read back from a file) is drawn from without an estimator.
    """
    weights = rng.dirichlet(posterior.weight_concentration, size=n_draws)
    bartlett = bartlett_factors(
        posterior.degrees_of_freedom, posterior.means.shape[1], n_draws, rng
    )
    factors = posterior.scale_cholesky[None] @ bartlett  # (S, K, D, D): F with Lambda = F F^T
    identity = np.broadcast_to(np.eye(factors.shape[-1]), factors.shape)
    inverse = np.linalg.solve(factors, identity)  # G = F^-1
    covariances = np.swapaxes(inverse, -1, -2) @ inverse
    normals = rng.standard_normal((n_draws, *posterior.means.shape))
    scaled = normals / np.sqrt(posterior.mean_precision)[None, :, None]
    means = posterior.means[None] + np.einsum("skji,skj->ski", inverse, scaled)
    return {"weights": weights, "means": means, "covariances": covariances}


def bartlett_factors(
    degrees_of_freedom: np.ndarray, n_features: int, n_draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Lower-triangular A (S, K, D, D) with A A^T ~ Wishart(I, nu_k) (Bartlett decomposition)."""
    n_components = degrees_of_freedom.shape[0]
    shape = (n_draws, n_components, n_features, n_features)
    factors = np.tril(rng.standard_normal(shape), k=-1)
    chi_dof = degrees_of_freedom[None, :, None] - np.arange(n_features)[None, None, :]  # nu - i + 1
    diagonal = np.sqrt(rng.chisquare(np.broadcast_to(chi_dof, (n_draws, n_components, n_features))))
    index = np.arange(n_features)
    factors[..., index, index] = diagonal
    return factors


def _covariances_from_precisions_cholesky(precisions_chol: np.ndarray) -> np.ndarray:
    """Sigma_k = (P_k P_k^T)^-1 = G_k^T G_k with G_k = P_k^-1, for factors (K, D, D)."""
    identity = np.broadcast_to(np.eye(precisions_chol.shape[-1]), precisions_chol.shape)
    inverse = np.linalg.solve(precisions_chol, identity)
    return np.swapaxes(inverse, -1, -2) @ inverse
