"""The NUTS twin under VB's priors: its density against scipy.stats, its prior, its start."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import special, stats

from em_reference import GaussianMixtureEM, seed7907
from models.mixture import (
    BARTLETT_CHI2,
    BARTLETT_NORMALS,
    PRIOR_SCALE_CHOLESKY,
    build_model,
    value_point,
)

PRIORS = {
    "weight_concentration_prior": 0.7,
    "mean_precision_prior": 0.5,
    "mean_prior": [1.0, 2.0],
    "degrees_of_freedom_prior": 3.5,
    "covariance_prior": [[2.0, 0.3], [0.3, 1.0]],
}


@pytest.fixture(scope="module")
def gw_model(seed_data):
    X, _ = seed_data
    return build_model(X, 3, prior="gauss-wishart", **PRIORS)


def model_values(model: pm.Model, point: dict) -> dict[str, np.ndarray]:
    """The untransformed free variables and the covariances the model holds at a value point."""
    names = ["weights", "means", "covariances", BARTLETT_CHI2]
    outputs = model.replace_rvs_by_values([model[name] for name in names])
    evaluate = model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore")
    return dict(zip(names, evaluate(point), strict=True))


def scipy_log_density(values: dict, X: np.ndarray, priors: dict) -> float:
    """log p(X, theta) in the model's free variables, from scipy.stats densities.

    The model's free variables for Lambda_k are Bartlett's c_i = A_ii^2 and A_ij; with
    Lambda = L_0 A A^T L_0^T their density is Wishart(Lambda) |dLambda / d(c, A_ij)|, where the
    Jacobian is |W_0|^((D + 1)/2) prod_i A_ii^(D - i) (i = 1..D): 2^D prod A_ii^(D - i + 1) for
    A -> A A^T, 1 / (2 A_ii) for each A_ii -> c_i, |L_0|^(D + 1) for B -> L_0 B L_0^T.
    """
    weights, means, covariances = values["weights"], values["means"], values["covariances"]
    n_components, n_features = means.shape
    scale = np.linalg.inv(np.asarray(priors["covariance_prior"]))  # W_0
    nu_0, beta_0 = priors["degrees_of_freedom_prior"], priors["mean_precision_prior"]
    total = stats.dirichlet.logpdf(
        weights, np.full(n_components, priors["weight_concentration_prior"])
    )
    for k in range(n_components):
        precision = np.linalg.inv(covariances[k])
        diagonal = np.sqrt(values[BARTLETT_CHI2][k])
        jacobian = 0.5 * (n_features + 1) * np.linalg.slogdet(scale)[1] + np.sum(
            (n_features - 1 - np.arange(n_features)) * np.log(diagonal)
        )
        total += stats.wishart.logpdf(precision, df=nu_0, scale=scale) + jacobian
        total += stats.multivariate_normal.logpdf(
            means[k], priors["mean_prior"], covariances[k] / beta_0
        )
    per_component = np.stack(
        [
            np.log(weights[k]) + stats.multivariate_normal.logpdf(X, means[k], covariances[k])
            for k in range(n_components)
        ],
        axis=1,
    )
    return float(total + special.logsumexp(per_component, axis=1).sum())


def test_log_density_matches_scipy_at_the_em_estimate_and_elsewhere(gw_model, seed_data):
    X, _ = seed_data
    logp = gw_model.compile_logp(jacobian=False)
    em = GaussianMixtureEM(3, init=seed7907.INITIAL).fit(X)
    points = [value_point(gw_model, em), gw_model.initial_point()]
    rng = np.random.default_rng(0)
    points.append(
        {name: value + rng.normal(0, 0.3, value.shape) for name, value in points[0].items()}
    )
    for point in points:
        expected = scipy_log_density(model_values(gw_model, point), X, PRIORS)
        assert float(logp(point)) == pytest.approx(expected, abs=1e-8, rel=1e-12)


def test_value_point_puts_the_model_at_the_given_parameters(gw_model, seed_data):
    X, _ = seed_data
    em = GaussianMixtureEM(3, init=seed7907.INITIAL).fit(X)
    values = model_values(gw_model, value_point(gw_model, em))
    np.testing.assert_allclose(values["weights"], em.weights_, atol=1e-12)
    np.testing.assert_allclose(values["means"], em.means_, atol=1e-12)
    np.testing.assert_allclose(values["covariances"], em.covariances_, rtol=1e-10)


def test_prior_precisions_have_the_wishart_mean(seed_data):
    X, _ = seed_data
    model = build_model(X[:50], 2, prior="gauss-wishart", **PRIORS)
    covariances = pm.draw(model["covariances"], draws=20_000, random_seed=1)
    precisions = np.linalg.inv(covariances)  # (S, K, D, D)
    expected = PRIORS["degrees_of_freedom_prior"] * np.linalg.inv(PRIORS["covariance_prior"])
    standard_error = precisions.std(axis=0, ddof=1) / np.sqrt(precisions.shape[0])
    assert np.all(np.abs(precisions.mean(axis=0) - expected) < 5 * standard_error)


def test_model_has_the_shared_names_and_the_prior_scale(gw_model):
    assert {"weights", "means", "covariances"} <= set(gw_model.named_vars)
    assert gw_model.named_vars_to_dims["covariances"] == ("component", "dim", "dim_bis")
    assert gw_model.named_vars_to_dims[BARTLETT_NORMALS] == ("component", "dim_pair")
    scale_lower = gw_model[PRIOR_SCALE_CHOLESKY].get_value()
    np.testing.assert_allclose(
        scale_lower @ scale_lower.T, np.linalg.inv(PRIORS["covariance_prior"]), rtol=1e-12
    )


def test_one_dimensional_data_has_no_off_diagonal_normals():
    X = np.random.default_rng(2).normal(size=(30, 1))
    model = build_model(X, 2, prior="gauss-wishart")
    assert BARTLETT_NORMALS not in model.named_vars
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_default_model_is_unchanged_by_the_new_option(seed_data):
    X, _ = seed_data
    names = set(build_model(X, 3).named_vars)
    assert "standard_deviations" in names and BARTLETT_CHI2 not in names


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"prior": "wishart"}, "prior must be one of"),
        ({"prior": "gauss-wishart", "flat": True}, "flat"),
        ({"mean_prior": [0.0, 0.0]}, "mean_prior applies to prior='gauss-wishart' only"),
        ({"prior": "gauss-wishart", "degrees_of_freedom_prior": 0.5}, "degrees_of_freedom_prior"),
        ({"prior": "gauss-wishart", "covariance_prior": -np.eye(2)}, "covariance_prior"),
    ],
)
def test_bad_prior_options_are_value_errors(seed_data, arguments, message):
    X, _ = seed_data
    with pytest.raises(ValueError, match=message):
        build_model(X, 3, **arguments)
