"""EM's uncertainty in the pipeline, em.json, comparison.json, the report and the forest plot.

The numbers are checked against em_reference's own methods on the seed program's EM fit of
seed-7907 (`seed_em`), which is the reference run of `fit_em` on seed-7907, in the same order.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from analysis.comparison import compare
from analysis.datasets import load_dataset
from analysis.em_fits import fit_em
from analysis.em_uncertainty import EMUncertainty
from analysis.files import dumps
from analysis.pipeline import Results, results_from, run_uncertainty
from analysis.saved import load_results, save_results
from analysis.settings import RunSettings

N_BOOT = 60
SETTINGS = RunSettings(
    n_components=3, random_seed=7907, draws=250, tune=0, chains=4, bootstrap=N_BOOT
)
GROUPS = ("weights", "means", "covariances")


@pytest.fixture(scope="module")
def seed_results(seed_fake_posterior) -> Results:
    """seed-7907, both EM runs, their uncertainty (N_BOOT replicates) and the fake posterior."""
    dataset = load_dataset("seed7907")
    fits = fit_em(dataset, 3, random_seed=SETTINGS.random_seed)
    uncertainty = run_uncertainty(dataset, fits, SETTINGS)
    return results_from(dataset, fits, uncertainty, seed_fake_posterior, SETTINGS)


@pytest.fixture(scope="module")
def direct(seed_em, seed_data):
    """What em_reference computes on the seed program's fit: SEs, Wald intervals, bootstrap."""
    X, _ = seed_data
    boot = seed_em.bootstrap(X, N_BOOT, "nonparametric", SETTINGS.random_seed, n_jobs=1)
    return {
        "se": seed_em.standard_errors(X),
        "wald": seed_em.wald_intervals(X),
        "boot": boot,
        "boot_se": boot.standard_errors(),
        "boot_interval": boot.intervals(),
    }


def _same(actual, expected) -> None:
    """Two MixtureArrays agree to rounding."""
    for group in GROUPS:
        np.testing.assert_allclose(
            getattr(actual, group), getattr(expected, group), rtol=1e-9, atol=1e-12
        )


def test_the_pipeline_computes_what_em_reference_computes(seed_results, direct):
    """The reference run's information SEs, Wald bounds and bootstrap summaries and counts."""
    u = seed_results.uncertainty
    assert seed_results.fits.reference == "initial"
    assert u.problems == ()
    _same(u.standard_errors, direct["se"])
    _same(u.wald_low, direct["wald"].lower)
    _same(u.wald_high, direct["wald"].upper)
    _same(u.bootstrap_standard_errors, direct["boot_se"])
    _same(u.bootstrap_low, direct["boot_interval"].lower)
    _same(u.bootstrap_high, direct["boot_interval"].upper)
    assert (u.n_boot, u.n_failed, u.n_relabelled, u.n_unconverged) == (
        N_BOOT,
        direct["boot"].n_failed,
        direct["boot"].n_relabelled,
        direct["boot"].n_unconverged,
    )


def test_em_json_round_trip_keeps_the_uncertainty(seed_results, tmp_path):
    """save_results then load_results gives the same SEs, bounds, counts and settings."""
    save_results(seed_results, tmp_path)
    loaded = load_results(tmp_path)
    assert loaded.settings == SETTINGS
    before, after = seed_results.uncertainty, loaded.uncertainty
    for field in dataclasses.fields(EMUncertainty):
        value, again = getattr(before, field.name), getattr(after, field.name)
        if value is None or isinstance(value, int | tuple):
            assert again == value, field.name
        else:
            _same(again, value)


def test_a_singular_information_is_recorded_not_raised(seed_results):
    """A component carrying almost no points: no SEs, and the error message is kept."""
    run = seed_results.fits.reference_run
    X = seed_results.dataset.X
    p = run.parameters
    far = p.means.copy()
    far[2] = X.max(axis=0) + 1e3  # component 2 is responsible for no point
    broken = dataclasses.replace(run, parameters=dataclasses.replace(p, means=far))
    u = run_uncertainty(
        seed_results.dataset,
        dataclasses.replace(seed_results.fits, runs={run.name: broken}, reference=run.name),
        dataclasses.replace(SETTINGS, bootstrap=0),
    )
    assert u.standard_errors is None and u.wald_low is None and u.wald_high is None
    assert u.bootstrap_standard_errors is None and u.n_boot == 0
    assert len(u.problems) == 1
    assert u.problems[0].startswith("EM standard errors: the information is singular")


@pytest.fixture(scope="module")
def seed_comparison(seed_results):
    """The comparison dict of seed_results, as comparison.json holds it."""
    return json.loads(dumps(compare(seed_results)))


COLUMNS = {
    "em_se": ("se", None),
    "em_wald_low": ("wald", "lower"),
    "em_wald_high": ("wald", "upper"),
    "em_bootstrap_se": ("boot_se", None),
    "em_bootstrap_low": ("boot_interval", "lower"),
    "em_bootstrap_high": ("boot_interval", "upper"),
}


def test_comparison_rows_hold_em_reference_numbers(seed_comparison, seed_fake_posterior, direct):
    """Every row's EM SE, Wald and bootstrap bounds, and SE / posterior SD from the draws."""
    rows = seed_comparison["parameters"]
    assert len(rows) == 3 + 3 * 2 + 3 * 3
    for row in rows:
        group, index = row["group"], tuple(row["index"])
        for key, (source, side) in COLUMNS.items():
            arrays = direct[source] if side is None else getattr(direct[source], side)
            assert row[key] == pytest.approx(getattr(arrays, group)[index], rel=1e-9), key
        sd = np.asarray(seed_fake_posterior.posterior[group]).std(axis=(0, 1), ddof=1)[index]
        assert row["se_ratio"] == pytest.approx(getattr(direct["se"], group)[index] / sd)
        assert row["em_wald_low"] < row["em"]["initial"] < row["em_wald_high"]
    assert seed_comparison["em_uncertainty"]["n_boot"] == N_BOOT
    assert seed_comparison["em_uncertainty"]["n_failed"] == direct["boot"].n_failed
