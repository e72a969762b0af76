"""The seed program's generator, reproduced: LCG states, uniforms, and the seed-7907 points."""

from __future__ import annotations

import numpy as np
import pytest

from em_reference import sample_mixture, seed7907
from em_reference.generator import (
    cholesky_lower,
    draw_mixture,
    lcg_states,
    lcg_uniforms,
    points_from_normals,
)
from tests.conftest import HASKELL_CSV


def _lcg_by_recurrence(seed: int, count: int) -> list[int]:
    """The C-library LCG, one exact-integer step at a time (independent of the vectorised code)."""
    states, state = [], seed
    for _ in range(count):
        state = (1103515245 * state + 12345) % 2**31
        states.append(state)
    return states


@pytest.mark.parametrize("seed", [7907, 0, 1, 2**31 - 1])
def test_lcg_states_equal_the_recurrence(seed):
    count = 10_000  # more than one jump-ahead block
    assert lcg_states(seed, count).tolist() == _lcg_by_recurrence(seed, count)


def test_uniforms_lie_strictly_inside_the_unit_interval():
    u = lcg_uniforms(7907, 50_000)
    assert u.min() > 0.0
    assert u.max() < 1.0
    assert u[0] == (_lcg_by_recurrence(7907, 1)[0] + 1) / (2**31 + 1)


def test_seed7907_matches_the_haskell_program_exactly():
    reference = np.loadtxt(HASKELL_CSV, delimiter=",")
    X, labels = seed7907.load()
    assert X.shape == (500, 2)
    assert labels.tolist() == reference[:, 0].astype(int).tolist()
    assert np.max(np.abs(X - reference[:, 1:])) <= 1e-12


def test_cholesky_follows_the_seed_formula_in_two_dimensions():
    a, c, d = 0.8, -1.3, 3.4
    l11 = np.sqrt(a)
    l21 = c / l11
    expected = np.array([[l11, 0.0], [l21, np.sqrt(d - l21**2)]])
    assert np.array_equal(cholesky_lower(np.array([[a, c], [c, d]])), expected)


def test_cholesky_factor_reproduces_a_higher_dimensional_covariance():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 5))
    covariance = A @ A.T + 5 * np.eye(5)
    lower = cholesky_lower(covariance)
    assert np.allclose(lower @ lower.T, covariance, atol=1e-12)
    assert np.allclose(lower, np.tril(lower))


def test_same_seed_same_points_other_seed_other_points():
    args = (seed7907.TRUE.weights, seed7907.TRUE.means, seed7907.TRUE.covariances)
    first, first_labels = sample_mixture(200, *args, seed=11)
    again, again_labels = sample_mixture(200, *args, seed=11)
    other, _ = sample_mixture(200, *args, seed=12)
    assert np.array_equal(first, again) and np.array_equal(first_labels, again_labels)
    assert not np.allclose(first, other)


def test_three_dimensional_mixture_has_the_right_moments():
    weights = np.array([0.3, 0.7])
    means = np.array([[0.0, 10.0, -5.0], [20.0, 0.0, 5.0]])
    covariances = np.array([np.diag([1.0, 2.0, 3.0]), [[2, 0.5, 0], [0.5, 1, 0.2], [0, 0.2, 1]]])
    X, labels = sample_mixture(40_000, weights, means, covariances, seed=5)
    assert X.shape == (40_000, 3)
    assert labels.shape == (40_000,)
    assert abs(np.mean(labels == 0) - 0.3) < 0.01
    for k in range(2):
        members = X[labels == k]
        assert np.allclose(members.mean(axis=0), means[k], atol=0.05)
        assert np.allclose(np.cov(members.T), covariances[k], atol=0.08)


def test_a_single_component_always_gets_label_zero():
    X, labels = sample_mixture(50, [1.0], [[1.0]], [[[4.0]]], seed=1)
    assert X.shape == (50, 1)
    assert not labels.any()


@pytest.mark.parametrize("n", [-1, 2.5, "10"])
def test_bad_point_count_is_refused(n):
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        sample_mixture(n, [1.0], [[0.0]], [[[1.0]]])


def test_bad_parameters_are_refused_by_the_generator():
    with pytest.raises(ValueError, match="weights must sum to 1"):
        sample_mixture(10, [0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]])


def test_points_from_normals_is_mean_plus_factor_times_normal_point_by_point():
    rng = np.random.default_rng(4)
    means = rng.normal(size=(3, 4))
    lower = np.tril(rng.normal(size=(3, 4, 4)))
    labels = rng.integers(0, 3, size=20)
    normals = rng.standard_normal((20, 4))
    expected = np.array([means[k] + lower[k] @ z for k, z in zip(labels, normals, strict=True)])
    np.testing.assert_allclose(points_from_normals(labels, normals, means, lower), expected)


def test_the_fitted_estimators_sampler_is_draw_mixture(seed_em):
    X, labels = seed_em.sample(50, random_state=9)
    lower = np.linalg.cholesky(seed_em.covariances_)
    rng = np.random.default_rng(9)
    again, again_labels = draw_mixture(rng, (50,), seed_em.weights_, seed_em.means_, lower)
    np.testing.assert_array_equal(X, again)
    np.testing.assert_array_equal(labels, again_labels)
