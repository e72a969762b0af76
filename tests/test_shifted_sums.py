"""The single-pass shifted-sums engine against the textbook E- and M-step equations."""

from __future__ import annotations

import numpy as np
import pytest

from em_reference import em, sample_mixture
from em_reference.likelihood import precisions_cholesky
from em_reference.shifted_sums import (
    block_rows,
    expectation_pass,
    parameters_from_responsibilities,
    parameters_from_sums,
)
from tests.conftest import random_mixture

# (K, D, n): n spans several blocks and is not a multiple of the block size, except the first.
SIZES = [(1, 1, 300), (2, 3, 50_001), (5, 2, 30_001), (8, 16, 3_000), (3, 4, 7)]
TOLERANCE = 1e-12


def random_problem(n_components: int, n_features: int, n_points: int, seed: int):
    """Points (n, D) from one random mixture and the parameters of another (the current fit)."""
    rng = np.random.default_rng(seed)
    X, _ = sample_mixture(n_points, *random_mixture(rng, n_components, n_features), seed=seed)
    return X, random_mixture(rng, n_components, n_features)


def assert_same_parameters(engine, textbook) -> None:
    """Weights, means and covariances equal to 1e-12 of each array's largest entry."""
    for name, ours, expected in zip(
        ("weights", "means", "covariances"), engine, textbook, strict=True
    ):
        scale = max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE * scale, err_msg=name)


@pytest.mark.parametrize(("n_components", "n_features", "n_points"), SIZES)
def test_sizes_span_blocks(n_components, n_features, n_points):
    blocks = -(-n_points // block_rows(n_components, n_features))
    assert blocks >= 1
    if n_points > 10_000:
        assert blocks > 1 and n_points % block_rows(n_components, n_features) != 0


@pytest.mark.parametrize(("n_components", "n_features", "n_points"), SIZES)
def test_em_iteration_by_the_engine_is_the_textbook_one(n_components, n_features, n_points):
    X, (weights, means, covariances) = random_problem(n_components, n_features, n_points, 5)
    precisions_chol = precisions_cholesky(covariances)
    log_likelihood, sums = expectation_pass(X, weights, means, precisions_chol)
    engine = parameters_from_sums(sums, 1e-6)

    log_resp, point_log_density = em.expectation_step(X, weights, means, precisions_chol)
    textbook = em.maximisation_step(X, np.exp(log_resp), 1e-6)
    assert_same_parameters(engine, textbook)
    expected = float(point_log_density.sum())
    assert log_likelihood == pytest.approx(expected, rel=TOLERANCE)


@pytest.mark.parametrize(("n_components", "n_features", "n_points"), SIZES)
def test_weighted_pass_is_the_textbook_step_on_weighted_responsibilities(
    n_components, n_features, n_points
):
    X, (weights, means, covariances) = random_problem(n_components, n_features, n_points, 6)
    sample_weight = np.random.default_rng(7).exponential(size=n_points)
    precisions_chol = precisions_cholesky(covariances)
    total, sums = expectation_pass(X, weights, means, precisions_chol, sample_weight=sample_weight)
    engine = parameters_from_sums(sums, 0.0)

    log_resp, point_log_density = em.expectation_step(X, weights, means, precisions_chol)
    textbook = em.maximisation_step(X, np.exp(log_resp) * sample_weight[:, None], 0.0)
    assert_same_parameters(engine, textbook)
    assert total == pytest.approx(float(sample_weight @ point_log_density), rel=TOLERANCE)


@pytest.mark.parametrize(("n_components", "n_features", "n_points"), SIZES)
def test_m_step_from_responsibilities_is_the_textbook_one(n_components, n_features, n_points):
    X, _ = random_problem(n_components, n_features, n_points, 8)
    responsibilities = np.random.default_rng(9).dirichlet(np.ones(n_components), size=n_points)
    engine = parameters_from_responsibilities(X, responsibilities, 1e-3)
    textbook = em.maximisation_step(X, responsibilities, 1e-3)
    assert_same_parameters(engine, textbook)


def test_textbook_m_step_is_the_weighted_mean_and_scatter_of_hard_labels():
    # With 0/1 responsibilities the equations reduce to each group's mean and biased covariance.
    rng = np.random.default_rng(10)
    X = rng.normal(size=(40, 3))
    labels = np.arange(40) % 2
    responsibilities = np.eye(2)[labels]
    weights, means, covariances = em.maximisation_step(X, responsibilities, 0.0)
    np.testing.assert_allclose(weights, [0.5, 0.5], rtol=1e-14)
    for k in range(2):
        group = X[labels == k]
        np.testing.assert_allclose(means[k], group.mean(axis=0), rtol=1e-13)
        np.testing.assert_allclose(covariances[k], np.cov(group.T, bias=True), rtol=1e-12)
