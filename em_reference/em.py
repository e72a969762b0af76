"""Expectation-maximisation for a full-covariance Gaussian mixture, as the textbook writes it.

One function per equation, on the data X (n, D) and the responsibilities (n, K):

1. E-step: responsibilities r_ik = w_k N(x_i | mu_k, Sigma_k) / sum_j w_j N(x_i | mu_j, Sigma_j),
   computed in the log domain; the same pass gives the log-density of every point.
2. M-step: N_k = sum_i r_ik; w_k = N_k / n; mu_k = sum_i r_ik x_i / N_k;
   Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k around the *new* mean, plus reg_covar I.

The fit (`em_reference.gaussian_mixture`) computes the same M-step from sums accumulated in the
E-step's single pass over the data (`em_reference.shifted_sums`); the tests hold the two equal.
"""

from __future__ import annotations

import numpy as np

from em_reference.likelihood import log_sum_exp_rows, log_weighted_densities

# Added to each N_k so that a component whose responsibilities vanish keeps finite parameters.
EMPTY_COMPONENT_MASS = 10 * np.finfo(np.float64).eps


def expectation_step(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, precisions_chol: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Log-responsibilities (n, K) and the log-density of each point (n,) in one pass.

    X (n, D), weights (K,), means (K, D), precision Cholesky factors (K, D, D).
    """
    weighted = log_weighted_densities(X, weights, means, precisions_chol, weights.shape[0])
    point_log_density = log_sum_exp_rows(weighted)
    return weighted - point_log_density[:, None], point_log_density


def component_masses(responsibilities: np.ndarray) -> np.ndarray:
    """N_k = sum_i r_ik (K,) of responsibilities (n, K), never exactly zero."""
    return responsibilities.sum(axis=0) + EMPTY_COMPONENT_MASS


def estimate_weights(responsibilities: np.ndarray) -> np.ndarray:
    """w_k = N_k / n (K,); dividing by sum N_k = n keeps the sum at 1 despite the guard mass."""
    masses = component_masses(responsibilities)
    return masses / masses.sum()


def estimate_means(X: np.ndarray, responsibilities: np.ndarray) -> np.ndarray:
    """mu_k = sum_i r_ik x_i / N_k (K, D) of points X (n, D)."""
    return (responsibilities.T @ X) / component_masses(responsibilities)[:, None]


def estimate_covariances(
    X: np.ndarray, responsibilities: np.ndarray, means: np.ndarray, reg_covar: float
) -> np.ndarray:
    """Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k + reg_covar I (K, D, D)."""
    masses = component_masses(responsibilities)
    n_components, n_features = means.shape
    covariances = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        centred = X - means[k]  # (n, D): x_i - mu_k
        scatter = (responsibilities[:, k, None] * centred).T @ centred
        covariances[k] = scatter / masses[k] + reg_covar * np.eye(n_features)
    return covariances


def maximisation_step(
    X: np.ndarray, responsibilities: np.ndarray, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New weights (K,), means (K, D) and covariances (K, D, D) from responsibilities (n, K)."""
    means = estimate_means(X, responsibilities)
    covariances = estimate_covariances(X, responsibilities, means, reg_covar)
    return estimate_weights(responsibilities), means, covariances
