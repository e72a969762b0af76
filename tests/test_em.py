"""The EM reference: the seed run, EM's guarantees, and scikit-learn as a peer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import em_reference
from em_reference import (
    DegenerateFitError,
    GaussianMixtureEM,
    MixtureParameters,
    sample_mixture,
    seed7907,
)
from em_reference.base import kmeans_plus_plus_centres, parameters_from_centres
from tests.conftest import random_mixture

# ---------------------------------------------------------------------------------------------
# The seed program's run


def test_em_from_the_seed_start_reproduces_the_published_table(seed_em):
    published = seed7907.PUBLISHED
    decimals = seed7907.PUBLISHED_DECIMALS
    assert np.array_equal(np.round(seed_em.weights_, decimals), published.weights)
    assert np.array_equal(np.round(seed_em.means_, decimals), published.means)
    assert np.array_equal(np.round(seed_em.covariances_, decimals), published.covariances)


def test_em_from_the_seed_start_reproduces_the_published_accuracy(seed_em, seed_data):
    X, labels = seed_data
    correct = int(np.sum(seed_em.predict(X) == labels))
    assert correct == seed7907.PUBLISHED_CORRECT
    assert round(correct / len(labels), 3) == seed7907.PUBLISHED_ACCURACY


def test_em_from_the_seed_start_stops_where_the_rederivation_did(seed_em):
    assert seed_em.n_iter_ == 16
    assert seed_em.converged_
    assert seed_em.log_likelihood_ == pytest.approx(-2089.5719, abs=5e-5)
    assert len(seed_em.log_likelihood_history_) == seed_em.n_iter_ + 1
    assert seed_em.log_likelihood_history_[-1] == seed_em.log_likelihood_


def test_stopping_rule_is_the_absolute_total_improvement(seed_em):
    improvements = np.diff(seed_em.log_likelihood_history_)
    assert improvements[-1] < seed7907.TOL
    assert np.all(improvements[:-1] >= seed7907.TOL)


def test_max_iter_stops_a_run_that_has_not_converged_with_a_warning(seed_data):
    X, _ = seed_data
    with pytest.warns(em_reference.ConvergenceWarning, match="max_iter=5 before converging"):
        fit = GaussianMixtureEM(3, init=seed7907.INITIAL, max_iter=5).fit(X)
    assert fit.n_iter_ == 5
    assert not fit.converged_
    assert issubclass(em_reference.ConvergenceWarning, UserWarning)


def test_a_converged_fit_gives_no_warning(seed_data):
    X, _ = seed_data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = GaussianMixtureEM(3, init=seed7907.INITIAL).fit(X)
    assert fit.converged_ and fit.n_failed_starts_ == 0


def test_restarts_from_the_data_find_the_same_optimum_up_to_labels(seed_data, seed_em):
    X, _ = seed_data
    fit = GaussianMixtureEM(3, init="kmeans++", n_init=10, random_state=0).fit(X)
    order = np.argsort(fit.means_[:, 0])
    reference_order = np.argsort(seed_em.means_[:, 0])
    assert np.allclose(fit.means_[order], seed_em.means_[reference_order], atol=1e-3)
    assert fit.log_likelihood_ == pytest.approx(seed_em.log_likelihood_, abs=1e-2)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_data_driven_starts_are_reproducible(seed_data, init):
    X, _ = seed_data
    first = GaussianMixtureEM(3, init=init, n_init=3, random_state=42).fit(X)
    second = GaussianMixtureEM(3, init=init, n_init=3, random_state=42).fit(X)
    assert np.array_equal(first.means_, second.means_)
    assert first.log_likelihood_history_ == second.log_likelihood_history_


def test_restarts_keep_the_best_log_likelihood(seed_data):
    X, _ = seed_data
    finals: list[float] = []

    def record_final(iteration, parameters, responsibilities, log_likelihood):
        if iteration == 1:
            finals.append(log_likelihood)
        finals[-1] = log_likelihood

    fit = GaussianMixtureEM(3, init="random", n_init=6, random_state=3, callback=record_final).fit(
        X
    )
    assert len(finals) == 6
    assert len(set(np.round(finals, 6))) > 1, "the starts should reach different optima"
    assert fit.log_likelihood_ == max(finals)


def test_callback_sees_every_iteration(seed_data, seed_em):
    X, _ = seed_data
    seen = []

    def record(iteration, parameters, responsibilities, log_likelihood):
        assert isinstance(parameters, MixtureParameters)
        assert responsibilities.shape == (500, 3)
        assert np.allclose(responsibilities.sum(axis=1), 1.0)
        seen.append((iteration, log_likelihood))

    GaussianMixtureEM(3, init=seed7907.INITIAL, callback=record).fit(X)
    assert [i for i, _ in seen] == list(range(1, seed_em.n_iter_ + 1))
    assert [ll for _, ll in seen] == seed_em.log_likelihood_history_[1:]


# ---------------------------------------------------------------------------------------------
# Random mixtures for property tests and the peer comparison


def random_start(rng: np.random.Generator, X: np.ndarray, n_components: int) -> dict:
    """Arbitrary valid initial values: random weights, random data points, random SPD matrices."""
    n_features = X.shape[1]
    factors = rng.normal(size=(n_components, n_features, n_features))
    return {
        "weights": rng.dirichlet(np.ones(n_components)),
        "means": X[rng.choice(len(X), n_components, replace=False)],
        "covariances": factors @ factors.transpose(0, 2, 1) + 0.1 * np.eye(n_features),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n_components=st.integers(1, 4),
    n_features=st.integers(1, 4),
    n_points=st.integers(30, 300),
)
@example(seed=159695, n_components=4, n_features=2, n_points=30)  # decreased with reg_covar
def test_log_likelihood_never_decreases(seed, n_components, n_features, n_points):
    # The guarantee is for the exact M-step: reg_covar's ridge makes it a slightly worse one, and
    # near a collapsing component the log-likelihood then fell by 4e-7 in the example above.
    rng = np.random.default_rng(seed)
    X, _ = sample_mixture(n_points, *random_mixture(rng, n_components, n_features), seed=seed)
    start = random_start(rng, X, n_components)
    estimator = GaussianMixtureEM(n_components, init=start, max_iter=40, tol=0.0, reg_covar=0.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", em_reference.ConvergenceWarning)
            fit = estimator.fit(X)
    except DegenerateFitError:
        reject()  # a component collapsed onto its points: the likelihood is unbounded there
    if np.any(fit.weights_ * n_points < n_features + 1):
        # The same collapse not yet detected: a component on D or fewer points has a singular
        # scatter, so its covariance is positive definite only by rounding (seed=0, K=3, D=3,
        # n=30 fell by 1.04 at a weight of 3/30, on the code before the engine moved too).
        reject()
    history = np.array(fit.log_likelihood_history_)
    assert np.all(np.isfinite(history))
    # EM's guarantee, allowing only floating-point rounding of a sum of n terms.
    rounding = 1e-12 * n_points * max(1.0, np.max(np.abs(history)))
    assert np.all(np.diff(history) >= -rounding)


PEER_CASES = [(1, 2, 0), (2, 3, 1), (3, 4, 2), (5, 2, 3), (4, 5, 4), (2, 1, 5)]


def _same_start_for_both(n_features: int, n_components: int, seed: int):
    """A random dataset and one k-means++ start as (weights, means, covariances)."""
    rng = np.random.default_rng(seed)
    X, _ = sample_mixture(600, *random_mixture(rng, n_components, n_features), seed=seed + 1)
    start = parameters_from_centres(X, kmeans_plus_plus_centres(X, n_components, rng), 1e-6)
    return X, start


def _sklearn_from(start, max_iter: int, tol: float) -> GaussianMixture:
    weights, means, covariances = start
    return GaussianMixture(
        len(weights),
        covariance_type="full",
        weights_init=weights,
        means_init=means,
        precisions_init=np.linalg.inv(covariances),
        reg_covar=1e-6,
        max_iter=max_iter,
        tol=tol,
    )


def _largest_difference(ours: GaussianMixtureEM, peer: GaussianMixture) -> float:
    return max(
        np.max(np.abs(ours.weights_ - peer.weights_)),
        np.max(np.abs(ours.means_ - peer.means_)),
        np.max(np.abs(ours.covariances_ - peer.covariances_)),
    )


@pytest.mark.parametrize(("n_features", "n_components", "seed"), PEER_CASES)
def test_same_iterations_as_scikit_learn_give_the_same_parameters(n_features, n_components, seed):
    X, start = _same_start_for_both(n_features, n_components, seed)
    iterations = 25
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        peer = _sklearn_from(start, max_iter=iterations, tol=0.0).fit(X)
    ours = GaussianMixtureEM(
        n_components,
        init=dict(zip(["weights", "means", "covariances"], start, strict=True)),
        max_iter=iterations,
        tol=0.0,
    ).fit(X)
    assert ours.n_iter_ == iterations
    assert _largest_difference(ours, peer) < 1e-8
    assert ours.score(X) == pytest.approx(peer.score(X), rel=1e-9)


@pytest.mark.parametrize(("n_features", "n_components", "seed"), PEER_CASES)
def test_converged_fit_agrees_with_scikit_learn(n_features, n_components, seed):
    X, start = _same_start_for_both(n_features, n_components, seed)
    init = dict(zip(["weights", "means", "covariances"], start, strict=True))
    ours = GaussianMixtureEM(n_components, init=init, max_iter=5000, tol=1e-10).fit(X)
    assert ours.converged_
    # The two libraries' stopping rules differ (total vs per-point change), and on a flat optimum
    # EM still drifts while its gain is at rounding level: so give the peer our iteration count.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        peer = _sklearn_from(start, max_iter=ours.n_iter_, tol=0.0).fit(X)
    assert _largest_difference(ours, peer) < 1e-6
    assert ours.bic(X) == pytest.approx(peer.bic(X), rel=1e-9)
    assert ours.aic(X) == pytest.approx(peer.aic(X), rel=1e-9)
    assert np.allclose(ours.score_samples(X), peer.score_samples(X), rtol=1e-7, atol=1e-7)
    assert np.allclose(ours.predict_proba(X), peer.predict_proba(X), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The rest of the scikit-learn-style API


def test_predict_is_the_most_responsible_component(seed_em, seed_data):
    X, _ = seed_data
    probabilities = seed_em.predict_proba(X)
    assert probabilities.shape == (500, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.array_equal(seed_em.predict(X), probabilities.argmax(axis=1))


def test_score_is_the_mean_of_score_samples(seed_em, seed_data):
    X, _ = seed_data
    assert seed_em.score_samples(X).sum() == pytest.approx(seed_em.log_likelihood_, rel=1e-12)
    assert seed_em.score(X) == pytest.approx(seed_em.log_likelihood_ / 500, rel=1e-12)


def test_information_criteria_count_the_free_parameters(seed_em, seed_data):
    X, _ = seed_data
    n_parameters = 2 + 3 * 2 + 3 * 3  # weights, means, covariance entries
    assert seed_em.bic(X) == pytest.approx(
        -2 * seed_em.log_likelihood_ + n_parameters * np.log(500)
    )
    assert seed_em.aic(X) == pytest.approx(-2 * seed_em.log_likelihood_ + 2 * n_parameters)


def test_sample_draws_from_the_fitted_mixture(seed_em):
    X, labels = seed_em.sample(30_000, random_state=1)
    assert X.shape == (30_000, 2)
    assert np.allclose(np.bincount(labels) / 30_000, seed_em.weights_, atol=0.01)
    assert np.allclose(X[labels == 1].mean(axis=0), seed_em.means_[1], atol=0.05)
    again, _ = seed_em.sample(30_000, random_state=1)
    assert np.array_equal(X, again)


def test_points_too_far_for_float64_are_a_clear_error(seed_em):
    # Before: NaN responsibilities and a -inf log-density with only a RuntimeWarning.
    far = np.array([[0.0, 0.0], [1e160, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning either
        for method in (seed_em.predict_proba, seed_em.score_samples, seed_em.predict):
            with pytest.raises(ValueError, match=r"1 row\(s\) \(first at row 1\) too far"):
                method(far)


def test_a_non_finite_log_likelihood_stops_the_run_at_once():
    # Before: 100,001 passes (NaN never fails the stopping rule), then a vague error; with a
    # callback, a misleading "weights contain NaN".
    X = np.vstack([np.random.default_rng(0).normal(size=(50, 2)), [[1e160, 0.0]]])
    start = {
        "weights": [0.5, 0.5],
        "means": [[0.0, 0.0], [1.0, 1.0]],
        "covariances": [np.eye(2)] * 2,
    }
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DegenerateFitError, match="too large: squared distances overflow"):
            GaussianMixtureEM(
                2, init=start, max_iter=100000, callback=lambda *a: calls.append(a)
            ).fit(X)
    assert calls == []  # stopped at the starting parameters, before any iteration


def test_a_failed_restart_is_skipped_counted_and_warned():
    # Before: one collapsing start raised for all 20, naming "component(s) []".
    X = load_iris().data
    with pytest.warns(em_reference.ConvergenceWarning, match=r"of 20 EM starts failed"):
        fit = GaussianMixtureEM(3, init="kmeans++", n_init=20, random_state=0, reg_covar=0).fit(X)
    assert 1 <= fit.n_failed_starts_ < 20
    assert np.all(np.isfinite(fit.covariances_)) and fit.converged_
    # The best of the starts that worked is scikit-learn's optimum on iris.
    peer = GaussianMixture(3, n_init=5, random_state=0, tol=1e-8, max_iter=1000).fit(X)
    assert fit.log_likelihood_ == pytest.approx(peer.score(X) * len(X), abs=0.05)


def test_all_starts_failing_is_an_error_naming_the_components():
    X = np.vstack([np.zeros((5, 2)), np.ones((5, 2))])  # two points, repeated
    with pytest.raises(DegenerateFitError, match=r"from all 4 starts.*component\(s\) \[\d"):
        GaussianMixtureEM(2, n_init=4, random_state=0, reg_covar=0).fit(X)


def test_far_away_points_get_valid_responsibilities(seed_em):
    far = np.array([[1e4, -1e4], [-3e3, 2e3], [1e6, 1e6]])
    probabilities = seed_em.predict_proba(far)
    assert np.all(np.isfinite(probabilities))
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.all(np.isfinite(seed_em.score_samples(far)))


# ---------------------------------------------------------------------------------------------
# Bad input: a ValueError that names the problem


def test_unfitted_estimator_says_so():
    with pytest.raises(ValueError, match="not fitted"):
        GaussianMixtureEM(2).predict(np.zeros((3, 2)))


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros(10), "2-D"),
        (np.zeros((2, 2, 2)), "2-D"),
        (np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]), "NaN or infinite"),
        (np.array([[0.0, 1.0], [np.inf, 2.0], [3.0, 4.0]]), "NaN or infinite"),
        (np.zeros((2, 2)), "fewer than n_components=3"),
        ([["a", "b"], ["c", "d"], ["e", "f"]], "numeric"),
        (np.zeros((0, 2)), "at least one row"),
    ],
)
def test_bad_data_is_refused(X, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(3).fit(X)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_components": 0}, "n_components must be an integer >= 1"),
        ({"n_components": 2.5}, "n_components must be an integer >= 1"),
        ({"n_init": 0}, "n_init must be an integer >= 1"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1"),
        ({"tol": -1.0}, "tol must be"),
        ({"reg_covar": float("nan")}, "reg_covar must be"),
        ({"init": "kmeans"}, "init must be one of"),
        ({"init": seed7907.INITIAL, "n_init": 3}, "n_init must be 1 with explicit initial values"),
        ({"init": object()}, "need 'weights'"),
    ],
)
def test_bad_settings_are_refused(seed_data, options, message):
    X, _ = seed_data
    options = {"n_components": 3} | options
    with pytest.raises((ValueError, TypeError), match=message):
        GaussianMixtureEM(**options).fit(X)


def _initial_with(**changes) -> dict:
    """The seed program's initial values with some entries replaced."""
    return seed7907.INITIAL.as_dict() | changes


@pytest.mark.parametrize(
    ("init", "message"),
    [
        (_initial_with(weights=[0.5, 0.5]), "means must have shape"),
        (_initial_with(means=[[0.0, 0.0, 0.0]] * 3), "covariances must have shape"),
        (_initial_with(covariances=np.ones((3, 3, 3))), "covariances must have shape"),
        (_initial_with(weights=[1.2, -0.1, -0.1]), "non-negative"),
        (_initial_with(weights=[0.5, 0.3, 0.3]), "sum to 1"),
        (_initial_with(covariances=[[[1, 0.5], [0.2, 1]]] * 3), "not symmetric"),
        (_initial_with(covariances=[[[1, 2], [2, 1]]] * 3), "not positive definite"),
        (_initial_with(means=[[np.nan, 0.0]] * 3), "NaN or infinite"),
    ],
)
def test_bad_initial_values_are_refused(seed_data, init, message):
    X, _ = seed_data
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(3, init=init).fit(X)


def test_initial_values_must_match_the_data_and_component_count(seed_data):
    X, _ = seed_data
    with pytest.raises(ValueError, match="init has 3 components but n_components=2"):
        GaussianMixtureEM(2, init=seed7907.INITIAL).fit(X)
    with pytest.raises(ValueError, match="init means have 2 columns but X has 3"):
        GaussianMixtureEM(3, init=seed7907.INITIAL).fit(np.hstack([X, X[:, :1]]))


def test_new_data_must_have_the_fitted_dimension(seed_em):
    with pytest.raises(ValueError, match="X has 3 columns but the model was fitted with 2"):
        seed_em.predict(np.zeros((4, 3)))


# ---------------------------------------------------------------------------------------------
# Degenerate data: finite, valid parameters (or a clear error), never NaN


def _assert_valid_fit(fit: GaussianMixtureEM) -> None:
    for name in ("weights_", "means_", "covariances_", "log_likelihood_history_"):
        assert np.all(np.isfinite(getattr(fit, name))), name
    assert fit.weights_.sum() == pytest.approx(1.0)
    assert np.all(np.linalg.eigvalsh(fit.covariances_) > 0)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_identical_points_give_finite_parameters(init):
    X = np.tile([[1.5, -2.0]], (20, 1))
    fit = GaussianMixtureEM(3, init=init, random_state=0).fit(X)
    _assert_valid_fit(fit)
    assert np.allclose(fit.means_[fit.weights_ > 0.1], [1.5, -2.0])


def test_component_collapsing_onto_one_point_stays_regularised():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(50, 2)), [[30.0, 30.0]]])
    start = {
        "weights": [0.9, 0.1],
        "means": [[0.0, 0.0], [30.0, 30.0]],
        "covariances": [np.eye(2), np.eye(2)],
    }
    fit = GaussianMixtureEM(2, init=start).fit(X)
    _assert_valid_fit(fit)
    assert np.allclose(fit.covariances_[1], 1e-6 * np.eye(2), atol=1e-9)


def test_component_whose_responsibilities_vanish_keeps_valid_parameters():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 2))
    start = {
        "weights": [0.5, 0.5],
        "means": [[0.0, 0.0], [1e4, 1e4]],
        "covariances": [np.eye(2), np.eye(2)],
    }
    fit = GaussianMixtureEM(2, init=start).fit(X)
    _assert_valid_fit(fit)
    assert fit.weights_[1] < 1e-12


def test_collapse_without_regularisation_is_a_clear_error():
    X = np.vstack([np.random.default_rng(2).normal(size=(30, 2)), [[50.0, 50.0]]])
    start = {
        "weights": [0.9, 0.1],
        "means": [[0.0, 0.0], [50.0, 50.0]],
        "covariances": [np.eye(2)] * 2,
    }
    with pytest.raises(ValueError, match="increase reg_covar"):
        GaussianMixtureEM(2, init=start, reg_covar=0.0).fit(X)
