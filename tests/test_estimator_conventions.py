"""Both estimators follow scikit-learn's conventions without importing scikit-learn."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import estimator_checks_generator

from em_reference import GaussianMixtureEM, NotFittedError, VariationalGaussianMixture, seed7907

ESTIMATORS = [
    GaussianMixtureEM(n_components=2, random_state=0),
    VariationalGaussianMixture(n_components=2, random_state=0),
]

EXPECTED_FAILED_CHECKS = {
    "check_estimators_unfitted": (
        "predict before fit raises em_reference's NotFittedError (a ValueError and "
        "AttributeError, as scikit-learn's is), not scikit-learn's class, which em_reference "
        "cannot import"
    ),
    "check_n_features_in_after_fitting": (
        "new data with the wrong width is refused with a ValueError in the project's words "
        "('X has 1 columns but the model was fitted with 2'), not scikit-learn's sentence"
    ),
}


def expected_failed_checks(estimator) -> dict[str, str]:
    """The scikit-learn checks these estimators fail by design, with the reason for each."""
    return EXPECTED_FAILED_CHECKS


NOT_APPLICABLE = {
    # It runs only under SCIPY_ARRAY_API=1, which switches SciPy to array-API mode for the whole
    # test session; these NumPy-only estimators claim no array-API support.
    "check_array_api_input",
}


def _check_name(check) -> str:
    """The name of a scikit-learn check (a function or a functools.partial of one)."""
    return getattr(check, "func", check).__name__


CHECKS = [
    # Each item is (estimator, check), or a pytest.param of them marked xfail when listed above.
    pytest.param(*values, marks=getattr(item, "marks", ()), id=f"{type(values[0]).__name__}-{name}")
    for base in ESTIMATORS
    for item in estimator_checks_generator(
        base, expected_failed_checks=expected_failed_checks(base), mark="xfail"
    )
    for values in [getattr(item, "values", item)]
    for name in [_check_name(values[1])]
    if name not in NOT_APPLICABLE
]


@pytest.mark.parametrize(("estimator", "check"), CHECKS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_expected_failures_do_fail_for_the_stated_reason(estimator, seed_data):
    # So that the list above cannot go stale: each listed behaviour is still ours.
    X, _ = seed_data
    with pytest.raises(NotFittedError) as unfitted:
        clone(estimator).predict(X)
    assert isinstance(unfitted.value, ValueError | AttributeError)
    fitted = clone(estimator).fit(X)
    with pytest.raises(ValueError, match="X has 1 columns but the model was fitted with 2"):
        fitted.predict(X[:, :1])


# ---------------------------------------------------------------------------------------------
# Parameters: stored untouched, read and set by name, shown when not the default


def test_init_stores_arguments_untouched_and_fit_checks_them():
    mean_prior = np.array([1.0, 2.0])
    estimator = VariationalGaussianMixture(2, mean_prior=mean_prior, n_init=-3)
    assert estimator.mean_prior is mean_prior
    assert estimator.n_init == -3
    with pytest.raises(ValueError, match="n_init must be an integer >= 1, got -3"):
        estimator.fit(np.random.default_rng(0).normal(size=(20, 2)))


@pytest.mark.parametrize("estimator_class", [GaussianMixtureEM, VariationalGaussianMixture])
def test_get_params_and_set_params_round_trip(estimator_class):
    estimator = estimator_class(3, tol=1e-3)
    params = estimator.get_params()
    assert params["n_components"] == 3 and params["tol"] == 1e-3
    assert estimator.set_params(n_components=4, max_iter=7) is estimator
    assert estimator.get_params() == params | {"n_components": 4, "max_iter": 7}
    with pytest.raises(ValueError, match="invalid parameter 'n_clusters'"):
        estimator.set_params(n_clusters=2)


def test_repr_shows_only_the_parameters_that_differ_from_the_defaults():
    assert repr(GaussianMixtureEM()) == "GaussianMixtureEM()"
    assert repr(GaussianMixtureEM(3, n_init=5, init="random")) == (
        "GaussianMixtureEM(n_components=3, init='random', n_init=5)"
    )
    assert repr(VariationalGaussianMixture(2, weight_concentration_prior=0.5)) == (
        "VariationalGaussianMixture(n_components=2, weight_concentration_prior=0.5)"
    )


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_clone_gives_an_unfitted_copy_with_the_same_parameters(estimator, seed_data):
    X, _ = seed_data
    fitted = clone(estimator).set_params(n_components=3).fit(X)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "means_") and not hasattr(copy, "n_features_in_")
    assert fitted.n_features_in_ == 2


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_fit_predict_is_fit_then_predict(estimator, seed_data):
    X, _ = seed_data
    labels = clone(estimator).set_params(n_components=3).fit_predict(X)
    again = clone(estimator).set_params(n_components=3).fit(X).predict(X)
    assert labels.shape == (500,)
    np.testing.assert_array_equal(labels, again)


# ---------------------------------------------------------------------------------------------
# Working inside scikit-learn's tools


def test_grid_search_over_n_components_with_the_estimators_own_score(seed_data):
    X, _ = seed_data
    search = GridSearchCV(
        GaussianMixtureEM(init="kmeans++", n_init=3, random_state=0),
        {"n_components": [1, 2, 3]},
        cv=5,
    ).fit(X)
    assert search.best_params_ == {"n_components": seed7907.N_COMPONENTS}
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.diff(scores) > 0)  # held-out mean log-likelihood rises up to the truth
    assert search.best_estimator_.n_components == 3


def test_grid_search_works_for_vb_too(seed_data):
    X, _ = seed_data
    search = GridSearchCV(
        VariationalGaussianMixture(random_state=0), {"n_components": [1, 3]}, cv=3
    ).fit(X)
    assert search.best_params_ == {"n_components": 3}


def test_a_pipeline_scales_then_clusters(seed_data):
    X, labels = seed_data
    pipeline = make_pipeline(StandardScaler(), GaussianMixtureEM(3, n_init=5, random_state=0))
    predicted = pipeline.fit(X).predict(X)
    # The same partition as the truth up to the component order (the seed run reaches 497).
    agreement = max(
        np.mean(predicted == np.array(order)[labels]) for order in itertools.permutations(range(3))
    )
    assert agreement > 0.98


def test_em_reference_needs_no_scikit_learn_at_run_time():
    code = (
        "import sys, numpy as np, em_reference as e\n"
        "X = np.random.default_rng(0).normal(size=(50, 2))\n"
        "m = e.GaussianMixtureEM(2, random_state=0)\n"
        "m.fit_predict(X); repr(m); m.set_params(**m.get_params())\n"
        "e.VariationalGaussianMixture(2, random_state=0).fit(X).score(X)\n"
        "print('sklearn' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
