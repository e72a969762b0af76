"""The gmm-compare command end to end, with small draw counts: files, numbers, rebuild, any D."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from analysis.comparison import compare
from analysis.figures import FIGURES
from analysis.files import dumps
from analysis.saved import load_results
from em_reference import sample_mixture, seed7907

pytestmark = pytest.mark.sampling

REPORT_FILES = {
    "gmm-compare-manifest.json",
    "index.html",
    "summary.md",
    "comparison.json",
    "em.json",
    "vb.json",
    "posterior.nc",
    "posterior_gauss_wishart.nc",
    "data.csv",
    "figures",
}


def test_the_main_job_writes_every_file(seed_report_run):
    folder, result = seed_report_run
    assert {p.name for p in folder.iterdir()} == REPORT_FILES
    assert {p.name for p in (folder / "figures").iterdir()} == {f"{f}.png" for f in FIGURES}
    assert [p.name for p in folder.parent.iterdir()] == ["seed7907"]  # no staging left
    lines = result.stdout.splitlines()  # PyMC's progress bar comes first, on stdout
    out = lines[lines.index("seed7907: n = 500, D = 2, K = 3") :]
    assert out[1].startswith("EM (initial): 16 iterations, log-likelihood -2089.5719")
    assert out[-1] == "report: reports/seed7907/index.html"


def test_comparison_json_equals_the_python_api(seed_report_run, seed_em):
    folder, _ = seed_report_run
    saved = json.loads((folder / "comparison.json").read_text())
    results = load_results(folder)
    again = compare(results)
    assert saved == json.loads(dumps(again))
    # ... and equal to numbers computed without the analysis package.
    from models import load_posterior

    idata = load_posterior(folder / "posterior.nc")
    weights = np.asarray(idata.posterior["weights"]).reshape(-1, 3)
    rows = {row["parameter"]: row for row in saved["parameters"]}
    for k in range(3):
        assert rows[f"weights[{k}]"]["posterior_mean"] == pytest.approx(weights[:, k].mean())
        assert rows[f"weights[{k}]"]["em"]["initial"] == seed_em.weights_[k]
        assert rows[f"weights[{k}]"]["published"] == seed7907.PUBLISHED.weights[k]
    assert saved["accuracy"]["methods"]["initial"]["correct"] == 497
    assert saved["settings"] == saved["settings"] | {"draws": 100, "tune": 100, "chains": 2}
    assert weights.shape == (200, 3)


def test_report_rebuilds_the_same_tables_without_sampling(
    seed_report_run, tmp_path, run_gmm_compare
):
    folder, _ = seed_report_run
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    for name in ("comparison.json", "summary.md", "index.html"):
        (copy / name).unlink()
    shutil.rmtree(copy / "figures")
    result = run_gmm_compare("report", "--out", copy, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{copy / 'index.html'}\n"
    assert (copy / "comparison.json").read_text() == (folder / "comparison.json").read_text()
    assert (copy / "summary.md").read_text() == (folder / "summary.md").read_text()
    assert (copy / "posterior.nc").read_bytes() == (folder / "posterior.nc").read_bytes()
    assert {p.name for p in (copy / "figures").iterdir()} == {f"{f}.png" for f in FIGURES}


def test_a_3d_csv_with_two_components_runs_end_to_end(tmp_path, run_gmm_compare):
    X, _ = sample_mixture(
        240,
        [0.4, 0.6],
        [[0.0, 0.0, 0.0], [4.0, 4.0, -3.0]],
        [np.eye(3), [[1.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 1.0]]],
        seed=11,
    )
    data = tmp_path / "three_d.csv"
    np.savetxt(data, X, delimiter=",", header="a,b,c", comments="")
    out = tmp_path / "out"
    result = run_gmm_compare(
        "--data",
        data,
        "--components",
        "2",
        "--draws",
        "100",
        "--tune",
        "100",
        "--chains",
        "2",
        "--out",
        out,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    for info in ("Multiprocess sampling", "NUTS: [", "Sampling: ["):  # PyMC's INFO log lines
        assert info not in result.stderr
    printed = json.loads(result.stdout)
    assert printed["report"] == str(out)
    assert {p.name for p in out.iterdir()} == REPORT_FILES
    saved = json.loads((out / "comparison.json").read_text())
    assert printed == {"report": str(out), **saved}
    assert (
        saved["dataset"] | {"n_features": 3, "n_points": 240, "labels_known": False}
        == (saved["dataset"])
    )
    assert len(saved["parameters"]) == 2 + 2 * 3 + 2 * 6
    assert all(row["true"] is None for row in saved["parameters"])
    assert list(saved["em"]["runs"]) == ["restarts"]
    means = np.array(
        [
            [
                r["posterior_mean"]
                for r in saved["parameters"]
                if r["group"] == "means" and r["index"][0] == k
            ]
            for k in range(2)
        ]
    )
    assert np.allclose(means, [[0, 0, 0], [4, 4, -3]], atol=0.4)
    summary = (out / "summary.md").read_text()
    assert "True labels are unknown for this dataset" in summary


def test_report_refuses_saved_pieces_that_do_not_belong_together(
    seed_report_run, tmp_path, run_gmm_compare
):
    # Before: data.csv from other data crashed with an IndexError traceback, and an em.json
    # with another K was accepted.
    folder, _ = seed_report_run
    other_data = tmp_path / "other_data"
    shutil.copytree(folder, other_data)
    assert run_gmm_compare("data", "seed42", "--out", other_data / "data.csv").returncode == 0
    other_k = tmp_path / "other_k"
    shutil.copytree(folder, other_k)
    em = run_gmm_compare("em", "-k", "2", "--json")
    (other_k / "em.json").write_text(em.stdout)
    for copy, mismatch in (
        (other_data, "data.csv has 300 points of D = 2, not 500"),
        (other_k, "em.json run 'initial' has K = 2"),
    ):
        before = sorted((p.name, p.stat().st_mtime_ns) for p in copy.iterdir())
        result = run_gmm_compare("report", "--out", copy)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert "do not belong together: posterior.nc has K = 3, D = 2, but" in lines[0]
        assert mismatch in lines[0] or mismatch.replace("initial", "restarts") in lines[0]
        assert sorted((p.name, p.stat().st_mtime_ns) for p in copy.iterdir()) == before


def test_one_chain_works_and_the_banner_says_why_r_hat_is_missing(tmp_path, run_gmm_compare):
    # Before: a traceback after sampling (the rank plot needs two chains).
    out = tmp_path / "one"
    result = run_gmm_compare(
        "seed42", "--draws", "100", "--tune", "100", "--chains", "1", "--out", out, "-q"
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "comparison.json").read_text())
    assert all(row["r_hat"] is None for row in saved["parameters"])
    assert saved["sampler"]["max_rhat"] is None
    one_chain = [w for w in saved["warnings"] if "single chain" in w]
    assert one_chain == [
        "sampler: R-hat cannot be computed from a single chain: sample 2 or more chains to "
        "check convergence"
    ]
    assert not [w for w in saved["warnings"] if "R-hat is undefined" in w or "max_rhat" in w]
    assert "single chain" in (out / "index.html").read_text()
    assert (out / "figures" / "rank.png").is_file()
