"""Variational Bayes: scikit-learn as a peer, the ELBO as a true bound, the seed(1000) set-up."""

from __future__ import annotations

import itertools
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special, stats
from sklearn.mixture import BayesianGaussianMixture

from analysis.datasets import load_dataset
from em_reference import ConvergenceWarning, MixtureParameters, NotFittedError, seed7907
from em_reference.em import expectation_step
from em_reference.likelihood import precisions_cholesky
from em_reference.variational import (
    SEED1000_PRIORS,
    VariationalGaussianMixture,
    digamma,
    log_gamma,
    log_responsibilities,
    variational_pass,
)

# Priors unlike scikit-learn's defaults in every entry, so that each one is exercised.
PRIORS = {
    "weight_concentration_prior": 0.7,
    "mean_precision_prior": 0.5,
    "mean_prior": [1.0, 2.0],
    "degrees_of_freedom_prior": 3.5,
    "covariance_prior": [[2.0, 0.3], [0.3, 1.0]],
}
PRIOR_NAMES = tuple(PRIORS)


class BayesianMixtureFromResponsibilities(BayesianGaussianMixture):
    """scikit-learn's estimator started from given responsibilities (`start`, set before fit)."""

    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self.start)


def seed_start(X: np.ndarray) -> np.ndarray:
    """EM's responsibilities (500, 3) of the seed program's initial values."""
    start = seed7907.INITIAL
    log_resp, _ = expectation_step(
        X, start.weights, start.means, precisions_cholesky(start.covariances)
    )
    return np.exp(log_resp)


def fit_both(X, start, priors, max_iter=500, tol=1e-5):
    """Ours and scikit-learn's (Dirichlet weights, no reg_covar) from the same responsibilities."""
    ours = VariationalGaussianMixture(
        start.shape[1], init=start, max_iter=max_iter, tol=tol, **priors
    ).fit(X)
    peer = BayesianMixtureFromResponsibilities(
        n_components=start.shape[1],
        weight_concentration_prior_type="dirichlet_distribution",
        reg_covar=0.0,
        max_iter=max_iter,
        tol=tol,
        **priors,
    )
    peer.start = start
    peer.fit(X)
    return ours, peer


def dropped_constants(peer: BayesianGaussianMixture, n_points: int) -> float:
    """What scikit-learn's lower bound leaves out of the full ELBO, from its fitted priors.

    At the optimal q(pi) q(mu, Lambda) given the responsibilities, the ELBO is
    H(q(Z)) + ln C(alpha_0) - ln C(alpha) + sum_k [-N_k D/2 ln 2pi + D/2 ln(beta_0 / beta_k)
    + ln B(W_0, nu_0) - ln B(W_k, nu_k)]. scikit-learn keeps H, -ln C(alpha), -D/2 ln beta_k and
    -ln B(W_k, nu_k) without its -D(D-1)/4 ln pi; the rest is constant in the data's statistics.
    """
    n_components = peer.n_components
    n_features = peer.mean_prior_.shape[0]
    alpha_0 = peer.weight_concentration_prior_
    nu_0 = peer.degrees_of_freedom_prior_
    log_det_psi_0 = np.linalg.slogdet(peer.covariance_prior_)[1]
    # ln B(W_0, nu_0) with |W_0| = 1 / |W_0^-1|, and multigammaln = D(D-1)/4 ln pi + sum ln Gamma.
    log_b_0 = (
        0.5 * nu_0 * log_det_psi_0
        - 0.5 * nu_0 * n_features * np.log(2.0)
        - special.multigammaln(0.5 * nu_0, n_features)
    )
    return (
        -0.5 * n_points * n_features * np.log(2.0 * np.pi)
        + 0.5 * n_components * n_features * np.log(peer.mean_precision_prior_)
        + n_components * log_b_0
        + 0.25 * n_components * n_features * (n_features - 1) * np.log(np.pi)
        + special.gammaln(n_components * alpha_0)
        - n_components * special.gammaln(alpha_0)
    )


def log_evidence_one_component(X: np.ndarray, priors: dict) -> float:
    """ln p(X) under one Gauss-Wishart component (the normal-inverse-Wishart marginal)."""
    n_points, n_features = X.shape
    beta_0 = priors["mean_precision_prior"]
    nu_0 = priors["degrees_of_freedom_prior"]
    m_0 = np.asarray(priors["mean_prior"], dtype=float)
    psi_0 = np.asarray(priors["covariance_prior"], dtype=float)
    if n_points == 0:
        return 0.0
    centre = X.mean(axis=0)
    scatter = (X - centre).T @ (X - centre)
    beta_n, nu_n = beta_0 + n_points, nu_0 + n_points
    offset = centre - m_0
    psi_n = psi_0 + scatter + beta_0 * n_points / beta_n * np.outer(offset, offset)
    return (
        -0.5 * n_points * n_features * np.log(np.pi)
        + special.multigammaln(0.5 * nu_n, n_features)
        - special.multigammaln(0.5 * nu_0, n_features)
        + 0.5 * nu_0 * np.linalg.slogdet(psi_0)[1]
        - 0.5 * nu_n * np.linalg.slogdet(psi_n)[1]
        + 0.5 * n_features * (np.log(beta_0) - np.log(beta_n))
    )


def log_evidence_by_enumeration(X: np.ndarray, n_components: int, priors: dict) -> float:
    """ln p(X) of the K-component model, summing over all K^n assignments (tiny n only)."""
    alpha_0 = priors["weight_concentration_prior"]
    terms = []
    for labels in itertools.product(range(n_components), repeat=X.shape[0]):
        labels = np.array(labels)
        counts = np.bincount(labels, minlength=n_components)
        log_assignment = (
            special.gammaln(n_components * alpha_0)
            - special.gammaln(X.shape[0] + n_components * alpha_0)
            + np.sum(special.gammaln(counts + alpha_0) - special.gammaln(alpha_0))
        )
        log_data = sum(
            log_evidence_one_component(X[labels == k], priors) for k in range(n_components)
        )
        terms.append(log_assignment + log_data)
    return float(special.logsumexp(terms))


@pytest.fixture(scope="module")
def seed_pair(seed_data):
    """Ours and scikit-learn's fits of seed-7907 with PRIORS from the seed program's start."""
    X, _ = seed_data
    return fit_both(X, seed_start(X), PRIORS)


# ---------------------------------------------------------------------------------------------
# Special functions


def test_digamma_and_log_gamma_match_scipy():
    values = np.concatenate([np.geomspace(1e-3, 1e6, 400), [0.5, 1.0, 1.5, 9.999, 10.0, 10.001]])
    np.testing.assert_allclose(digamma(values), special.digamma(values), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(log_gamma(values), special.gammaln(values), rtol=1e-13, atol=1e-13)
    assert digamma(np.ones((2, 3))).shape == (2, 3)


def test_variational_module_needs_numpy_only():
    code = "import sys, em_reference.variational; print('scipy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_digamma_rejects_non_positive_arguments():
    with pytest.raises(ValueError, match="positive"):
        digamma([1.0, 0.0])


# ---------------------------------------------------------------------------------------------
# scikit-learn as a peer


def test_parameters_match_scikit_learn_from_the_same_start(seed_pair):
    ours, peer = seed_pair
    assert ours.n_iter_ == peer.n_iter_
    assert ours.converged_
    for name in (
        "weight_concentration_",
        "mean_precision_",
        "means_",
        "degrees_of_freedom_",
        "weights_",
        "covariances_",
        "precisions_cholesky_",
    ):
        np.testing.assert_allclose(getattr(ours, name), getattr(peer, name), rtol=0, atol=1e-6)


def test_scale_cholesky_is_bishops_w(seed_pair):
    ours, peer = seed_pair
    scale = ours.scale_cholesky_ @ np.swapaxes(ours.scale_cholesky_, 1, 2)
    # scikit-learn stores W_k^-1 / nu_k as covariances_.
    expected = np.linalg.inv(peer.covariances_ * peer.degrees_of_freedom_[:, None, None])
    np.testing.assert_allclose(scale, expected, rtol=1e-9)
    assert np.allclose(np.tril(ours.scale_cholesky_, -1), 0.0)


def test_lower_bound_is_scikit_learns_plus_the_constants_it_drops(seed_pair, seed_data):
    ours, peer = seed_pair
    X, _ = seed_data
    constant = dropped_constants(peer, X.shape[0])
    difference = np.array(ours.lower_bound_history_) - np.array(peer.lower_bounds_)
    np.testing.assert_allclose(difference, constant, rtol=0, atol=1e-6)
    assert ours.lower_bound_ == pytest.approx(peer.lower_bound_ + constant, abs=1e-6)


def test_default_priors_are_scikit_learns_data_scaled_ones(seed_data):
    X, _ = seed_data
    ours, peer = fit_both(X, seed_start(X), {})
    assert ours.n_iter_ == peer.n_iter_
    assert ours.weight_concentration_prior_ == pytest.approx(1 / 3)
    assert ours.mean_precision_prior_ == peer.mean_precision_prior_ == 1.0
    assert ours.degrees_of_freedom_prior_ == peer.degrees_of_freedom_prior_ == 2
    np.testing.assert_allclose(ours.mean_prior_, peer.mean_prior_, rtol=1e-14)
    np.testing.assert_allclose(ours.covariance_prior_, peer.covariance_prior_, rtol=1e-14)
    np.testing.assert_allclose(ours.means_, peer.means_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.covariances_, peer.covariances_, rtol=0, atol=1e-6)
    difference = np.array(ours.lower_bound_history_) - np.array(peer.lower_bounds_)
    np.testing.assert_allclose(difference, dropped_constants(peer, X.shape[0]), atol=1e-6)


def test_predict_proba_matches_scikit_learn(seed_pair, seed_data):
    ours, peer = seed_pair
    X, _ = seed_data
    np.testing.assert_allclose(ours.predict_proba(X), peer.predict_proba(X), rtol=0, atol=1e-9)
    assert np.array_equal(ours.predict(X), peer.predict(X))


def test_score_samples_is_scikit_learns_log_normaliser(seed_pair, seed_data):
    ours, peer = seed_pair
    X, _ = seed_data
    np.testing.assert_allclose(ours.score_samples(X), peer.score_samples(X), rtol=0, atol=1e-6)
    assert ours.score(X) == pytest.approx(peer.score(X), abs=1e-6)


def test_stopping_at_max_iter_is_warned_like_em(seed_data):
    X, _ = seed_data
    with pytest.warns(ConvergenceWarning, match="VB stopped at max_iter=3 before converging"):
        fit = VariationalGaussianMixture(3, init=seed7907.INITIAL, max_iter=3).fit(X)
    assert fit.n_iter_ == 3 and not fit.converged_ and fit.n_failed_starts_ == 0


# ---------------------------------------------------------------------------------------------
# The ELBO: in full, a bound on the evidence, never decreasing


def test_one_component_elbo_is_the_exact_log_evidence(seed_data):
    # With K = 1, q(Z) is exact and q(mu, Lambda) is the exact posterior, so the bound is tight.
    X, _ = seed_data
    start = np.ones((X.shape[0], 1))
    fit = VariationalGaussianMixture(1, init=start, **PRIORS).fit(X)
    assert fit.lower_bound_ == pytest.approx(log_evidence_one_component(X, PRIORS), abs=1e-8)


def test_elbo_is_below_the_log_evidence_counted_by_enumeration():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(-2.0, 1.0, (4, 2)), rng.normal(2.0, 1.0, (4, 2))])
    priors = {**PRIORS, "mean_prior": [0.0, 0.0]}
    log_evidence = log_evidence_by_enumeration(X, 2, priors)
    start = rng.dirichlet(np.ones(2), size=X.shape[0])
    fit = VariationalGaussianMixture(2, init=start, **priors).fit(X)
    assert fit.lower_bound_ <= log_evidence
    # ... and not a loose one: the gap is ln 2 for the label symmetry q cannot represent, plus
    # the mean-field cost of 8 points (1.9 nats here), far below a misplaced constant's size.
    assert log_evidence - fit.lower_bound_ < 3.0


def test_entropy_from_the_pass_equals_the_direct_sum(seed_pair, seed_data):
    ours, _ = seed_pair
    X, _ = seed_data
    entropy, _ = variational_pass(X, ours.posterior_)
    log_resp = log_responsibilities(X, ours.posterior_)
    direct = -float(np.sum(np.exp(log_resp) * log_resp))
    assert entropy == pytest.approx(direct, rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_points=st.integers(5, 40),
    n_features=st.integers(1, 3),
    n_components=st.integers(1, 4),
    alpha_0=st.floats(0.05, 5.0),
    beta_0=st.floats(0.01, 10.0),
    extra_dof=st.floats(0.01, 5.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_elbo_history_never_decreases(
    n_points, n_features, n_components, alpha_0, beta_0, extra_dof, seed
):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_points, n_features)) * rng.uniform(0.1, 10.0, n_features)
    factor = rng.normal(size=(n_features, n_features))
    estimator = VariationalGaussianMixture(
        n_components,
        weight_concentration_prior=alpha_0,
        mean_precision_prior=beta_0,
        mean_prior=rng.normal(size=n_features),
        degrees_of_freedom_prior=n_features - 1 + extra_dof,
        covariance_prior=factor @ factor.T + 0.1 * np.eye(n_features),
        init=rng.dirichlet(np.ones(n_components), size=n_points),
        max_iter=60,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol = 0 runs to max_iter
        fit = estimator.fit(X)
    history = np.array(fit.lower_bound_history_)
    assert np.all(np.isfinite(history))
    # Allow only rounding: relative 1e-12 of the bound's size.
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:]).max())


# ---------------------------------------------------------------------------------------------
# The seed(1000) notebook's set-up


def test_seed1000_with_the_notebooks_priors_recovers_the_three_components():
    data = load_dataset("seed1000")
    fit = VariationalGaussianMixture(3, n_init=5, random_state=0, **SEED1000_PRIORS).fit(data.X)
    true = data.true
    # Match each fitted component to the true one with the nearest mean (a permutation).
    order = min(
        itertools.permutations(range(3)),
        key=lambda p: np.sum((fit.means_[list(p)] - true.means) ** 2),
    )
    order = list(order)
    assert fit.converged_
    np.testing.assert_allclose(fit.weights_[order], true.weights, atol=0.05)
    np.testing.assert_allclose(fit.means_[order], true.means, atol=0.3)
    np.testing.assert_allclose(fit.covariances_[order], true.covariances, atol=0.4)
    labels = np.argsort(order)[fit.predict(data.X)]
    assert np.mean(labels == data.labels) > 0.9
    assert fit.mean_prior_.tolist() == [1.0, 1.0]
    assert fit.covariance_prior_.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_restarts_keep_the_best_bound_and_are_reproducible(seed_data):
    X, _ = seed_data
    single = VariationalGaussianMixture(3, random_state=5).fit(X)
    best = VariationalGaussianMixture(3, n_init=4, random_state=5).fit(X)
    again = VariationalGaussianMixture(3, n_init=4, random_state=5).fit(X)
    assert best.lower_bound_ >= single.lower_bound_  # the first of the 4 starts is `single`'s
    assert best.lower_bound_ == again.lower_bound_
    np.testing.assert_array_equal(best.means_, again.means_)


def test_explicit_parameters_start_like_their_responsibilities(seed_data):
    X, _ = seed_data
    from_parameters = VariationalGaussianMixture(3, init=seed7907.INITIAL, **PRIORS).fit(X)
    from_resp = VariationalGaussianMixture(3, init=seed_start(X), **PRIORS).fit(X)
    np.testing.assert_allclose(from_parameters.means_, from_resp.means_, rtol=0, atol=1e-9)
    assert from_parameters.lower_bound_ == pytest.approx(from_resp.lower_bound_, abs=1e-8)


# ---------------------------------------------------------------------------------------------
# Draws from q


def test_sample_posterior_has_the_nuts_shapes(seed_pair):
    ours, _ = seed_pair
    draws = ours.sample_posterior(7, random_state=0)
    assert draws["weights"].shape == (7, 3)
    assert draws["means"].shape == (7, 3, 2)
    assert draws["covariances"].shape == (7, 3, 2, 2)
    again = ours.sample_posterior(7, random_state=0)
    for name, values in draws.items():
        np.testing.assert_array_equal(values, again[name])


def assert_mean_within_monte_carlo_error(draws: np.ndarray, expected: np.ndarray) -> None:
    """The draws' mean over axis 0 is within 5 standard errors of `expected`, entrywise."""
    standard_error = draws.std(axis=0, ddof=1) / np.sqrt(draws.shape[0])
    z = np.abs(draws.mean(axis=0) - expected) / np.maximum(standard_error, 1e-300)
    assert np.all(z < 5.0), z


def test_sample_posterior_moments_match_q(seed_data):
    X, _ = seed_data
    # Few points, so q is wide and its moments are far from a point mass.
    fit = VariationalGaussianMixture(3, init=seed7907.INITIAL, **PRIORS).fit(X[:40])
    draws = fit.sample_posterior(20_000, random_state=1)
    alpha, nu = fit.weight_concentration_, fit.degrees_of_freedom_
    scale = fit.scale_cholesky_ @ np.swapaxes(fit.scale_cholesky_, 1, 2)  # W_k
    assert_mean_within_monte_carlo_error(draws["weights"], alpha / alpha.sum())
    assert_mean_within_monte_carlo_error(draws["means"], fit.means_)
    # E[Lambda_k] = nu_k W_k; E[Sigma_k] = W_k^-1 / (nu_k - D - 1) (inverse Wishart).
    precisions = np.linalg.inv(draws["covariances"])
    assert_mean_within_monte_carlo_error(precisions, nu[:, None, None] * scale)
    assert np.all(nu > 2 + 1)
    expected_cov = np.linalg.inv(scale) / (nu - 2 - 1)[:, None, None]
    assert_mean_within_monte_carlo_error(draws["covariances"], expected_cov)
    # Cov(mu_k) = E[Sigma_k] / beta_k.
    centred = draws["means"] - fit.means_
    spread = np.einsum("ski,skj->skij", centred, centred)
    assert_mean_within_monte_carlo_error(spread, expected_cov / fit.mean_precision_[:, None, None])


def test_wishart_draws_match_scipy_in_distribution(seed_pair):
    ours, _ = seed_pair
    draws = ours.sample_posterior(4000, random_state=2)
    precisions = np.linalg.inv(draws["covariances"][:, 0])
    scale = ours.scale_cholesky_[0] @ ours.scale_cholesky_[0].T
    reference = stats.wishart(df=ours.degrees_of_freedom_[0], scale=scale).rvs(4000, random_state=3)
    for i, j in ((0, 0), (0, 1), (1, 1)):
        result = stats.ks_2samp(precisions[:, i, j], reference[:, i, j])
        assert result.pvalue > 1e-3


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"n_components": 0}, "n_components"),
        ({"weight_concentration_prior": 0.0}, "weight_concentration_prior"),
        ({"weight_concentration_prior": "a"}, "weight_concentration_prior"),
        ({"mean_precision_prior": -1.0}, "mean_precision_prior"),
        ({"mean_prior": [1.0, 2.0, 3.0]}, "mean_prior"),
        ({"mean_prior": [1.0, np.nan]}, "mean_prior"),
        ({"degrees_of_freedom_prior": 1.0}, "degrees_of_freedom_prior"),
        ({"covariance_prior": [[1.0, 2.0], [2.0, 1.0]]}, "covariance_prior.*positive definite"),
        ({"covariance_prior": [[1.0, 0.5], [0.0, 1.0]]}, "covariance_prior.*symmetric"),
        ({"covariance_prior": np.eye(3)}, "covariance_prior"),
        ({"init": "kmeans"}, "init"),
        ({"init": np.full((500, 3), 0.5)}, "init responsibilities.*sum to 1"),
        ({"init": np.full((499, 3), 1 / 3)}, "init responsibilities.*shape"),
        ({"init": seed7907.INITIAL, "n_init": 2}, "n_init"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": -1.0}, "tol"),
    ],
)
def test_bad_arguments_name_themselves(seed_data, arguments, message):
    X, _ = seed_data
    arguments = {"n_components": 3, **arguments}
    with pytest.raises(ValueError, match=message):
        VariationalGaussianMixture(**arguments).fit(X)


def test_default_covariance_prior_needs_spread():
    X = np.column_stack([np.arange(10.0), np.ones(10)])
    with pytest.raises(ValueError, match="covariance_prior"):
        VariationalGaussianMixture(2).fit(X)


def test_a_single_point_needs_an_explicit_covariance_prior():
    with pytest.raises(ValueError, match="covariance_prior"):
        VariationalGaussianMixture(1).fit([[1.0, 2.0]])
    fit = VariationalGaussianMixture(1, covariance_prior=np.eye(2)).fit([[1.0, 2.0]])
    np.testing.assert_allclose(fit.means_, [[1.0, 2.0]])


def test_parameters_are_e_q_weights_and_e_q_precision_inverse_like_ems(seed_pair):
    """parameters_ holds weights alpha_k / sum alpha and covariances (nu_k W_k)^-1, read by
    MixtureParameters.from_any as it reads EM's."""
    ours, _ = seed_pair
    parameters = MixtureParameters.from_any(ours)
    alpha, nu = ours.weight_concentration_, ours.degrees_of_freedom_
    scale = ours.scale_cholesky_ @ np.swapaxes(ours.scale_cholesky_, 1, 2)  # W_k
    np.testing.assert_allclose(parameters.weights, alpha / alpha.sum(), rtol=1e-14)
    np.testing.assert_array_equal(parameters.means, ours.means_)
    expected = np.linalg.inv(nu[:, None, None] * scale)
    np.testing.assert_allclose(parameters.covariances, expected, rtol=1e-12)


def test_unfitted_estimator_says_so():
    with pytest.raises(NotFittedError, match="fit"):
        VariationalGaussianMixture(2).predict(np.zeros((3, 2)))
    with pytest.raises(NotFittedError, match="fit"):
        _ = VariationalGaussianMixture(2).parameters_
    fit = VariationalGaussianMixture(1).fit(np.random.default_rng(0).normal(size=(5, 2)))
    with pytest.raises(ValueError, match="n_draws"):
        fit.sample_posterior(0)
