"""The shared log-likelihood against SciPy's densities, including far from every component."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from em_reference.likelihood import log_weighted_densities, mixture_log_density, precisions_cholesky
from tests.conftest import random_mixture


@pytest.mark.parametrize(("n_features", "n_components"), [(1, 1), (2, 3), (4, 2), (6, 5)])
def test_mixture_log_density_equals_scipy(n_features, n_components):
    rng = np.random.default_rng(n_features * 10 + n_components)
    weights, means, covariances = random_mixture(rng, n_components, n_features)
    X = rng.normal(scale=8.0, size=(200, n_features))
    expected = logsumexp(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(X).reshape(-1)
            for w, m, c in zip(weights, means, covariances, strict=True)
        ],
        axis=0,
    )
    ours = mixture_log_density(X, weights, means, precisions_cholesky(covariances), n_components)
    assert np.allclose(ours, expected, rtol=1e-12, atol=1e-10)


def test_precision_cholesky_factors_the_precision():
    rng = np.random.default_rng(0)
    _, _, covariances = random_mixture(rng, 3, 4)
    factors = precisions_cholesky(covariances)
    assert np.allclose(np.triu(factors), factors)
    assert np.allclose(factors @ factors.transpose(0, 2, 1), np.linalg.inv(covariances))


def test_log_domain_survives_points_where_every_density_underflows():
    X = np.array([[500.0, -500.0]])
    weights = np.array([0.5, 0.5])
    means = np.zeros((2, 2))
    covariances = np.stack([np.eye(2), 2 * np.eye(2)])
    factors = precisions_cholesky(covariances)
    weighted = log_weighted_densities(X, weights, means, factors, 2)
    assert np.all(np.exp(weighted) == 0.0)  # the naive pdf / sum(pdf) would be 0 / 0 here
    log_density = mixture_log_density(X, weights, means, factors, 2)
    assert np.isfinite(log_density).all()
    assert log_density[0] == pytest.approx(np.logaddexp(*weighted[0]), rel=1e-12)


def test_singular_covariance_is_named():
    covariances = np.stack([np.eye(2), np.zeros((2, 2))])
    with pytest.raises(ValueError, match=r"component\(s\) \[1\]"):
        precisions_cholesky(covariances)
