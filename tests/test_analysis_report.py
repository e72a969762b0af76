"""The comparison, tables, figures and report pages, on a fake seed-7907 posterior.

The posterior is a DataTree of independent NumPy draws around EM's estimate (conftest's
`seed_fake_posterior`): what is checked here is what is built from a DataTree, not NUTS.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import numpy as np
import pytest
from matplotlib.image import imread

from analysis import figures
from analysis.comparison import arviz_summary, compare, posterior_summary
from analysis.em_fits import fit_em
from analysis.figures import FIGURES
from analysis.files import dumps
from analysis.pipeline import Results, results_from
from analysis.render import render_html, render_markdown
from analysis.report import write_report
from analysis.settings import RunSettings
from analysis.tables import build_tables
from em_reference import seed7907
from tests.conftest import seed7907_results

SETTINGS = RunSettings(n_components=3, random_seed=0, draws=250, tune=0, chains=4, bootstrap=200)


@pytest.fixture(scope="module")
def seed_results(seed_fake_posterior, seed_fake_gauss_wishart) -> Results:
    """seed-7907, both EM runs, VB, and fake posteriors for both NUTS runs, as one Results."""
    return seed7907_results(SETTINGS, seed_fake_posterior, seed_fake_gauss_wishart)


@pytest.fixture(scope="module")
def seed_comparison(seed_results):
    """The comparison dict of seed_results, as comparison.json holds it."""
    return json.loads(dumps(compare(seed_results)))


def _draws(idata, name):
    values = np.asarray(idata.posterior[name])
    return values.reshape((-1, *values.shape[2:]))


def test_posterior_summary_is_the_draws_mean_sd_and_central_94_percent(seed_fake_posterior):
    """Mean, SD (ddof 1) and the 3 % and 97 % quantiles of every parameter's draws."""
    summary = posterior_summary(arviz_summary(seed_fake_posterior))
    for name in ("weights", "means", "covariances"):
        draws = _draws(seed_fake_posterior, name)
        assert np.allclose(summary[name]["mean"], draws.mean(axis=0), rtol=0, atol=1e-12)
        assert np.allclose(summary[name]["sd"], draws.std(axis=0, ddof=1), rtol=0, atol=1e-12)
        low, high = np.quantile(draws, [0.03, 0.97], axis=0)
        assert np.allclose(summary[name]["low"], low, atol=1e-9)
        assert np.allclose(summary[name]["high"], high, atol=1e-9)


def test_point_estimate_table_lines_up_truth_published_em_and_posterior(
    seed_comparison, seed_em, seed_fake_posterior
):
    """Each row holds the true, published, EM and posterior values of one parameter."""
    rows = {row["parameter"]: row for row in seed_comparison["parameters"]}
    assert len(rows) == 3 + 3 * 2 + 3 * 3  # weights, means, distinct covariance entries
    row = rows["covariances[1, 0, 1]"]
    assert row["true"] == seed7907.TRUE.covariances[1, 0, 1]
    assert row["published"] == seed7907.PUBLISHED.covariances[1, 0, 1]
    assert row["em"]["initial"] == seed_em.covariances_[1, 0, 1]
    assert row["posterior_mean"] == pytest.approx(
        _draws(seed_fake_posterior, "covariances")[:, 1, 0, 1].mean(), abs=1e-12
    )
    for row in rows.values():
        low, high = row["interval_low"], row["interval_high"]
        assert low < row["posterior_mean"] < high
        assert row["em_inside"] == (low <= row["em"]["initial"] <= high)
        assert row["true_inside"] == (low <= row["true"] <= high)
    # The fake draws are centred on EM's estimate: EM is inside every interval.
    assert all(row["em_inside"] for row in rows.values())


def test_accuracy_counts_and_confusion_matrices(seed_comparison, seed_fake_posterior, seed_data):
    """Correct counts, accuracy, uncertain points and confusion matrices of every method."""
    from models import posterior_membership

    _, labels = seed_data
    accuracy = seed_comparison["accuracy"]
    em = accuracy["methods"]["initial"]
    assert em["correct"] == seed7907.PUBLISHED_CORRECT
    assert accuracy["published_accuracy"] == seed7907.PUBLISHED_ACCURACY
    membership = posterior_membership(seed_fake_posterior)
    post = accuracy["methods"]["posterior"]
    assert post["accuracy"] == pytest.approx(membership.accuracy(labels))
    assert post["uncertain"] == int(np.sum(np.asarray(membership.top_probability) < 0.9))
    assert 0 < post["uncertain"] < 50
    for method in accuracy["methods"].values():
        confusion = np.array(method["confusion"])
        assert confusion.sum() == 500
        assert np.trace(confusion) == method["correct"]
        assert confusion.sum(axis=1).tolist() == np.bincount(labels).tolist()


def test_em_and_sampler_sections(seed_comparison, seed_em):
    """EM's iterations and log-likelihood, the sampler's diagnostics and their warnings."""
    em = seed_comparison["em"]
    assert em["reference"] == "initial"
    assert em["runs"]["initial"]["n_iter"] == seed_em.n_iter_
    assert em["runs"]["initial"]["log_likelihood"] == seed_em.log_likelihood_
    sampler = seed_comparison["sampler"]
    for key in ("divergences", "max_rhat", "min_ess_bulk", "min_ess_tail", "ok", "problems"):
        assert key in sampler
    gauss_wishart = seed_comparison["gauss_wishart_sampler"]
    assert seed_comparison["warnings"] == [f"sampler: {p}" for p in sampler["problems"]] + [
        f"sampler (VB's priors): {p}" for p in gauss_wishart["problems"]
    ]
    assert (gauss_wishart["chains"], gauss_wishart["draws"]) == (4, 250)


def test_report_files_are_complete_and_self_contained(seed_results, tmp_path):
    """comparison.json, every figure, summary.md and index.html with embedded figures only."""
    comparison = write_report(seed_results, tmp_path)
    assert json.loads((tmp_path / "comparison.json").read_text()) == json.loads(dumps(comparison))
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == sorted(f"{name}.png" for name in FIGURES)
    for path in (tmp_path / "figures").iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000  # drawn, not empty
    page = (tmp_path / "index.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == len(FIGURES)
    assert not re.search(r'(src|href)="(?!data:)', page)
    summary = (tmp_path / "summary.md").read_text()
    for heading in (
        "Point estimates",
        "Clustering accuracy",
        "Confusion matrix: posterior",
        "VB SD / NUTS SD under the same priors",
        "EM convergence",
        "VB fit",
        "Sampler diagnostics",
    ):
        assert f"## {heading}" in summary
        assert f"<h2>{heading}</h2>" in page
    assert "| covariances[2, 1, 1] | 1.700 | 1.552 |" in summary


def test_bad_diagnostics_show_a_visible_warning(seed_comparison):
    """Sampler problems give a warning banner and a highlighted cell; none when all is fine."""
    bad = copy.deepcopy(seed_comparison)
    bad["sampler"].update(ok=False, divergences=12, problems=["12 divergent transitions"])
    bad["warnings"] = ["sampler: 12 divergent transitions"]
    page = render_html(bad, build_tables(bad), {})
    assert '<div class="warning"><strong>' in page
    assert "sampler: 12 divergent transitions" in page
    assert '<td class="bad">PROBLEMS: 12 divergent transitions</td>' in page
    assert "> **WARNING**" in render_markdown(bad, build_tables(bad), {})
    good = copy.deepcopy(seed_comparison)
    good["sampler"].update(ok=True, problems=[])
    good["warnings"] = []
    assert 'class="warning"' not in render_html(good, build_tables(good), {})


def test_unlabelled_data_say_labels_are_unknown(seed_results, tmp_path):
    """Without labels or known parameters: no accuracy, no confusion matrix, no true values."""
    dataset = dataclasses.replace(
        seed_results.dataset,
        name="mine",
        labels=None,
        true=None,
        initial=None,
        published=None,
        published_accuracy=None,
    )
    fits = fit_em(dataset, 3, random_seed=0)
    # The shared posterior is in the seed start's order; keep this run's labels comparable.
    order = np.argsort(fits.reference_run.parameters.means[:, 0])
    assert order.tolist() == [0, 1, 2]
    results = results_from(dataset, fits, seed_results.uncertainty, seed_results.idata, SETTINGS)
    comparison = write_report(results, tmp_path)
    assert comparison["accuracy"]["labels_known"] is False
    assert all(
        row["true"] is None and row["true_inside"] is None for row in comparison["parameters"]
    )
    assert comparison["accuracy"]["methods"]["posterior"]["confusion"] is None
    summary = (tmp_path / "summary.md").read_text()
    assert "True labels are unknown for this dataset" in summary
    assert "Confusion matrix" not in summary


@pytest.mark.parametrize("failing", ["rank", "trace"])  # one drawn by the child, one here
def test_a_figure_that_fails_is_an_error_that_names_it(
    seed_results, tmp_path, monkeypatch, failing
):
    """A figure that fails, drawn here or in the forked child, is an error naming it."""
    assert ("rank" in figures.CHILD_FIGURES, "trace" in figures.CHILD_FIGURES) == (True, False)

    def broken(*args, **kwargs):
        raise ValueError(f"{failing} cannot be drawn")

    monkeypatch.setattr(figures, f"plot_{failing}", broken)
    comparison = compare(seed_results)
    with pytest.raises((RuntimeError, ValueError), match=f"{failing} cannot be drawn") as caught:
        figures.draw_all(seed_results, comparison, tmp_path)
    if failing in figures.CHILD_FIGURES:
        assert "rank" in str(caught.value) and caught.type is RuntimeError


def test_figures_drawn_in_one_process_are_the_same_files(seed_results, tmp_path, monkeypatch):
    """Figures drawn beside a forked child and all in one process are the same images."""
    comparison = compare(seed_results)
    forked = figures.draw_all(seed_results, comparison, tmp_path / "a")
    monkeypatch.setattr(figures, "_can_fork", lambda: False)
    alone = figures.draw_all(seed_results, comparison, tmp_path / "b")
    assert list(forked) == list(alone) == list(figures.FIGURES)
    for name in figures.FIGURES:
        assert forked[name].path.stat().st_size > 10_000
        assert np.array_equal(imread(forked[name].path), imread(alone[name].path)), name


def test_a_truncated_posterior_is_never_passed_on_or_saved(tmp_path):
    """A posterior with fewer draws than asked for is refused, by models and by analysis."""
    # PyMC returns the draws made so far when interrupted; before, they were published as the
    # run that was asked for.
    import xarray as xr

    from analysis.pipeline import check_complete
    from models.sampling import _check_complete

    draws = xr.Dataset({"weights": (("chain", "draw"), np.zeros((2, 40)))})
    truncated = xr.DataTree.from_dict({"posterior": draws})
    with pytest.raises(KeyboardInterrupt, match="2 chains of 40 draws, not 2 of 100"):
        _check_complete(truncated, 2, 100)
    _check_complete(truncated, 2, 40)
    settings = RunSettings(n_components=3, random_seed=0, draws=100, tune=100, chains=2)
    with pytest.raises(ValueError, match="2 chains of 40 draws, not the 2 of 100 asked for"):
        check_complete(truncated, settings.chains, settings.draws)
