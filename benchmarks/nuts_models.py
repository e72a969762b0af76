"""Formulations of the same Bayesian mixture for the NUTS benchmark (not the project's model).

- `tutorial_model`: the plain tutorial way, `pm.Mixture` over a list of `pm.MvNormal`, each with
  its own `pm.LKJCholeskyCov` prior, with the priors of `models.mixture` (weights ~ Dirichlet(1),
  means ~ Normal(data centre, 10 data sds), sds ~ HalfNormal(2 data sds), correlations ~ LKJ(2)).
- `vectorised_model`: the priors and parametrisation of `models.mixture`, but a likelihood written
  over all components at once (one batched triangular solve, one batched matmul, a log-sum-exp
  over the component axis) instead of a Python loop over components.

Each returns a model and a function turning mixture parameters into its initial values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from em_reference import MixtureParameters
from em_reference.likelihood import LOG_2PI

MEAN_SCALE = 10.0
SD_SCALE = 2.0
ETA = 2.0

Initvals = Callable[[MixtureParameters], dict[str, np.ndarray]]


def _coords(n_features: int, n_components: int) -> dict[str, range]:
    """Coordinates shared by the formulations."""
    return {
        "component": range(n_components),
        "dim": range(n_features),
        "dim_bis": range(n_features),
    }


def tutorial_model(X: np.ndarray, n_components: int) -> tuple[pm.Model, Initvals]:
    """pm.Mixture over K pm.MvNormal components with per-component LKJCholeskyCov priors."""
    n_features = X.shape[1]
    spread = X.std(axis=0)
    with pm.Model(coords=_coords(n_features, n_components)) as model:
        weights = pm.Dirichlet("weights", a=np.ones(n_components), dims="component")
        components, means, cholesky = [], [], []
        for k in range(n_components):
            mean_k = pm.Normal(f"mu_{k}", mu=X.mean(axis=0), sigma=MEAN_SCALE * spread)
            sd_dist = pm.HalfNormal.dist(sigma=SD_SCALE * spread, shape=n_features)
            chol_k, _, _ = pm.LKJCholeskyCov(
                f"chol_{k}", n=n_features, eta=ETA, sd_dist=sd_dist, store_in_trace=False
            )
            components.append(pm.MvNormal.dist(mu=mean_k, chol=chol_k))
            means.append(mean_k)
            cholesky.append(chol_k)
        pm.Deterministic("means", pt.stack(means), dims=("component", "dim"))
        pm.Deterministic(
            "covariances",
            pt.stack([c @ c.T for c in cholesky]),
            dims=("component", "dim", "dim_bis"),
        )
        pm.Mixture("X", w=weights, comp_dists=components, observed=X)
    return model, _tutorial_initvals


def _tutorial_initvals(params: MixtureParameters) -> dict[str, np.ndarray]:
    """The tutorial model's free variables at given parameters (packed Cholesky factors)."""
    lower = np.linalg.cholesky(params.covariances)
    rows, cols = np.tril_indices(params.n_features)
    values: dict[str, np.ndarray] = {"weights": np.array(params.weights)}
    for k in range(params.n_components):
        values[f"mu_{k}"] = np.array(params.means[k])
        values[f"chol_{k}"] = lower[k][rows, cols]
    return values


def vectorised_log_density(
    X: Any, weights: Any, means: Any, precisions_chol: Any, n_features: int
) -> Any:
    """log sum_k w_k N(x_i | mu_k, Sigma_k) (n,) computed over all K components at once."""
    centred = X[None, :, :] - means[:, None, :]  # (K, n, D)
    projected = pt.matmul(centred, precisions_chol)  # (K, n, D)
    mahalanobis = pt.sum(projected**2, axis=2)  # (K, n)
    half_log_det = pt.sum(pt.log(pt.diagonal(precisions_chol, 0, 1, 2)), axis=1)  # (K,)
    log_weighted = (pt.log(weights) + half_log_det)[:, None] - 0.5 * (
        n_features * LOG_2PI + mahalanobis
    )
    return pt.logsumexp(log_weighted, axis=0)


def vectorised_model(X: np.ndarray, n_components: int) -> tuple[pm.Model, Initvals]:
    """models.mixture's priors with a likelihood vectorised over components."""
    n_features = X.shape[1]
    spread = X.std(axis=0)
    with pm.Model(coords=_coords(n_features, n_components)) as model:
        weights = pm.Dirichlet("weights", a=np.ones(n_components), dims="component")
        means = pm.Normal(
            "means", mu=X.mean(axis=0), sigma=MEAN_SCALE * spread, dims=("component", "dim")
        )
        stds = pm.HalfNormal(
            "standard_deviations", sigma=SD_SCALE * spread, dims=("component", "dim")
        )
        corr = pm.LKJCorr(
            "correlation_cholesky",
            n=n_features,
            eta=ETA,
            shape=(n_components, n_features, n_features),
            dims=("component", "dim", "dim_bis"),
        )
        lower = stds[:, :, None] * corr
        pm.Deterministic(
            "covariances", lower @ pt.swapaxes(lower, -1, -2), dims=("component", "dim", "dim_bis")
        )
        identity = pt.broadcast_to(pt.eye(n_features), lower.shape)
        precisions_chol = pt.swapaxes(
            pt.linalg.solve_triangular(lower, identity, lower=True), -1, -2
        )
        log_density = vectorised_log_density(
            pt.as_tensor(X), weights, means, precisions_chol, n_features
        )
        pm.Potential("X_loglike", pt.sum(log_density))
    return model, _vectorised_initvals


def _vectorised_initvals(params: MixtureParameters) -> dict[str, np.ndarray]:
    """The vectorised model's free variables at given parameters (sds and correlation factors)."""
    lower = np.linalg.cholesky(params.covariances)
    stds = np.sqrt(np.diagonal(params.covariances, 0, 1, 2))
    return {
        "weights": np.array(params.weights),
        "means": np.array(params.means),
        "standard_deviations": stds,
        "correlation_cholesky": lower / stds[:, :, None],
    }
