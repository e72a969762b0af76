"""EM's uncertainty: scores, information, delta-method SEs, Wald intervals and the bootstrap.

Statistical tolerances: the standard deviation of B bootstrap replicates has a relative Monte
Carlo error of about 1 / sqrt(2 (B - 1)), 3.5 % for the B = 400 used here, so three of those
(10.6 %) leave about 9 % of the 20 % tolerance for the real difference between the bootstrap and
the information at n = 500 or 1000. The NUTS posterior's SDs come from about 1,400 or more
effective draws (1.9 % error), leaving about 19 % of the 25 % for the prior and n.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.datasets import load_dataset
from em_reference import (
    INTERVAL_PROB,
    BootstrapResult,
    GaussianMixtureEM,
    MixtureArrays,
    MixtureParameters,
    NotFittedError,
    bootstrap,
    seed7907,
    uncertainty,
)
from em_reference.gaussian_mixture import run_em

BOOTSTRAP_REPLICATES = 400
BOOTSTRAP_TOLERANCE = 0.20
POSTERIOR_TOLERANCE = 0.25
TIGHT = {"tol": 1e-10, "max_iter": 10_000}
Z_94 = 1.880793608151251  # standard normal quantile of 0.97


@pytest.fixture(scope="module")
def seed_fit(seed_data) -> GaussianMixtureEM:
    """EM on seed-7907 from the seed program's start, run to a tight tolerance."""
    X, _ = seed_data
    return GaussianMixtureEM(seed7907.N_COMPONENTS, init=seed7907.INITIAL, **TIGHT).fit(X)


@pytest.fixture(scope="module")
def seed1000_fit() -> tuple[np.ndarray, GaussianMixtureEM]:
    """The seed1000 points (1000, 2) and EM on them from the notebook's start, tightly."""
    dataset = load_dataset("seed1000")
    fit = GaussianMixtureEM(3, init=dataset.initial, **TIGHT).fit(dataset.X)
    return dataset.X, fit


def random_problem(n_points: int = 200, n_features: int = 3, n_components: int = 2):
    """Points (n, D) and a mixture away from their MLE, for derivative checks in D = 3."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(n_points, n_features)) + rng.integers(0, 3, size=(n_points, 1)) * 2.0
    factors = rng.normal(size=(n_components, n_features, n_features))
    params = MixtureParameters(
        weights=rng.dirichlet(np.ones(n_components) * 5),
        means=rng.normal(scale=2.0, size=(n_components, n_features)),
        covariances=factors @ factors.transpose(0, 2, 1) + np.eye(n_features),
    )
    return X, params


def central_differences(function, theta: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """d function / d theta by central differences: (output shape..., P)."""
    columns = []
    for j in range(theta.size):
        h = step * (1.0 + abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        columns.append((function(up) - function(down)) / (2.0 * h))
    return np.stack(columns, axis=-1)


# ---------------------------------------------------------------------------------------------
# The parametrisation and its derivatives


@pytest.mark.parametrize("problem", ["seed", "random"])
def test_theta_round_trips_to_the_same_mixture(problem, seed_data, seed_fit):
    params = seed_fit.parameters_ if problem == "seed" else random_problem()[1]
    theta = uncertainty.parameter_vector(params)
    assert theta.shape == (uncertainty.n_parameters(*params.means.shape),)
    back = uncertainty.parameters_from_vector(theta, *params.means.shape)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(back, name), getattr(params, name), atol=1e-12)
    names = uncertainty.parameter_names(*params.means.shape)
    assert len(names) == theta.size and len(set(names)) == theta.size


@pytest.mark.parametrize("problem", ["seed", "random"])
def test_point_scores_match_differences_of_the_log_likelihood(problem, seed_data, seed_fit):
    if problem == "seed":
        X, params = seed_data[0], seed7907.TRUE  # not the MLE: every score is far from 0
    else:
        X, params = random_problem()
    n_components = params.n_components
    theta = uncertainty.parameter_vector(params)
    numeric = central_differences(
        lambda t: uncertainty.point_log_likelihoods(X, t, n_components), theta
    )
    analytic = uncertainty.point_scores(X, params)
    assert analytic.shape == (X.shape[0], theta.size)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6 * np.abs(analytic).max())


def test_the_total_score_vanishes_at_a_tightly_converged_mle(seed_data):
    X, _ = seed_data
    exact = GaussianMixtureEM(3, init=seed7907.INITIAL, reg_covar=0.0, **TIGHT).fit(X)
    scale = np.sqrt(np.diag(uncertainty.empirical_information(X, exact.parameters_)))
    at_mle = uncertainty.point_scores(X, exact.parameters_).sum(axis=0) / scale
    at_truth = uncertainty.point_scores(X, seed7907.TRUE).sum(axis=0) / scale
    assert np.max(np.abs(at_mle)) < 1e-4
    assert np.max(np.abs(at_truth)) > 1.0  # the same measure does see a non-maximum


@pytest.mark.parametrize("problem", ["seed", "random"])
def test_the_analytic_hessian_matches_differences_of_the_score(problem, seed_data, seed_fit):
    X, params = (seed_data[0], seed_fit.parameters_) if problem == "seed" else random_problem()
    analytic = uncertainty.observed_information(X, params)
    differenced = uncertainty.observed_information(X, params, method="differences")
    np.testing.assert_allclose(analytic, differenced, atol=1e-6 * np.abs(analytic).max())


def test_the_natural_jacobian_matches_differences(seed_fit):
    params = seed_fit.parameters_
    theta = uncertainty.parameter_vector(params)

    def natural(t):
        mixture = uncertainty.parameters_from_vector(t, *params.means.shape)
        return np.concatenate([mixture.weights, mixture.means.ravel(), mixture.covariances.ravel()])

    np.testing.assert_allclose(
        uncertainty.natural_jacobian(params), central_differences(natural, theta), atol=1e-8
    )


def test_observed_and_empirical_information_agree_on_a_large_sample(seed_fit):
    # Both estimate n times the Fisher information at the true parameters: on 20,000 points
    # drawn from the fit, evaluated there, their standard errors agree to a few per cent.
    X, _ = seed_fit.sample(20_000, random_state=5)
    observed = uncertainty.standard_errors(X, seed_fit.parameters_, "observed")
    empirical = uncertainty.standard_errors(X, seed_fit.parameters_, "empirical")
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(empirical, name), getattr(observed, name), rtol=0.05)


# ---------------------------------------------------------------------------------------------
# Standard errors and Wald intervals


def test_standard_errors_are_shaped_like_the_parameters(seed_data, seed_fit):
    errors = seed_fit.standard_errors(seed_data[0])
    assert isinstance(errors, MixtureArrays)
    for name in ("weights", "means", "covariances"):
        assert getattr(errors, name).shape == getattr(seed_fit.parameters_, name).shape
        assert np.all(getattr(errors, name) > 0)
    np.testing.assert_allclose(errors.covariances, errors.covariances.transpose(0, 2, 1))
    assert not errors.weights.flags.writeable


def test_a_component_without_points_is_named_as_not_identified(seed_data, seed_fit):
    X, _ = seed_data
    fitted = seed_fit.parameters_
    far = MixtureParameters(
        np.append(fitted.weights * 0.999, 0.001),
        np.vstack([fitted.means, [[60.0, 60.0]]]),
        np.concatenate([fitted.covariances, [np.eye(2)]]),
    )
    four = GaussianMixtureEM(4, init=far, tol=1e-8).fit(X)
    with pytest.raises(ValueError, match=r"singular: component 3 \(N_k = "):
        four.standard_errors(X)


def test_an_unconverged_fit_is_named_as_not_at_a_maximum(seed_data):
    X, _ = seed_data
    early = GaussianMixtureEM(3, init=seed7907.INITIAL, max_iter=2).fit(X)
    with pytest.raises(ValueError, match=r"indefinite.*not at a maximum.*component 2 \(means"):
        early.standard_errors(X)


def test_a_flat_direction_of_the_information_is_named(seed_fit):
    # Two parameters that always move together: their difference is not identified.
    information = np.eye(uncertainty.n_parameters(3, 2))
    information[2:4, 2:4] = 1.0  # means[0, 0] and means[0, 1], after the 2 weight log-ratios
    with pytest.raises(
        ValueError, match=r"singular .*component 0 \(means\[0, 0\], means\[0, 1\]\)"
    ):
        uncertainty.check_information(information, seed_fit.parameters_)


def test_wald_intervals_use_the_normal_quantile_and_contain_the_estimate(seed_data, seed_fit):
    X, _ = seed_data
    errors = seed_fit.standard_errors(X)
    intervals = seed_fit.wald_intervals(X)
    assert intervals.prob == INTERVAL_PROB == 0.94
    np.testing.assert_allclose(
        intervals.upper.means - intervals.lower.means, 2 * Z_94 * errors.means, rtol=1e-12
    )
    for name in ("weights", "means", "covariances"):
        estimate = getattr(seed_fit.parameters_, name)
        assert np.all(getattr(intervals.lower, name) < estimate)
        assert np.all(estimate < getattr(intervals.upper, name))


def test_wald_intervals_keep_weights_in_the_unit_interval_and_variances_positive():
    # 200 points near 0 and two far away: the small component's weight (about 0.01) and variance
    # are so uncertain that estimate - z se falls below zero for both.
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(size=200), [50.0, 50.7]])[:, None]
    init = {"weights": [0.99, 0.01], "means": [[0.0], [50.0]], "covariances": [[[1.0]], [[1.0]]]}
    fit = GaussianMixtureEM(2, init=init, **TIGHT).fit(X)
    errors = fit.standard_errors(X)
    small_weight, small_variance = fit.weights_[1], fit.covariances_[1, 0, 0]
    assert small_weight - Z_94 * errors.weights[1] < 0
    assert small_variance - Z_94 * errors.covariances[1, 0, 0] < 0
    intervals = fit.wald_intervals(X)
    assert np.all((intervals.lower.weights > 0) & (intervals.upper.weights < 1))
    assert np.all(intervals.lower.covariances[:, 0, 0] > 0)


def test_bad_arguments_name_themselves(seed_data, seed_fit):
    X, _ = seed_data
    with pytest.raises(ValueError, match="information must be"):
        seed_fit.standard_errors(X, information="expected")
    with pytest.raises(ValueError, match="method must be"):
        uncertainty.observed_information(X, seed_fit.parameters_, method="bfgs")
    with pytest.raises(ValueError, match="prob must be"):
        seed_fit.wald_intervals(X, prob=1.5)
    with pytest.raises(ValueError, match="X has 3 columns"):
        seed_fit.standard_errors(np.ones((5, 3)))
    with pytest.raises(ValueError, match="theta must have shape"):
        uncertainty.parameters_from_vector(np.zeros(4), 3, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        seed_fit.bootstrap(X, 5, method="jackknife")
    with pytest.raises(ValueError, match="n_boot must be"):
        seed_fit.bootstrap(X, 0)
    with pytest.raises(ValueError, match="n_jobs must be"):
        seed_fit.bootstrap(X, 5, n_jobs=0)
    with pytest.raises(ValueError, match="random_state must be"):
        seed_fit.bootstrap(X, 5, random_state="seven")
    with pytest.raises(NotFittedError):
        GaussianMixtureEM(3).standard_errors(X)


# ---------------------------------------------------------------------------------------------
# The pieces of the bootstrap


def test_the_assignment_is_optimal_among_all_permutations():
    rng = np.random.default_rng(0)
    for trial in range(200):
        size = int(rng.integers(1, 7))
        cost = rng.random((size, size))
        if trial % 3 == 0:
            cost = np.round(cost * 3)  # ties
        order = bootstrap.assignment(cost)
        best = bootstrap.brute_force_assignment(cost)
        assert sorted(order.tolist()) == list(range(size))
        assert cost[range(size), order].sum() == pytest.approx(cost[range(size), best].sum())


def test_a_permuted_replicate_is_matched_back(seed_fit):
    params = seed_fit.parameters_
    permuted = params.means[[2, 0, 1]] + 0.05
    order = bootstrap.assignment(bootstrap.matching_costs(permuted, params))
    assert order.tolist() == [1, 2, 0]


def test_weighted_em_with_counts_is_em_on_the_repeated_points(seed_data):
    X, _ = seed_data
    counts = np.random.default_rng(2).integers(0, 3, size=X.shape[0])
    start = (seed7907.INITIAL.weights, seed7907.INITIAL.means, seed7907.INITIAL.covariances)
    weighted = run_em(X, start, 100, 1e-8, 1e-6, sample_weight=counts.astype(float))
    repeated = run_em(np.repeat(X, counts, axis=0), start, 100, 1e-8, 1e-6)
    assert weighted.n_iter == repeated.n_iter
    assert weighted.objective == pytest.approx(repeated.objective, rel=1e-12)
    np.testing.assert_allclose(weighted.state.covariances, repeated.state.covariances, atol=1e-10)
    np.testing.assert_allclose(weighted.state.means, repeated.state.means, atol=1e-10)


@pytest.mark.parametrize("method", bootstrap.BOOTSTRAP_METHODS)
def test_the_bootstrap_does_not_depend_on_the_number_of_processes(method, seed_data, seed_fit):
    X, _ = seed_data
    serial = seed_fit.bootstrap(X, 12, method=method, random_state=4, n_jobs=1)
    parallel = seed_fit.bootstrap(X, 12, method=method, random_state=4, n_jobs=2)
    again = seed_fit.bootstrap(X, 12, method=method, random_state=5, n_jobs=1)
    assert isinstance(serial, BootstrapResult)
    assert serial.weights.shape == (12, 3)
    assert serial.means.shape == (12, 3, 2) and serial.covariances.shape == (12, 3, 2, 2)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(serial, name), getattr(parallel, name))
    assert not np.array_equal(serial.means, again.means)


def test_failed_replicates_are_counted_and_left_out():
    # Without reg_covar, a resample that misses both far points leaves the second component
    # with no points and a zero covariance: that replicate's EM fails.
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(size=100), [50.0, 50.7]])[:, None]
    init = {"weights": [0.98, 0.02], "means": [[0.0], [50.0]], "covariances": [[[1.0]], [[1.0]]]}
    fit = GaussianMixtureEM(2, init=init, reg_covar=0.0).fit(X)
    result = fit.bootstrap(X, 60, random_state=0)
    assert result.n_failed > 0
    assert result.weights.shape == (60 - result.n_failed, 2)
    assert np.all(np.isfinite(result.covariances))


def test_percentile_intervals_and_standard_errors_of_the_replicates(seed_data, seed_fit):
    X, _ = seed_data
    result = seed_fit.bootstrap(X, 40, random_state=1)
    intervals = result.intervals()
    assert intervals.prob == INTERVAL_PROB
    np.testing.assert_allclose(intervals.lower.means, np.quantile(result.means, 0.03, axis=0))
    np.testing.assert_allclose(
        result.standard_errors().weights, np.std(result.weights, axis=0, ddof=1)
    )
    assert np.all(intervals.lower.weights < intervals.upper.weights)


# ---------------------------------------------------------------------------------------------
# Agreement: information against bootstrap and posterior


def assert_close_ratios(
    estimate: MixtureArrays, reference: MixtureArrays, tolerance: float, names: tuple[str, ...]
):
    """Every entry of estimate within `tolerance` (relative) of reference, for the named arrays."""
    for name in names:
        ratio = getattr(estimate, name) / getattr(reference, name)
        assert np.all(np.abs(ratio - 1) < tolerance), f"{name}: ratios {np.round(ratio, 3)}"


@pytest.mark.parametrize("method", bootstrap.BOOTSTRAP_METHODS)
def test_bootstrap_and_information_agree_on_seed7907(method, seed_data, seed_fit):
    X, _ = seed_data
    information = seed_fit.standard_errors(X)
    result = seed_fit.bootstrap(X, BOOTSTRAP_REPLICATES, method=method, random_state=0, n_jobs=2)
    assert result.n_failed == 0 and result.n_relabelled == 0
    assert_close_ratios(
        result.standard_errors(), information, BOOTSTRAP_TOLERANCE, ("weights", "means")
    )


@pytest.mark.parametrize("method", bootstrap.BOOTSTRAP_METHODS)
def test_bootstrap_and_information_agree_on_seed1000(method, seed1000_fit):
    X, fit = seed1000_fit
    information = fit.standard_errors(X)
    result = fit.bootstrap(X, BOOTSTRAP_REPLICATES, method=method, random_state=0, n_jobs=2)
    assert result.n_failed == 0 and result.n_relabelled == 0
    assert_close_ratios(
        result.standard_errors(), information, BOOTSTRAP_TOLERANCE, ("weights", "means")
    )


@pytest.mark.sampling
def test_information_and_posterior_agree_on_seed7907(seed_data, seed_fit, seed_posterior):
    X, _ = seed_data
    posterior = seed_posterior.posterior
    sds = MixtureArrays(
        *(
            posterior[name].std(("chain", "draw")).values
            for name in ("weights", "means", "covariances")
        )
    )
    assert_close_ratios(
        seed_fit.standard_errors(X), sds, POSTERIOR_TOLERANCE, ("weights", "means", "covariances")
    )
