"""The Gaussian-mixture log-likelihood: one definition, shared by EM and the PyMC model.

Every function takes an array namespace `xp`: NumPy (the default, used by EM) or
`pytensor.tensor` (used by `models/`, which builds the same expression symbolically). Only
operations that both namespaces spell the same way are used, so the two halves of the project
evaluate literally the same formula.

Covariances enter through their precision Cholesky factors: for Sigma_k = L_k L_k^T (lower
Cholesky), U_k = L_k^{-T} is upper triangular with Sigma_k^{-1} = U_k U_k^T. Then the
Mahalanobis distance is ||(x - mu_k) U_k||^2 and log|Sigma_k|^{-1/2} = sum(log diag(U_k)), so no
inverse or determinant of Sigma_k is ever formed.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


def precisions_cholesky(covariances: np.ndarray) -> np.ndarray:
    """Precision Cholesky factors U_k = L_k^{-T} (K, D, D) of covariances (K, D, D), in NumPy.

    Raises ValueError naming the component whose covariance is not positive definite.
    """
    n_features = covariances.shape[-1]
    try:
        lower = np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        bad = [k for k, c in enumerate(covariances) if np.any(np.linalg.eigvalsh(c) <= 0)]
        raise ValueError(
            f"covariance of component(s) {bad} is not positive definite; "
            "the component collapsed: increase reg_covar"
        ) from None
    # Solving L_k V_k = I for every k gives V_k = L_k^{-1}; its transpose is U_k.
    identity = np.broadcast_to(np.eye(n_features), lower.shape)
    return np.swapaxes(np.linalg.solve(lower, identity), -1, -2)


def log_gaussian_densities(
    X: Any, means: Any, precisions_chol: Any, n_components: int, xp: ModuleType = np
) -> Any:
    """Log N(x_i | mu_k, Sigma_k) for every component and point, shape (K, n).

    X is (n, D), means (K, D), precision Cholesky factors U_k (K, D, D).
    """
    n_features = X.shape[1]
    # (x - mu_k) U_k for every point, written as X U_k - mu_k U_k so that no centred copy of X
    # is made, and computed transposed, U_k^T X^T - U_k^T mu_k (K, D, n), all K at once: the U_k^T
    # stacked into one (K D, D) matrix make a single matrix product with X^T, and with the
    # points along the last axis every later step runs along long contiguous rows.
    transposed = xp.swapaxes(precisions_chol, 1, 2)  # (K, D, D): U_k^T
    stacked = xp.reshape(transposed, (n_components * n_features, n_features))
    projected_points = xp.reshape(xp.matmul(stacked, X.T), (n_components, n_features, -1))
    projected = projected_points - xp.matmul(transposed, means[:, :, None])
    mahalanobis = xp.sum(projected * projected, axis=1)  # (K, n)
    half_log_det_precision = xp.sum(xp.log(xp.diagonal(precisions_chol, 0, 1, 2)), axis=1)
    return half_log_det_precision[:, None] - 0.5 * (n_features * LOG_2PI + mahalanobis)


def log_weighted_densities(
    X: Any,
    weights: Any,
    means: Any,
    precisions_chol: Any,
    n_components: int,
    xp: ModuleType = np,
) -> Any:
    """log(w_k N(x_i | mu_k, Sigma_k)) for every point and component, shape (n, K).

    `n_components` is a Python int, so the shapes are known for symbolic arrays too. The result
    is the transpose of a (K, n) array, so each point's K values are a strided column and the
    reductions over components below run along contiguous rows of n.
    """
    log_densities = log_gaussian_densities(X, means, precisions_chol, n_components, xp)
    return (log_densities + xp.log(weights)[:, None]).T


def log_sum_exp_rows(values: Any, xp: ModuleType = np) -> Any:
    """log(sum_k exp(values[i, k])) for each row of values (n, K), without overflow: (n,)."""
    row_max = xp.max(values, axis=1, keepdims=True)
    return xp.log(xp.sum(xp.exp(values - row_max), axis=1)) + row_max[:, 0]


def mixture_log_density(
    X: Any,
    weights: Any,
    means: Any,
    precisions_chol: Any,
    n_components: int,
    xp: ModuleType = np,
) -> Any:
    """Log p(x_i) = log sum_k w_k N(x_i | mu_k, Sigma_k) for every point, shape (n,)."""
    weighted = log_weighted_densities(X, weights, means, precisions_chol, n_components, xp)
    return log_sum_exp_rows(weighted, xp)
