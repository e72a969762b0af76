"""EM as the seed tutorial writes it: the baseline against which vectorising is measured.

A Python loop over components computes each weighted density w_k N(x | mu_k, Sigma_k) with an
explicit inverse and determinant, responsibilities are `pdf / sum(pdf)` in the linear domain,
and the log-likelihood of the new parameters is a second pass over the data every iteration.
"""

from __future__ import annotations

import numpy as np


def gaussian_pdf(X: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """N(x_i | mu, Sigma) for every point (n,), with an explicit inverse and determinant."""
    n_features = X.shape[1]
    diff = X - mean
    inverse = np.linalg.inv(covariance)
    norm = 1.0 / np.sqrt((2.0 * np.pi) ** n_features * np.linalg.det(covariance))
    return norm * np.exp(-0.5 * np.sum(diff @ inverse * diff, axis=1))


def weighted_pdfs(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """w_k N(x_i | mu_k, Sigma_k) (n, K), one component at a time."""
    columns = [weights[k] * gaussian_pdf(X, means[k], covariances[k]) for k in range(len(weights))]
    return np.column_stack(columns)


def log_likelihood(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> float:
    """sum_i log sum_k w_k N(x_i | mu_k, Sigma_k), as its own pass over the data."""
    return float(np.sum(np.log(weighted_pdfs(X, weights, means, covariances).sum(axis=1))))


def tutorial_em(
    X: np.ndarray,
    start: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_iter: int,
    reg_covar: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """n_iter EM iterations from start; returns weights, means, covariances, log-likelihoods."""
    weights, means, covariances = (np.array(a, dtype=np.float64) for a in start)
    n_points, n_features = X.shape
    history = [log_likelihood(X, weights, means, covariances)]
    for _ in range(n_iter):
        pdfs = weighted_pdfs(X, weights, means, covariances)
        resp = pdfs / pdfs.sum(axis=1, keepdims=True)
        masses = resp.sum(axis=0)
        weights = masses / n_points
        means = np.array([resp[:, k] @ X / masses[k] for k in range(len(masses))])
        covariances = np.array(
            [
                (resp[:, k, None] * (X - means[k])).T @ (X - means[k]) / masses[k]
                + reg_covar * np.eye(n_features)
                for k in range(len(masses))
            ]
        )
        history.append(log_likelihood(X, weights, means, covariances))
    return weights, means, covariances, history
