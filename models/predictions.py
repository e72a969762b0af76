"""Per-draw quantities computed once a run is sampled, in NumPy, with the EM likelihood.

The pointwise log-likelihood of every draw (for LOO) and the posterior predictive data sets
(for the predictive check) are evaluated once per run, so compiling them as PyTensor graphs cost
more than evaluating them: `em_reference.likelihood`'s functions, applied to blocks of draws at
once (the S draws' K components stacked as one S K-component array), give the same numbers as
`pm.compute_log_likelihood` without a compile (see tests/test_predictions.py).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from em_reference.likelihood import log_sum_exp_rows, log_weighted_densities, precisions_cholesky
from models.mixture import OBSERVED
from models.stored import PREDICTIVE_DRAWS, STORED_DTYPE

BLOCK_VALUES = 2**21
"""Most (draw, component, point) values held at once: a block of draws is 16 MB of float64."""


def component_arrays(posterior: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (S, K), means (S, K, D), covariances (S, K, D, D) of all S = chains x draws."""
    stacked = posterior.stack(sample=("chain", "draw"))
    return (
        stacked["weights"].transpose("sample", "component").values,
        stacked["means"].transpose("sample", "component", "dim").values,
        stacked["covariances"].transpose("sample", "component", "dim", "dim_bis").values,
    )


def draw_blocks(n_draws: int, n_components: int, n_points: int) -> list[slice]:
    """Slices of the S draws, each holding at most BLOCK_VALUES (draw, component, point) values."""
    size = max(1, BLOCK_VALUES // (n_components * n_points))
    return [slice(start, min(start + size, n_draws)) for start in range(0, n_draws, size)]


def log_weighted_by_draw(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """log(w_k N(x_i | mu_k, Sigma_k)) for a block of draws: (B, n, K) from (B, K, ...) arrays.

    The B draws' components are one B K-component stack, so `log_weighted_densities` runs once.
    """
    n_draws, n_components, n_features = means.shape
    stacked = n_draws * n_components
    weighted = log_weighted_densities(
        X,
        weights.reshape(stacked),
        means.reshape(stacked, n_features),
        precisions_cholesky(covariances.reshape(stacked, n_features, n_features)),
        stacked,
    )  # (n, B K)
    return np.moveaxis(weighted.reshape(X.shape[0], n_draws, n_components), 1, 0)


def pointwise_log_likelihood(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """Log p(x_i | theta_s) (S, n) for data X (n, D) and S draws of weights, means, covariances."""
    n_draws, n_components = weights.shape
    result = np.empty((n_draws, X.shape[0]))
    for block in draw_blocks(n_draws, n_components, X.shape[0]):
        weighted = log_weighted_by_draw(X, weights[block], means[block], covariances[block])
        rows = weighted.reshape(-1, n_components)  # (B n, K)
        result[block] = log_sum_exp_rows(rows).reshape(weighted.shape[:2])
    return result


def mean_responsibilities(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """r_ik averaged over S draws: (n, K) for data X (n, D) and draws (S, K, ...)."""
    n_draws, n_components = weights.shape
    total = np.zeros((X.shape[0], n_components))
    for block in draw_blocks(n_draws, n_components, X.shape[0]):
        weighted = log_weighted_by_draw(X, weights[block], means[block], covariances[block])
        rows = weighted.reshape(-1, n_components)  # (B n, K)
        responsibilities = np.exp(rows - log_sum_exp_rows(rows)[:, None])
        total += responsibilities.reshape(weighted.shape).sum(axis=0)
    return total / n_draws


def predictive_points(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    n_points: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """One replicated data set (S, n, D) per draw: a component drawn by weight, then mu + L z."""
    n_draws, n_components, n_features = means.shape
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    uniforms = rng.random((n_draws, n_points))
    labels = np.minimum(
        np.sum(uniforms[:, :, None] >= cumulative[:, None, :], axis=2), n_components - 1
    )  # (S, n): the first k with u < w_1 + ... + w_k
    lower = np.linalg.cholesky(covariances)  # (S, K, D, D)
    normals = rng.standard_normal((n_draws, n_points, n_features))
    draw = np.arange(n_draws)[:, None]
    return means[draw, labels] + np.einsum("snij,snj->sni", lower[draw, labels], normals)


def log_likelihood_group(posterior: xr.Dataset, observed: xr.Dataset) -> xr.Dataset:
    """The log_likelihood group: `X` (chain, draw, point), each point's log-likelihood per draw."""
    X = observed[OBSERVED].transpose("point", "dim").values
    weights, means, covariances = component_arrays(posterior)
    values = pointwise_log_likelihood(X, weights, means, covariances)
    shape = (posterior.sizes["chain"], posterior.sizes["draw"], X.shape[0])
    variable = xr.DataArray(
        values.reshape(shape).astype(STORED_DTYPE),
        dims=("chain", "draw", "point"),
        coords={
            "chain": posterior["chain"],
            "draw": posterior["draw"],
            "point": observed["point"],
        },
    )
    return xr.Dataset({OBSERVED: variable})


def predictive_group(
    posterior: xr.Dataset, observed: xr.Dataset, rng: np.random.Generator
) -> xr.Dataset:
    """The posterior_predictive group: `X` (chain, draw, point, dim) at PREDICTIVE_DRAWS draws.

    The draws kept are evenly spaced over each chain (their labels are the posterior's `draw`
    coordinates), the same for every chain.
    """
    n_draws = posterior.sizes["draw"]
    spaced = np.linspace(0, n_draws - 1, min(PREDICTIVE_DRAWS, n_draws))
    kept = posterior.isel(draw=np.unique(spaced.round().astype(int)))
    weights, means, covariances = component_arrays(kept)
    n_points = observed.sizes["point"]
    points = predictive_points(weights, means, covariances, n_points, rng)
    shape = (kept.sizes["chain"], kept.sizes["draw"], n_points, means.shape[2])
    variable = xr.DataArray(
        points.reshape(shape).astype(STORED_DTYPE),
        dims=("chain", "draw", "point", "dim"),
        coords={
            "chain": kept["chain"],
            "draw": kept["draw"],
            "point": observed["point"],
            "dim": observed["dim"],
        },
    )
    return xr.Dataset({OBSERVED: variable})
