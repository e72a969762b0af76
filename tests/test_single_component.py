"""K = 1 is a valid model: its weight is 1 exactly, with no SE or interval; nothing else degrades.

Issue 23, case 13: before, the weight's Wald interval was NaN (logit of 1), so `em --json`,
`compare` and `sample` failed after all the work with "a result is NaN or infinite", and NumPy
printed RuntimeWarnings on the way.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from em_reference import GaussianMixtureEM

SETS = (
    "standard_errors",
    "bootstrap_standard_errors",
    "wald_low",
    "wald_high",
    "bootstrap_low",
    "bootstrap_high",
)
TINY_NUTS = ("--draws", "50", "--tune", "50", "--chains", "2", "--bootstrap", "0")


def _finite_positive(values: object) -> bool:
    """True when every number in a nested list is finite and > 0."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    return flat.size > 0 and bool(np.all(np.isfinite(flat)) and np.all(flat > 0))


def test_wald_intervals_of_one_component_are_finite_without_warnings(seed_data):
    X, _ = seed_data
    fit = GaussianMixtureEM(1).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: divide by zero in log1p, invalid divide
        intervals = fit.wald_intervals(X)
    assert intervals.lower.weights.tolist() == intervals.upper.weights.tolist() == [1.0]
    for bound in (intervals.lower, intervals.upper):
        assert np.all(np.isfinite(bound.means)) and np.all(np.isfinite(bound.covariances))
    assert np.all(intervals.lower.means < fit.means_) and np.all(fit.means_ < intervals.upper.means)


def test_em_json_at_k_1_has_a_null_weight_interval_and_finite_rest(run_gmm_compare):
    result = run_gmm_compare("em", "-k", "1", "--json", "--bootstrap", "20")
    assert result.returncode == 0, result.stderr  # before: 2, "a result is NaN or infinite"
    assert result.stderr == ""  # before: two NumPy RuntimeWarnings
    uncertainty = json.loads(result.stdout)["uncertainty"]
    for name in SETS:
        assert uncertainty[name]["weights"] is None  # fixed at 1: no SE, no interval
        assert np.all(np.isfinite(uncertainty[name]["means"]))
        assert np.all(np.isfinite(uncertainty[name]["covariances"]))
    for name in ("standard_errors", "bootstrap_standard_errors"):
        assert _finite_positive(uncertainty[name]["means"])
        assert _finite_positive(uncertainty[name]["covariances"])
    assert uncertainty["problems"] == []


def _check_k1_rows(rows: list[dict], spreads: tuple[str, ...]) -> None:
    """The weight row is fixed (spread columns null); every other row's `spreads` are finite > 0."""
    weight, *others = rows
    assert weight["parameter"] == "weights[0]" and weight["fixed"] is True
    assert weight["em"]["restarts"] == 1.0 and weight["vb_mean"] == pytest.approx(1.0)
    spread = ("em_se", "em_wald_low", "em_wald_high", "em_bootstrap_low", "vb_sd", "vb_low")
    assert all(weight[column] is None for column in spread)
    for row in others:
        assert row["fixed"] is False
        for column in spreads:
            assert row[column] is not None and math.isfinite(row[column]) and row[column] > 0
        assert row["em_wald_low"] < row["em"]["restarts"] < row["em_wald_high"]


def test_compare_at_k_1_with_em_and_vb_writes_the_report(tmp_path, run_gmm_compare):
    out = tmp_path / "k1"
    args = ("compare", "-k", "1", "--methods", "em,vb", "--bootstrap", "20", "--out", out, "-q")
    result = run_gmm_compare(*args)
    assert result.returncode == 0, result.stderr  # before: 2, "a result is NaN or infinite"
    assert result.stderr == ""
    first = (out / "comparison.json").read_text()
    _check_k1_rows(json.loads(first)["parameters"], ("em_se", "em_bootstrap_se", "vb_sd"))
    assert "| weights[0] (fixed at 1) |" in (out / "summary.md").read_text()
    # em.json's null weight interval reads back: the report is rebuilt to the same numbers.
    result = run_gmm_compare("report", "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    assert (out / "comparison.json").read_text() == first


@pytest.mark.sampling
def test_compare_and_sample_at_k_1_with_nuts(tmp_path, run_gmm_compare):
    out = tmp_path / "k1"
    result = run_gmm_compare("compare", "-k", "1", *TINY_NUTS, "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning" not in result.stderr  # before: 4 from ArviZ's summary of the weight
    comparison = json.loads((out / "comparison.json").read_text())
    _check_k1_rows(comparison["parameters"], ("em_se", "vb_sd", "posterior_sd"))
    weight = comparison["parameters"][0]
    assert weight["posterior_mean"] == pytest.approx(1.0) and weight["posterior_sd"] is None
    result = run_gmm_compare("sample", "-k", "1", *TINY_NUTS, "--out", tmp_path / "s", "--json")
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning" not in result.stderr
    assert json.loads(result.stdout)["sampler"]["divergences"] is not None


def test_em_text_at_k_1_says_the_weight_is_fixed_not_that_its_se_is_0(capsys):
    from analysis.cli import main

    assert main(["em", "-k", "1", "--bootstrap", "20"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("weights     none: the one weight is fixed at 1") == 2
    assert "[0.0]" not in printed
