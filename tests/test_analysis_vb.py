"""VB in the comparison: its columns against q itself, saving and rebuilding, method subsets.

The NUTS posteriors are conftest's fake ones (independent NumPy draws), so nothing samples;
VB's expected numbers come from a VariationalGaussianMixture fitted here and q's closed-form
moments and marginals, not from the analysis code.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats

from analysis.comparison import compare
from analysis.datasets import load_dataset
from analysis.em_fits import fit_em
from analysis.files import dumps
from analysis.pipeline import results_from, run_vb
from analysis.report import write_report
from analysis.saved import load_results, save_results
from analysis.settings import RunSettings
from analysis.tables import build_tables
from em_reference import VariationalGaussianMixture
from tests.conftest import q_moments, seed7907_results

SETTINGS = RunSettings(n_components=3, random_seed=0, draws=250, tune=0, chains=4, bootstrap=0)
VB_DRAWS_USED = 20_000
"""How many draws from q the report summarises (its documented number)."""
TAIL = 0.03
"""The lower tail of a 94 % equal-tailed interval."""


@pytest.fixture(scope="module")
def vb_results(seed_fake_posterior, seed_fake_gauss_wishart):
    """seed-7907: EM, VB (default priors) and fake posteriors of both NUTS runs."""
    return seed7907_results(SETTINGS, seed_fake_posterior, seed_fake_gauss_wishart)


@pytest.fixture(scope="module")
def vb_comparison(vb_results):
    """comparison.json's contents for vb_results."""
    return json.loads(dumps(compare(vb_results)))


@pytest.fixture(scope="module")
def own_fit(seed_data, seed_em):
    """em_reference's VB from the seed program's EM estimate (the reference run), default priors."""
    X, _ = seed_data
    return VariationalGaussianMixture(3, init=seed_em.parameters_).fit(X)


def rows_by_name(comparison):
    return {row["parameter"]: row for row in comparison["parameters"]}


def test_the_vb_fit_is_em_references_own(vb_results, own_fit, seed_data):
    """q, the ELBO history and the data-scaled priors are those of em_reference's estimator."""
    X, _ = seed_data
    vb = vb_results.vb
    np.testing.assert_allclose(vb.posterior.weight_concentration, own_fit.weight_concentration_)
    np.testing.assert_allclose(vb.posterior.means, own_fit.means_, rtol=1e-12)
    np.testing.assert_allclose(vb.posterior.scale_cholesky, own_fit.scale_cholesky_, rtol=1e-12)
    assert vb.lower_bound_history == pytest.approx(own_fit.lower_bound_history_, rel=1e-12)
    assert vb.n_iter == own_fit.n_iter_ and vb.converged
    assert vb.priors["weight_concentration_prior"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(vb.priors["mean_prior"], X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(vb.priors["covariance_prior"], np.cov(X.T), rtol=1e-12)


def test_vb_columns_are_qs_moments_within_monte_carlo_error(vb_comparison, own_fit):
    """Mean and SD of every parameter within 5 Monte Carlo SEs of q's closed-form moments."""
    rows = rows_by_name(vb_comparison)
    standard_error = 1 / np.sqrt(VB_DRAWS_USED)
    for name, (mean, sd) in q_moments(own_fit).items():
        for index in np.ndindex(mean.shape):
            if name == "covariances" and index[1] > index[2]:
                continue
            row = rows[f"{name}[{', '.join(map(str, index))}]"]
            assert abs(row["vb_mean"] - mean[index]) < 5 * sd[index] * standard_error, row
            # The SD's standard error is about sd sqrt((kurtosis - 1) / (4 S)): 3 SEs of the
            # mean covers that for the mild tails here.
            assert abs(row["vb_sd"] - sd[index]) < 3 * sd[index] * standard_error, row


def test_vb_intervals_are_qs_marginal_quantiles(vb_comparison, own_fit):
    """Weights: Beta marginals; means: Student t marginals (nu - D + 1 degrees of freedom)."""
    rows = rows_by_name(vb_comparison)
    alpha, beta, nu = (
        own_fit.weight_concentration_,
        own_fit.mean_precision_,
        own_fit.degrees_of_freedom_,
    )
    scale = own_fit.scale_cholesky_ @ np.swapaxes(own_fit.scale_cholesky_, 1, 2)
    psi = np.linalg.inv(scale)
    for k in range(3):
        marginal = stats.beta(alpha[k], alpha.sum() - alpha[k])
        check_interval(rows[f"weights[{k}]"], marginal)
        for j in range(2):
            dof = nu[k] - 2 + 1
            spread = np.sqrt(psi[k, j, j] / (beta[k] * dof))
            check_interval(rows[f"means[{k}, {j}]"], stats.t(dof, own_fit.means_[k, j], spread))


def check_interval(row, marginal):
    """The row's VB bounds are the marginal's 3 % and 97 % quantiles, within 5 quantile SEs."""
    for bound, p in ((row["vb_low"], TAIL), (row["vb_high"], 1 - TAIL)):
        quantile = marginal.ppf(p)
        standard_error = np.sqrt(p * (1 - p) / VB_DRAWS_USED) / marginal.pdf(quantile)
        assert abs(bound - quantile) < 5 * standard_error, (row["parameter"], bound, quantile)


def test_the_ratio_is_vb_sd_over_nuts_sd_under_vbs_priors(vb_comparison, seed_fake_gauss_wishart):
    """VB SD / SD of the draws under VB's priors, with an MC error at least NUTS's share."""
    import arviz_stats as azs

    draws = np.asarray(seed_fake_gauss_wishart.posterior["means"]).reshape(-1, 3, 2)
    mcse = azs.summary(seed_fake_gauss_wishart, var_names=["means"], fmt="xarray", round_to="none")
    rows = rows_by_name(vb_comparison)
    for k in range(3):
        for j in range(2):
            row = rows[f"means[{k}, {j}]"]
            sd = draws[:, k, j].std(ddof=1)
            assert row["gauss_wishart_sd"] == pytest.approx(sd, rel=1e-10)
            assert row["gauss_wishart_mean"] == pytest.approx(draws[:, k, j].mean(), rel=1e-10)
            assert row["vb_sd_ratio"] == pytest.approx(row["vb_sd"] / sd, rel=1e-12)
            nuts_share = float(mcse["means"].sel(summary="mcse_sd")[k, j]) / sd
            assert nuts_share <= row["vb_sd_ratio_mcse"] / row["vb_sd_ratio"] < nuts_share + 0.02


def test_vb_clusters_the_seed_data_as_em_does(vb_comparison):
    """VB's q responsibilities give a clustering row and confusion matrix beside EM's."""
    methods = vb_comparison["accuracy"]["methods"]
    vb, em = methods["vb"], methods["initial"]
    n = vb_comparison["accuracy"]["n_points"]
    # seed-7907's components are well separated: EM misplaces 3 of 500 points (99.4 %); q's
    # Gauss-Wishart posterior, started from EM's estimate, keeps EM's labels and may differ
    # from EM on a few points near the boundaries, not on a cluster.
    assert vb["accuracy"] >= 0.98
    assert abs(vb["correct"] - em["correct"]) <= 5
    assert sum(vb["counts"]) == n and sum(map(sum, vb["confusion"])) == n
    assert np.argmax(np.asarray(vb["confusion"]), axis=1).tolist() == [0, 1, 2]
    titles = [table.title for table in build_tables(vb_comparison)]
    assert "Confusion matrix: VB (q)" in titles


def test_without_vb_the_vb_fields_are_null_never_nan(vb_results):
    """A run without VB (em,nuts): every VB field is null, and the JSON has no NaN."""
    settings = dataclasses.replace(SETTINGS, methods=("em", "nuts"))
    results = dataclasses.replace(vb_results, settings=settings, vb=None, idata_gauss_wishart=None)
    comparison = compare(results)
    json.dumps(comparison, allow_nan=False)
    assert comparison["vb"] is None and comparison["gauss_wishart_sampler"] is None
    vb_fields = [key for key in comparison["parameters"][0] if key.startswith(("vb_", "gauss_"))]
    assert len(vb_fields) == 9
    assert all(row[key] is None for row in comparison["parameters"] for key in vb_fields)
    headers = build_tables(comparison)[0].headers
    assert "VB mean" not in headers and "posterior mean" in headers


def test_report_shows_vb_beside_em_and_nuts_and_says_what_the_ratio_measures(
    vb_results, vb_comparison, tmp_path
):
    write_report(vb_results, tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert (
        "| posterior mean | posterior SD | 94 % interval | VB mean | VB SD | VB 94 % interval |"
        in (summary)
    )
    assert "measures VB's approximation error only" in summary
    assert "show the priors' influence" in summary
    for figure in ("elbo", "vb_sd_ratio"):
        assert (tmp_path / "figures" / f"{figure}.png").stat().st_size > 10_000
    assert "VB: " in summary and "20,000 independent draws from q" in summary


def test_saved_vb_rebuilds_the_same_comparison(vb_results, vb_comparison, tmp_path):
    save_results(vb_results, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "em.json",
        "data.csv",
        "vb.json",
        "posterior.nc",
        "posterior_gauss_wishart.nc",
    }
    loaded = load_results(tmp_path)
    np.testing.assert_array_equal(loaded.vb.posterior.means, vb_results.vb.posterior.means)
    assert json.loads(dumps(compare(loaded))) == vb_comparison


def test_a_folder_from_before_vb_still_loads_and_reports(vb_results, tmp_path):
    """em.json without `methods`, no vb.json: read as EM and NUTS; the report has no VB."""
    settings = dataclasses.replace(SETTINGS, methods=("em", "nuts"))
    old = dataclasses.replace(vb_results, settings=settings, vb=None, idata_gauss_wishart=None)
    save_results(old, tmp_path)
    path = tmp_path / "em.json"
    document = json.loads(path.read_text())
    del document["settings"]["methods"]
    path.write_text(json.dumps(document))
    loaded = load_results(tmp_path)
    assert loaded.settings.methods == ("em", "nuts") and loaded.vb is None
    comparison = write_report(loaded, tmp_path)
    assert comparison["vb"] is None
    assert not (tmp_path / "figures" / "elbo.png").exists()
    assert "VB" not in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(
    ("methods", "figures", "absent"),
    [
        (("em",), {"data", "em_clusters", "em_convergence"}, ("VB mean", "posterior mean")),
        (("em", "vb"), {"data", "em_clusters", "em_convergence", "elbo"}, ("posterior mean",)),
    ],
)
def test_reports_without_nuts(vb_results, tmp_path, methods, figures, absent):
    """No sampler, no posterior figures or columns; EM (and VB) still reported in full."""
    settings = dataclasses.replace(SETTINGS, methods=methods)
    vb = vb_results.vb if "vb" in methods else None
    results = results_from(
        vb_results.dataset, vb_results.fits, vb_results.uncertainty, None, settings, vb
    )
    save_results(results, tmp_path)
    comparison = write_report(load_results(tmp_path), tmp_path)
    assert comparison["sampler"] is None and "posterior" not in comparison["accuracy"]["methods"]
    assert {p.stem for p in (tmp_path / "figures").iterdir()} == figures
    summary = (tmp_path / "summary.md").read_text()
    assert all(f"| {header} |" not in summary for header in absent)
    assert "Sampler diagnostics" not in summary
    assert all(row["posterior_mean"] is None for row in comparison["parameters"])
    assert (comparison["vb"] is not None) == ("vb" in methods)


def test_seed1000_is_fitted_with_its_notebooks_priors():
    """alpha_0 = 1.5, beta_0 = 1.5, m_0 = (1, 1), nu_0 = 2, W_0 = I, as the seed document has."""
    dataset = load_dataset("seed1000")
    fits = fit_em(dataset, 3, random_seed=0)
    vb = run_vb(dataset, fits)
    assert vb.priors["weight_concentration_prior"] == 1.5
    assert vb.priors["mean_precision_prior"] == 1.5
    np.testing.assert_array_equal(vb.priors["mean_prior"], [1.0, 1.0])
    assert vb.priors["degrees_of_freedom_prior"] == 2.0
    np.testing.assert_array_equal(vb.priors["covariance_prior"], np.eye(2))
    assert "seed1000" in vb.prior_source


def test_one_chain_in_both_nuts_runs_is_said_once(vb_results, seed_data, seed_em):
    """The missing R-hat of a single chain is one warning, not one per NUTS run."""
    from tests.conftest import fake_posterior

    X, _ = seed_data
    settings = dataclasses.replace(SETTINGS, chains=1, draws=200)
    one = fake_posterior(X, seed_em.parameters_, chains=1, draws=200)
    gauss_wishart = fake_posterior(X, seed_em.parameters_, chains=1, draws=50, random_seed=2)
    results = dataclasses.replace(
        vb_results, settings=settings, idata=one, idata_gauss_wishart=gauss_wishart
    )
    warnings = compare(results)["warnings"]
    assert [w for w in warnings if "single chain" in w] == [
        "sampler: R-hat cannot be computed from a single chain: sample 2 or more chains to "
        "check convergence"
    ]
    assert not [w for w in warnings if "diagnostics report a problem" in w]
