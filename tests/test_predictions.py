"""The per-draw quantities computed in NumPy equal what PyMC computes from the same draws."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr

from em_reference import precisions_cholesky, seed7907
from em_reference.em import expectation_step
from models import OBSERVED, build_model, parameter_point
from models.predictions import (
    PREDICTIVE_DRAWS,
    STORED_DTYPE,
    component_arrays,
    draw_blocks,
    log_likelihood_group,
    mean_responsibilities,
    pointwise_log_likelihood,
    predictive_group,
    predictive_points,
)


def scattered_posterior(n_chains: int, n_draws: int, seed: int) -> xr.Dataset:
    """A posterior with the model's variables: draws scattered around seed-7907's truth."""
    rng = np.random.default_rng(seed)
    truth = seed7907.TRUE
    shape = (n_chains, n_draws)
    weights = truth.weights * np.exp(rng.normal(scale=0.1, size=(*shape, 3)))
    weights /= weights.sum(axis=-1, keepdims=True)
    means = truth.means + rng.normal(scale=0.2, size=(*shape, 3, 2))
    factors = rng.normal(scale=0.1, size=(*shape, 3, 2, 2))
    covariances = truth.covariances + factors @ np.swapaxes(factors, -1, -2)
    points = [
        parameter_point({"weights": w, "means": m, "covariances": c})
        for w, m, c in zip(
            weights.reshape(-1, 3),
            means.reshape(-1, 3, 2),
            covariances.reshape(-1, 3, 2, 2),
            strict=True,
        )
    ]
    dims = {
        "weights": ("component",),
        "means": ("component", "dim"),
        "standard_deviations": ("component", "dim"),
        "correlation_cholesky": ("component", "dim", "dim_bis"),
    }
    variables = {
        name: (
            ("chain", "draw", *dims[name]),
            np.stack([p[name] for p in points]).reshape(*shape, *points[0][name].shape),
        )
        for name in dims
    }
    variables["covariances"] = (("chain", "draw", "component", "dim", "dim_bis"), covariances)
    return xr.Dataset(
        variables,
        coords={"chain": range(n_chains), "draw": range(n_draws), "component": range(3)},
    )


@pytest.fixture(scope="module")
def observed(seed_data) -> xr.Dataset:
    """The seed-7907 points as an observed_data group."""
    X, _ = seed_data
    return xr.Dataset({OBSERVED: (("point", "dim"), X)}, coords={"point": range(len(X))})


def test_pointwise_log_likelihood_equals_pymc_s(seed_data, observed):
    X, _ = seed_data
    posterior = scattered_posterior(2, 7, seed=0)
    tree = xr.DataTree.from_dict({"posterior": posterior, "observed_data": observed})
    pm.compute_log_likelihood(
        tree,
        model=build_model(X, n_components=3),
        extend_inferencedata=True,
        progressbar=False,
        compile_kwargs={"mode": "FAST_COMPILE"},
    )
    expected = tree.log_likelihood[OBSERVED].transpose("chain", "draw", "point").values
    values = pointwise_log_likelihood(X, *component_arrays(posterior))
    np.testing.assert_allclose(values, expected.reshape(14, 500), rtol=1e-10, atol=0)
    group = log_likelihood_group(posterior, observed)
    assert group[OBSERVED].dims == ("chain", "draw", "point")
    assert group[OBSERVED].dtype == STORED_DTYPE
    np.testing.assert_allclose(group[OBSERVED].values, expected, rtol=1e-6)


def test_blocks_of_draws_cover_every_draw_once():
    blocks = draw_blocks(n_draws=1001, n_components=3, n_points=50_000)
    covered = np.concatenate([np.arange(1001)[block] for block in blocks])
    np.testing.assert_array_equal(covered, np.arange(1001))
    assert len(blocks) > 1
    assert draw_blocks(1, 10, 10**9) == [slice(0, 1)]


def test_blocked_log_likelihood_equals_one_block(seed_data, monkeypatch):
    X, _ = seed_data
    arrays = component_arrays(scattered_posterior(1, 9, seed=1))
    whole = pointwise_log_likelihood(X, *arrays)
    monkeypatch.setattr("models.predictions.BLOCK_VALUES", 3 * 500 * 2)  # blocks of 2 draws
    np.testing.assert_array_equal(pointwise_log_likelihood(X, *arrays), whole)


def _em_responsibilities(X, weights, means, covariances):
    """EM's E-step (em_reference's one) at one draw: responsibilities (n, K)."""
    log_resp, _ = expectation_step(X, weights, means, precisions_cholesky(covariances))
    return np.exp(log_resp)


def test_mean_responsibilities_average_each_draw_s(seed_data):
    X, _ = seed_data
    weights, means, covariances = component_arrays(scattered_posterior(2, 5, seed=2))
    draws = zip(weights, means, covariances, strict=True)
    expected = np.mean([_em_responsibilities(X, *draw) for draw in draws], axis=0)
    np.testing.assert_allclose(
        mean_responsibilities(X, weights, means, covariances), expected, rtol=1e-12, atol=1e-300
    )


def test_predictive_points_have_each_draw_s_mixture_moments():
    truth = seed7907.TRUE
    shifted = truth.means + np.array([3.0, -1.0])
    weights = np.stack([truth.weights, truth.weights[::-1]])
    means = np.stack([truth.means, shifted])
    covariances = np.stack([truth.covariances, 2.0 * truth.covariances])
    points = predictive_points(weights, means, covariances, 200_000, np.random.default_rng(1))
    assert points.shape == (2, 200_000, 2)
    for s in range(2):
        mean = weights[s] @ means[s]
        centred = means[s] - mean
        covariance = np.einsum("k,kij->ij", weights[s], covariances[s]) + np.einsum(
            "k,ki,kj->ij", weights[s], centred, centred
        )
        # Monte Carlo error of 200,000 points: about 0.005 x the data's sd
        np.testing.assert_allclose(points[s].mean(axis=0), mean, atol=0.03)
        np.testing.assert_allclose(np.cov(points[s].T), covariance, atol=0.08)


def test_predictive_group_keeps_evenly_spaced_draws(observed):
    posterior = scattered_posterior(2, 3 * PREDICTIVE_DRAWS, seed=3)
    group = predictive_group(posterior, observed, np.random.default_rng(0))
    variable = group[OBSERVED]
    assert variable.dims == ("chain", "draw", "point", "dim")
    assert variable.shape == (2, PREDICTIVE_DRAWS, 500, 2)
    assert variable.dtype == STORED_DTYPE
    kept = variable["draw"].values
    assert kept[0] == 0 and kept[-1] == 3 * PREDICTIVE_DRAWS - 1
    assert np.ptp(np.diff(kept)) <= 1
    short = predictive_group(scattered_posterior(1, 4, seed=4), observed, np.random.default_rng(0))
    np.testing.assert_array_equal(short[OBSERVED]["draw"].values, np.arange(4))
