"""The checks made on the data before any work (analysis.checks): points per component, scale."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from analysis.checks import check_components, scale_limits
from analysis.cli import main
from analysis.datasets import Dataset, load_dataset
from analysis.files import write_manifest

TINY_NUTS = ("--draws", "50", "--tune", "50", "--chains", "2", "--bootstrap", "0")
SEED42_LARGEST = float(np.max(np.abs(load_dataset("seed42").X)))


@pytest.fixture
def earlier_report(tmp_path):
    """A folder standing for a good earlier report, and a snapshot of its files."""
    folder = tmp_path / "reports" / "report"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<p>good report</p>")
    write_manifest(folder)
    return folder, sorted((p.name, p.read_bytes()) for p in folder.iterdir())


def refused_in_one_line(run, earlier_report, *args) -> str:
    """Run gmm-compare into the earlier report; assert a one-line refusal; that line."""
    folder, before = earlier_report
    result = run(*args, "--out", folder)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "RuntimeWarning" not in result.stderr
    assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder
    return result.stderr


def csv(tmp_path, name: str, X: np.ndarray, header: str = "") -> str:
    """X written as a CSV in tmp_path; its path."""
    path = tmp_path / name
    np.savetxt(path, X, delimiter=",", header=header, comments="")
    return str(path)


# ---------------------------------------------------------------------------------------------
# Case 11: n == K with NUTS


TRIANGLE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("subcommand", ["compare", "sample"])
def test_nuts_on_fewer_than_k_d_plus_1_points_is_refused_before_any_work(
    subcommand, tmp_path, earlier_report, run_gmm_compare
):
    # Before: thousands of Numba ZeroDivisionError lines, then "All initialization points
    # failed" or a segfault, after EM's work.
    data = csv(tmp_path, "tri.csv", TRIANGLE, header="x,y")
    line = refused_in_one_line(
        run_gmm_compare,
        earlier_report,
        subcommand,
        "--data",
        data,
        "--methods",
        "em,nuts",
        *TINY_NUTS,
    )
    assert line == (
        "gmm-compare: error: tri: NUTS is not run on so few points: K = 3 components in D = 2 "
        "dimensions need at least K (D + 1) = 9 points (D + 1 per full covariance), the data "
        "have 3; fit fewer components or leave NUTS out\n"
    )


def test_the_rule_is_k_d_plus_1_points_and_em_and_vb_keep_any_k_up_to_n():
    def dataset(n_points):
        return Dataset("d", np.random.default_rng(0).normal(size=(n_points, 2)), None, "")

    check_components(dataset(9), 3, ("em", "vb", "nuts"))  # 3 (2 + 1) = 9: enough
    with pytest.raises(ValueError, match=r"K \(D \+ 1\) = 9 points .* the data have 8"):
        check_components(dataset(8), 3, ("em", "vb", "nuts"))
    check_components(dataset(3), 3, ("em", "vb"))  # EM's reg_covar, VB's prior: well defined


def test_em_still_fits_as_many_components_as_points(tmp_path, capsys):
    data = csv(tmp_path, "tri.csv", TRIANGLE, header="x,y")
    assert main(["em", "--data", data, "-k", "3", "--bootstrap", "0"]) == 0
    assert "log-likelihood" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Cases 15 and 17: the largest value each run's arithmetic takes, and no RuntimeWarning below it


def scaled_seed42(tmp_path, largest: float) -> str:
    """seed42's points scaled so that their largest absolute value is `largest`, as a CSV."""
    return csv(tmp_path, "scaled.csv", load_dataset("seed42").X * (largest / SEED42_LARGEST))


def limit(methods: tuple[str, ...]) -> float:
    """The strictest of the scale limits for seed42's 300 points and these methods."""
    return min(bound for bound, _ in scale_limits(300, methods))


RUNS = {
    "em": ("compare", "-k", "3", "--methods", "em", "--bootstrap", "20"),
    "em,vb": ("compare", "-k", "3", "--methods", "em,vb", "--bootstrap", "20"),
    "em,vb,nuts": ("compare", "-k", "3", "--methods", "em,vb,nuts", *TINY_NUTS),
}
"""Each set of methods as a comparison: EM's standard errors and bootstrap, VB's summaries and
NUTS's predictive draws are the parts whose arithmetic sets the limits."""


@pytest.mark.parametrize("methods", list(RUNS))
def test_values_just_above_the_limit_are_refused_before_any_work(
    methods, tmp_path, earlier_report, run_gmm_compare
):
    # Before: accepted up to 1e100; EM's standard errors, VB's Monte Carlo errors and NUTS's
    # float32 predictive draws then overflowed after the work (RuntimeWarnings, then "a result
    # is NaN or infinite" or a TypeError).
    data = scaled_seed42(tmp_path, 1.1 * limit(tuple(methods.split(","))))
    line = refused_in_one_line(run_gmm_compare, earlier_report, *RUNS[methods], "--data", data)
    assert "too large for" in line and "rescale the data" in line


@pytest.mark.parametrize("methods", ["em", "em,vb"])
def test_values_just_below_the_limit_run_without_a_runtime_warning(methods, tmp_path):
    data = scaled_seed42(tmp_path, 0.9 * limit(tuple(methods.split(","))))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # raised through main, failing the test
        assert main([*RUNS[methods], "--data", data, "--out", str(out), "--quiet"]) == 0
    assert "NaN" not in (out / "comparison.json").read_text()


@pytest.mark.sampling
def test_values_just_below_the_nuts_limit_run_without_a_runtime_warning(tmp_path):
    data = scaled_seed42(tmp_path, 0.9 * limit(("em", "vb", "nuts")))
    out = tmp_path / "out"
    result = _run_with_warnings_as_errors(*RUNS["em,vb,nuts"], "--data", data, "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    assert "NaN" not in (out / "comparison.json").read_text()


def test_values_near_1e50_are_refused_without_a_runtime_warning(
    tmp_path, earlier_report, run_gmm_compare
):
    # Before: dozens of raw "overflow encountered in square/power/cast" RuntimeWarnings, then an
    # error after the work.
    data = scaled_seed42(tmp_path, 1e50)
    refused_in_one_line(run_gmm_compare, earlier_report, *RUNS["em,vb,nuts"], "--data", data)


def _run_with_warnings_as_errors(*args):
    """gmm-compare in a subprocess where any RuntimeWarning is an error (a traceback)."""
    environment = os.environ | {"PYTHONWARNINGS": "error::RuntimeWarning"}
    return subprocess.run(
        [sys.executable, "-m", "analysis", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


# ---------------------------------------------------------------------------------------------
# Case 16: collinear columns and VB


def identical_columns(tmp_path) -> str:
    """Two well-separated groups whose first two columns are the same values; the CSV's path."""
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0.0, 1.0, 60), rng.normal(6.0, 1.0, 60)]
    return csv(tmp_path, "twins.csv", np.c_[x, x, rng.normal(0.0, 1.0, 120)], "a,b,c")


@pytest.mark.parametrize("subcommand", ["compare", "select"])
def test_vb_on_collinear_columns_is_refused_before_any_work_naming_them(
    subcommand, tmp_path, earlier_report, run_gmm_compare
):
    # Before: VB failed after EM's work with "... not positive definite ... increase reg_covar",
    # an option the command does not have.
    path = identical_columns(tmp_path)
    line = refused_in_one_line(
        run_gmm_compare, earlier_report, subcommand, "--data", path, "--methods", "em,vb"
    )
    assert "columns a, b are collinear" in line and "reg_covar" not in line


def test_em_alone_on_collinear_columns_still_runs(tmp_path):
    dataset = Dataset(
        name="twins",
        X=np.loadtxt(identical_columns(tmp_path), delimiter=",", skiprows=1),
        labels=None,
        description="",
        names=("a", "b", "c"),
    )
    check_components(dataset, 2, ("em", "nuts"))  # no error: their collapse is named instead
    with pytest.raises(ValueError, match="columns a, b are collinear"):
        check_components(dataset, 2, ("em", "vb"))
