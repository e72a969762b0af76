"""EM runs for the comparison: the seed start, the restarts, and one component order."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.datasets import Dataset, load_dataset
from analysis.em_fits import EMFit, EMFits, fit_em, matching_order
from em_reference import sample_mixture, seed7907


@pytest.fixture(scope="module")
def seed_fits() -> EMFits:
    return fit_em(load_dataset("seed7907"), 3, random_seed=0)


def test_initial_run_is_the_seed_programs_run(seed_fits, seed_em):
    """The run from the source's initial values is the seed program's EM fit."""
    run = seed_fits.runs["initial"]
    assert np.array_equal(run.parameters.weights, seed_em.weights_)
    assert np.array_equal(run.parameters.means, seed_em.means_)
    assert np.array_equal(run.parameters.covariances, seed_em.covariances_)
    assert run.log_likelihood_history == tuple(seed_em.log_likelihood_history_)
    assert run.n_iter == 16
    assert run.converged


def test_equal_optima_keep_the_seed_start_as_reference(seed_fits):
    """Restarts reaching the same optimum leave the seed start as the reference run."""
    restarts = seed_fits.runs["restarts"]
    assert seed_fits.reference == "initial"
    reference = seed_fits.reference_run
    assert restarts.log_likelihood == pytest.approx(reference.log_likelihood, abs=1e-2)


def test_restarts_are_put_in_the_true_order(seed_fits):
    """The restarts run's components are reordered to match the true components."""
    restarts = seed_fits.runs["restarts"].parameters
    assert np.allclose(restarts.means, seed7907.PUBLISHED.means, atol=2e-3)
    assert np.allclose(restarts.weights, seed7907.PUBLISHED.weights, atol=2e-3)


def test_reference_is_matched_to_the_truth_when_it_comes_out_permuted():
    """A reference run found in another order is permuted to the true labels."""
    # The seed1000 notebook's start ends with components in the order 0, 2, 1 of the truth.
    dataset = load_dataset("seed1000")
    fits = fit_em(dataset, 3, random_seed=0)
    assert np.allclose(fits.reference_run.parameters.means, dataset.true.means, atol=0.25)
    labels = fits.reference_run.labels
    assert np.mean(labels == dataset.labels) > 0.9


def test_unlabelled_data_are_ordered_by_the_first_mean_coordinate():
    """Without labels, components are ordered by their first mean coordinate."""
    X, _ = sample_mixture(
        300, [0.5, 0.5], [[5.0, 0.0], [-5.0, 0.0]], [np.eye(2), np.eye(2)], seed=3
    )
    dataset = Dataset("plain", X, None, "two blobs")
    fits = fit_em(dataset, 2, random_seed=1)
    assert list(fits.runs) == ["restarts"]
    assert fits.reference_run.parameters.means[0, 0] < fits.reference_run.parameters.means[1, 0]


def test_more_components_than_true_ones_still_aligns():
    """K above the true number of components still gives one aligned run."""
    dataset = load_dataset("seed7907")
    fits = fit_em(dataset, 4, random_seed=0)
    assert list(fits.runs) == ["restarts"]  # the seed start has 3 components
    assert fits.reference_run.parameters.n_components == 4


def test_em_result_json_round_trip(seed_fits, seed_data):
    """em.json's values and the data give back the same runs, responsibilities included."""
    X, _ = seed_data
    again = EMFits.from_dict(seed_fits.as_dict(), X)
    assert again.reference == seed_fits.reference
    for name, run in seed_fits.runs.items():
        back = again.runs[name]
        assert np.array_equal(back.parameters.covariances, run.parameters.covariances)
        assert back.log_likelihood_history == run.log_likelihood_history
        assert (back.n_iter, back.converged, back.start) == (run.n_iter, run.converged, run.start)
        assert np.allclose(back.responsibilities, run.responsibilities, rtol=0, atol=1e-12)
        assert np.array_equal(back.labels, run.labels)


def test_a_run_carries_the_responsibilities_of_its_estimates(seed_fits, seed_em, seed_data):
    """Each aligned run's responsibilities are those of its (reordered) estimates."""
    X, _ = seed_data
    run = seed_fits.runs["initial"]
    assert np.array_equal(run.parameters.weights, seed_em.weights_)  # already in the true order
    assert np.allclose(run.responsibilities, seed_em.predict_proba(X), rtol=0, atol=1e-12)
    assert np.array_equal(run.labels, seed_em.predict(X))


def test_estimator_carries_the_estimates(seed_fits, seed_data):
    """The estimator made from a run predicts its labels and scores its log-likelihood."""
    X, _ = seed_data
    run: EMFit = seed_fits.reference_run
    fit = run.estimator()
    assert np.array_equal(fit.predict(X), run.labels)
    assert fit.score_samples(X).sum() == pytest.approx(run.log_likelihood, abs=1e-8)


def test_matching_order_maximises_agreement():
    """The column order maximises the matched agreement, unmatched columns last."""
    agreement = np.array([[0, 9, 1], [8, 0, 0], [1, 0, 7]])
    assert matching_order(agreement).tolist() == [1, 0, 2]
    wide = np.array([[0, 5, 0, 1], [6, 0, 0, 0]])
    assert matching_order(wide).tolist() == [1, 0, 2, 3]


@pytest.mark.parametrize(("k", "message"), [(0, "integer >= 1"), (501, "fewer than the 501")])
def test_bad_component_counts(k, message):
    """K below 1 or above the number of points is a ValueError saying which."""
    with pytest.raises(ValueError, match=message):
        fit_em(load_dataset("seed7907"), k, random_seed=0)
