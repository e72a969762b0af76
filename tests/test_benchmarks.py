"""Smoke tests of the benchmark machinery on tiny sizes: structure and agreement, never time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import __main__ as command
from benchmarks import em_speed, nuts, report, selection, timing, uncertainty, variational
from benchmarks.tutorial_em import tutorial_em
from em_reference import GaussianMixtureEM, seed7907

TINY_CASES = (
    em_speed.EMCase(300, 2, 3, iterations=3, rounds=2),
    em_speed.EMCase(400, 3, 2, iterations=3, rounds=2),
)


def test_a_case_reports_every_method_and_agrees_with_scikit_learn():
    row = em_speed.run_case(TINY_CASES[0])
    assert set(row["seconds_per_iteration"]) == set(em_speed.METHODS)
    assert row["ratio_to_sklearn"]["sklearn"] == pytest.approx(1.0)
    assert all(peak > 0 for peak in row["peak_bytes"].values())
    assert row["largest_difference_to_sklearn"]["ours"] < 1e-8
    assert row["largest_difference_to_sklearn"]["tutorial"] < 1e-8


def test_the_tutorial_style_follows_the_same_iterations_as_ours():
    X, _ = seed7907.load()
    initial = seed7907.INITIAL
    start = (initial.weights, initial.means, initial.covariances)
    weights, means, covariances, history = tutorial_em(X, start, 16)
    ours = GaussianMixtureEM(3, init=initial).fit(X)
    assert np.allclose(means, ours.means_, atol=1e-10)
    assert np.allclose(covariances, ours.covariances_, atol=1e-10)
    assert np.allclose(weights, ours.weights_, atol=1e-12)
    assert history[-1] == pytest.approx(ours.log_likelihood_, abs=1e-8)


def test_interleaved_timing_keeps_one_time_per_round_for_each_method():
    timings = timing.interleaved({"a": lambda: None, "b": lambda: sum(range(100))}, rounds=3)
    assert [len(timings.seconds[name]) for name in ("a", "b")] == [3, 3]
    assert timings.paired_ratio("a", "a") == pytest.approx(1.0)
    assert timing.peak_memory(lambda: np.ones(100_000)) >= 800_000


def test_the_command_writes_both_results_files(tmp_path, monkeypatch):
    monkeypatch.setattr(em_speed, "QUICK_CASES", TINY_CASES)
    assert command.main(["--quick", "--only", "em", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["machine"]["nproc"] >= 1
    assert [row["case"] for row in results["em"]] == [case.label for case in TINY_CASES]
    assert all(row["largest_difference_to_sklearn"]["ours"] < 1e-8 for row in results["em"])
    markdown = (tmp_path / "results.md").read_text()
    assert "## EM: time per iteration" in markdown
    assert "n=400 D=3 K=2" in markdown


def test_a_failed_nuts_run_is_a_row_that_says_why():
    rows = [{"formulation": "ours", "sampler": "nutpie", "backend": None, "error": "no module"}]
    lines = report.nuts_section(rows, [])
    assert any("failed: no module" in line for line in lines)


def test_the_command_refuses_an_unknown_section():
    with pytest.raises(SystemExit):
        command.main(["--only", "everything"])


@pytest.mark.sampling
def test_a_nuts_row_records_the_mass_matrix_it_asked_for():
    settings = nuts.NutsSettings(draws=20, tune=20, chains=1, n_points=200)
    row = nuts.run_formulation("ours", "default", settings, mass_matrix="diag")
    assert row["mass_matrix"] == "diag"
    assert row["min_bulk_ess"] > 0 and row["sampling_seconds"] > 0
    assert row["gradient_evaluations"] >= 20
    assert row["gradient_seconds"] > 0  # recorded; its size is the benchmark's business


def test_a_sampler_refuses_a_mass_matrix_it_cannot_adapt():
    with pytest.raises(ValueError, match="pymc adapts a mass matrix in"):
        nuts.run_formulation("tutorial", "pymc", nuts.NutsSettings(), mass_matrix="low-rank")


def test_the_nuts_table_compares_with_the_tutorial_under_pymc_defaults():
    def row(formulation, mass_matrix, ess_per_second):
        return {
            "formulation": formulation,
            "sampler": "pymc",
            "backend": "numba",
            "mass_matrix": mass_matrix,
            "min_bulk_ess": 100.0,
            "sampling_seconds": 1.0,
            "total_seconds": 2.0,
            "ess_per_sampling_second": ess_per_second,
            "ess_per_total_second": 50.0,
            "gradient_evaluations": 10,
            "divergences": 0,
        }

    rows = [
        row("tutorial", "full", 300.0),
        row("tutorial", "diag", 100.0),
        row("ours", "full", 250),
    ]
    lines = report.nuts_section(rows, [])
    assert any(line.startswith("| ours") and "| x2.50 |" in line for line in lines)


def test_the_bootstrap_section_times_every_method_and_tabulates_every_parameter(tmp_path):
    result = uncertainty.run(n_boot=6, rounds=1)
    keys = {(row["method"], row["n_jobs"]) for row in result["timings"]}
    assert keys == {(m, j) for m in ("nonparametric", "parametric", "weighted") for j in (1, 2)}
    labels = [row["parameter"] for row in result["standard_errors"]]
    assert len(labels) == 3 * (1 + 2 + 3)  # a weight, 2 means, 3 distinct covariance entries
    assert all(row["observed"] > 0 and row["weighted"] > 0 for row in result["standard_errors"])
    markdown = "\n".join(report.bootstrap_section(result))
    assert "| covariances[2][1, 0] |" in markdown


def test_the_vb_section_times_vb_em_and_scikit_learn_on_the_same_iterations(tmp_path, monkeypatch):
    tiny = variational.VBSettings(seed_rounds=1, large=em_speed.EMCase(2_000, 2, 3, 3, rounds=1))
    monkeypatch.setattr(variational, "QUICK", tiny)
    assert command.main(["--quick", "--only", "vb", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    seed = results["vb"]["seed7907"]
    assert seed["n_iter"]["ours, seed start"] == seed["n_iter"]["sklearn, seed start"]
    assert set(results["vb"]["large"]["seconds_per_iteration"]) == {"vb", "em", "sklearn_vb"}
    assert "## VB: a seed-7907 fit" in (tmp_path / "results.md").read_text()


def test_the_simulation_section_reports_the_speedup_against_its_goal():
    row = {
        "workers": 1,
        "replicates": 8,
        "wall_seconds": 80.0,
        "replicates_per_minute": 6.0,
        "rounds_per_minute": [6.0, 5.5, 6.5],
        "method_seconds": {"nuts": 5.0},
        "nuts_first_seconds": 25.0,
        "nuts_compile_seconds": 18.0,
        "compiled_in_timed_study": 0,
    }
    result = {
        "settings": {"n_points": 500, "methods": ["nuts"], "chains": 2, "draws": 500, "tune": 500}
        | {"bootstrap": 200, "replicates": 8},
        "rows": [row, row | {"workers": 2, "replicates_per_minute": 9.0}],
        "round_speedups": [1.4, 1.5, 1.6],
        "speedup": 1.5,
        "goal_speedup": 1.7,
        "goal_met": False,
        "load_average_before": 2.0,
        "load_average_after": 2.5,
    }
    lines = report.simulate_section(result)
    assert any("(x1.40, x1.50, x1.60): x1.50 (goal x1.7: goal missed)" in line for line in lines)
    two_workers = "| 2 | 8 | 80 | 9.00 (6.0, 5.5, 6.5) | nuts 5.0 | 25.0 (18.0) | 0 |"
    assert any(line.startswith(two_workers) for line in lines)


def test_select_section_states_the_median_against_the_goal():
    run = {"seconds": 80.0, "method_seconds": {"em": 2.0, "vb": 3.0, "nuts": 70.0}}
    result = {
        "command": "gmm-compare select seed7907",
        "runs": [run, run | {"seconds": 95.0}, run | {"seconds": 84.0}],
        "median_seconds": 84.0,
        "method_seconds": {"em": 2.0, "vb": 3.0, "nuts": 70.0},
        "goal_seconds": 90.0,
        "goal_met": True,
        "load_average_before": 1.0,
        "load_average_after": 1.5,
    }
    lines = report.select_section(result)
    assert any("median 84.0 s over 3 warm runs (80.0, 95.0, 84.0)" in line for line in lines)
    assert any("goal ≤ 90 s: goal met" in line for line in lines)
    assert any("em 2.0 s, vb 3.0 s, nuts 70.0 s" in line for line in lines)
    assert report.select_section(result | {"goal_met": False})[2].endswith("goal missed")


@pytest.mark.sampling
def test_quick_select_benchmark_times_the_command_and_each_method():
    result = selection.run(quick=True)
    assert result["command"].startswith("gmm-compare select seed7907 -k 1:2")
    assert len(result["runs"]) == 1
    assert result["median_seconds"] == result["runs"][0]["seconds"]
    seconds = result["method_seconds"]
    assert seconds["em"] > 0 and seconds["vb"] > 0 and seconds["nuts"] > 0
    assert seconds["em"] + seconds["vb"] + seconds["nuts"] < result["median_seconds"]


def test_the_end_to_end_section_gives_the_warm_median_and_every_run():
    result = {
        "command": "gmm-compare",
        "cold": {"seconds": 30.0},
        "warm": {"seconds": 9.5, "posterior_mb": 8.6},
        "warm_seconds": [9.5, 11.0, 9.2],
        "cold_over_warm": 30.0 / 9.5,
    }
    lines = report.end_to_end_section(result)
    assert "- warm (goal ≤ 10 s): 9.5 s (goal met); median of 3 runs (9.5, 11.0, 9.2)" in lines
    assert "- cold (goal ≤ 45 s): 30.0 s (goal met)" in lines
