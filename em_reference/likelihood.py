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


def log_gaussian_density(X: Any, mean: Any, precision_cholesky: Any, xp: ModuleType = np) -> Any:
    """Log N(x_i | mu, Sigma) for every point (n,), given X (n, D), mu (D,) and U (D, D)."""
    # (x - mu) U, written as X U - mu U so that no centred copy of X is made, and computed
    # transposed, U^T X^T - U^T mu (D, n): with the points along the last axis, each elementwise
    # step and the sum over the D coordinates run along long contiguous rows, not rows of D.
    transposed = precision_cholesky.T
    projected = xp.matmul(transposed, X.T) - xp.matmul(transposed, mean)[:, None]
    mahalanobis = xp.sum(projected * projected, axis=0)
    half_log_det_precision = xp.sum(xp.log(xp.diagonal(precision_cholesky, 0, 0, 1)))
    n_features = X.shape[1]
    return half_log_det_precision - 0.5 * (n_features * LOG_2PI + mahalanobis)


def log_weighted_densities(
    X: Any,
    weights: Any,
    means: Any,
    precisions_cholesky: Any,
    n_components: int,
    xp: ModuleType = np,
) -> Any:
    """log(w_k N(x_i | mu_k, Sigma_k)) for every point and component, shape (n, K).

    `n_components` is a Python int so that the same loop unrolls for symbolic arrays too. The
    result is the transpose of a (K, n) stack, so each point's K values are a strided column and
    the reductions over components below run along contiguous rows of n.
    """
    rows = [
        log_gaussian_density(X, means[k], precisions_cholesky[k], xp) + xp.log(weights[k])
        for k in range(n_components)
    ]
    return xp.stack(rows, axis=0).T


def log_sum_exp_rows(values: Any, xp: ModuleType = np) -> Any:
    """log(sum_k exp(values[i, k])) for each row of values (n, K), without overflow: (n,)."""
    row_max = xp.max(values, axis=1, keepdims=True)
    return xp.log(xp.sum(xp.exp(values - row_max), axis=1)) + row_max[:, 0]


def mixture_log_density(
    X: Any,
    weights: Any,
    means: Any,
    precisions_cholesky: Any,
    n_components: int,
    xp: ModuleType = np,
) -> Any:
    """Log p(x_i) = log sum_k w_k N(x_i | mu_k, Sigma_k) for every point, shape (n,)."""
    weighted = log_weighted_densities(X, weights, means, precisions_cholesky, n_components, xp)
    return log_sum_exp_rows(weighted, xp)
