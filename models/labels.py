"""Label switching: put every posterior draw in the component order of a reference estimate.

A mixture's likelihood is unchanged when its components are permuted, so its posterior has K!
copies of every mode. `sample_posterior` starts every chain at (a jitter of) the EM estimate,
which puts all chains in the EM labelling; with well-separated components NUTS never crosses to
another copy. As a safeguard, each draw is then matched to the reference: the permutation that
minimises sum_k (mu_draw[p(k)] - mu_ref_k)^T Sigma_ref_k^{-1} (mu_draw[p(k)] - mu_ref_k) (an
assignment problem), and the number of draws that needed a permutation is reported, so that a
switch is visible rather than silently fixed. An ordering constraint was not used: no single
ordering matches the EM labelling on every data set, and it truncates the posterior when
components overlap.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from em_reference import MixtureParameters, precisions_cholesky


def matching_costs(means: np.ndarray, reference: MixtureParameters) -> np.ndarray:
    """Squared Mahalanobis distances (S, K, K) from each drawn mean j to reference component k.

    means: (S, K, D) drawn component means; cost[s, j, k] uses reference component k's covariance.
    """
    precision_chol = precisions_cholesky(reference.covariances)  # (K, D, D)
    difference = means[:, :, None, :] - reference.means[None, None, :, :]  # (S, j, k, D)
    projected = np.einsum("sjkd,kde->sjke", difference, precision_chol)
    return np.sum(projected**2, axis=-1)


def component_orders(means: np.ndarray, reference: MixtureParameters) -> np.ndarray:
    """For each draw (S, K): order[s, k] = the drawn component that plays reference component k."""
    costs = matching_costs(means, reference)
    orders = np.empty(means.shape[:2], dtype=np.int64)
    for s, cost in enumerate(costs):
        drawn, matched = linear_sum_assignment(cost)
        orders[s, matched] = drawn
    return orders


def relabel_posterior(
    posterior: xr.Dataset, reference: MixtureParameters
) -> tuple[xr.Dataset, int]:
    """The posterior with every draw in the reference's component order, and how many moved.

    Every variable with a `component` dimension is permuted draw by draw.
    """
    means = posterior["means"].transpose("chain", "draw", "component", "dim").values
    n_chains, n_draws, n_components, n_features = means.shape
    orders = component_orders(means.reshape(-1, n_components, n_features), reference)
    orders = orders.reshape(n_chains, n_draws, n_components)
    moved = int(np.sum(np.any(orders != np.arange(n_components), axis=-1)))
    if moved == 0:
        return posterior, 0
    relabelled = posterior.copy()
    for name, variable in posterior.data_vars.items():
        if "component" in variable.dims:
            relabelled[name] = _permute_components(variable, orders)
    return relabelled, moved


def _permute_components(variable: xr.DataArray, orders: np.ndarray) -> xr.DataArray:
    """The variable (chain, draw, component, ...) with components in `orders` (chain, draw, K)."""
    ordered = variable.transpose("chain", "draw", "component", ...)
    index = orders.reshape(orders.shape + (1,) * (ordered.ndim - 3))
    values = np.take_along_axis(ordered.values, index, axis=2)
    return ordered.copy(data=values).transpose(*variable.dims)
