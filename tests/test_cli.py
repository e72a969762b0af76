"""The gmm-compare command without sampling: help, data, em, and every kind of bad input."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from analysis.datasets import load_dataset, read_csv
from analysis.files import write_manifest
from em_reference import GaussianMixtureEM, seed7907


def test_help_explains_every_subcommand_and_option(run_gmm_compare):
    top = run_gmm_compare("--help")
    assert top.returncode == 0
    for word in ("data", "em", "sample", "report", "compare", "seed7907"):
        assert word in top.stdout
    sub = run_gmm_compare("compare", "--help")
    assert sub.returncode == 0
    for option in (
        "--data",
        "--components",
        "--seed",
        "--draws",
        "--tune",
        "--chains",
        "--out",
        "--json",
        "--quiet",
        "--bootstrap",
        "--methods",
        "seed42",
        "seed1000",
    ):
        assert option in sub.stdout


def test_data_writes_a_named_dataset_as_csv(tmp_path, capsys):
    path = tmp_path / "seed42.csv"
    assert main(["data", "seed42", "--out", str(path), "--quiet"]) == 0
    back = read_csv(path)
    dataset = load_dataset("seed42")
    assert np.array_equal(back.X, dataset.X)
    assert np.array_equal(back.labels, dataset.labels)
    assert main(["data"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("0,")  # seed7907 on stdout


def test_em_json_is_the_seed_run(capsys, seed_em):
    assert main(["em", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    initial = document["em"]["runs"]["initial"]
    assert document["em"]["reference"] == "initial"
    assert np.array_equal(initial["means"], seed_em.means_)
    assert initial["n_iter"] == 16
    assert document["dataset"]["published"] == seed7907.PUBLISHED.as_dict()
    assert document["settings"]["n_components"] == 3


def test_em_json_holds_the_standard_errors(capsys, seed_em, seed_data):
    """The information SEs of the seed run; the bootstrap's replicates and seed as asked."""
    X, _ = seed_data
    assert main(["em", "--json", "--bootstrap", "20", "--seed", "4"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no progress note with --json
    document = json.loads(captured.out)
    uncertainty = document["uncertainty"]
    expected = seed_em.standard_errors(X)
    for group in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            uncertainty["standard_errors"][group], getattr(expected, group), rtol=1e-9
        )
    boot = seed_em.bootstrap(X, 20, random_state=4).standard_errors()
    np.testing.assert_allclose(uncertainty["bootstrap_standard_errors"]["means"], boot.means)
    assert document["settings"]["bootstrap"] == uncertainty["n_boot"] == 20


def test_em_text_names_both_runs(capsys):
    assert main(["em", "seed-7907", "--seed", "5", "--bootstrap", "30"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "EM initial" in out and "EM restarts" in out
    assert "accuracy 99.4%" in out
    assert "-2089.5719" in out
    assert "standard errors of the reference run, bootstrap (30 replicates):" in out
    assert captured.err.splitlines() == [
        "EM uncertainty: information standard errors and 30 nonparametric bootstrap replicates ..."
    ]


@pytest.mark.parametrize("command", ["em", "sample", "compare"])
def test_a_negative_bootstrap_is_one_line(command, capsys):
    assert main([command, "--bootstrap", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gmm-compare: error: argument --bootstrap: must be 0 or more, got -1")


def test_em_on_a_user_csv_with_k(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    X, _ = load_dataset("seed42").X, None
    np.savetxt(path, X, delimiter=",")
    assert main(["em", "--data", str(path), "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "mine: n = 300, D = 2" in out
    assert "EM initial" not in out and "accuracy" not in out


# ---------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit status 2, an existing report untouched


@pytest.fixture
def existing_report(tmp_path):
    """A folder standing for a good earlier report."""
    folder = tmp_path / "reports" / "old"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<p>good report</p>")
    (folder / "comparison.json").write_text("{}")
    write_manifest(folder)
    return folder


def _snapshot(folder):
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir())


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_INPUTS = {
    "missing file": (lambda t: ["--data", t / "nope.csv"], "does not exist"),
    "non-numeric": (
        lambda t: ["--data", _write(t, "words.csv", "a,b\n1,2\nthree,4\n")],
        "line 3, column 1: 'three' is not a number",
    ),
    "ragged": (
        lambda t: ["--data", _write(t, "ragged.csv", "1,2\n3,4\n5\n")],
        "line 3 has 1 columns, expected 2",
    ),
    "nan": (lambda t: ["--data", _write(t, "nan.csv", "1,2\nnan,4\n5,6\n")], "NaN or infinite"),
    "inf": (lambda t: ["--data", _write(t, "inf.csv", "1,2\n3,inf\n5,6\n")], "NaN or infinite"),
    "fewer rows than K": (
        lambda t: ["--data", _write(t, "two.csv", "1,2\n3,4\n"), "-k", "3"],
        "2 points, fewer than the 3 components",
    ),
    "K < 1": (lambda t: ["--components", "0"], "--components/-k: must be at least 1, got 0"),
    "K not a number": (lambda t: ["--components", "two"], "must be a whole number, got 'two'"),
    "unknown dataset": (lambda t: ["iris"], "unknown dataset 'iris'"),
    "name and file": (lambda t: ["seed42", "--data", t / "x.csv"], "not both"),
    "bad draws": (lambda t: ["--draws", "-5"], "--draws: must be at least 1"),
    "unknown option": (lambda t: ["--colour", "red"], "unrecognized arguments: --colour"),
    "negative seed": (lambda t: ["--seed", "-1"], "--seed: must be between 0 and 4294967295"),
    "seed beyond 64 bits": (
        lambda t: ["--seed", str(2**64)],
        "--seed: must be between 0 and 4294967295, got 18446744073709551616",
    ),
    "labels beyond int64": (
        lambda t: ["--data", _write(t, "big.csv", "label,x\n1e19,0.5\n2e19,1.5\n1e19,2.5\n")],
        "label values must be whole numbers smaller than 2**53",
    ),
    "two label columns": (
        lambda t: ["--data", _write(t, "two.csv", "label,x,Label\n0,0.5,1\n1,1.5,0\n")],
        "has 2 label columns ('label' and 'Label')",
    ),
    "values near 1e300": (
        lambda t: ["--data", _scaled(t, 1e300)],
        "values as large as 8.85e+300, too large for float64 arithmetic",
    ),
    "values near 1e-300": (
        lambda t: ["--data", _scaled(t, 1e-300)],
        "column 1 varies too little (standard deviation 2.62e-300, variance below 0.0001)",
    ),
}


def _scaled(tmp_path, factor):
    """seed42's points times factor, as a CSV."""
    path = tmp_path / "scaled.csv"
    np.savetxt(path, load_dataset("seed42").X * factor, delimiter=",")
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_the_report_survives(
    case, tmp_path, existing_report, run_gmm_compare
):
    make_args, message = BAD_INPUTS[case]
    before = _snapshot(existing_report)
    result = run_gmm_compare(*make_args(tmp_path), "--out", existing_report)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gmm-compare: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert _snapshot(existing_report) == before
    assert [p.name for p in existing_report.parent.iterdir()] == ["old"]  # no partial folder


@pytest.mark.parametrize("subcommand", ["sample", "compare"])
def test_a_folder_that_is_not_a_report_is_refused_before_any_work(
    tmp_path, subcommand, monkeypatch, capsys
):
    # Before: `--out mine` emptied the folder (`--out ~` would have emptied a home folder).
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "t.txt").write_text("keep")
    monkeypatch.setattr("analysis.pipeline.run_em", pytest.fail)
    assert main([subcommand, "seed42", "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gmm-compare: error: output folder '{mine}' is not a gmm-compare report")
    assert "(no gmm-compare-manifest.json; it holds t.txt)" in err and err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]
    assert (mine / "t.txt").read_text() == "keep"


@pytest.mark.parametrize("out", [".", "..", "/"])
def test_the_working_folder_or_the_root_is_refused_before_any_work(
    tmp_path, out, monkeypatch, capsys
):
    # Before: `--out .` sampled for minutes, failed with a raw errno message and left an
    # `..old-*` folder behind.
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr("analysis.pipeline.run_em", pytest.fail)
    assert main(["sample", "seed42", "--out", out]) == 2
    err = capsys.readouterr().err
    assert f"output folder '{out}' is the current folder, one containing it or the root" in err
    assert list(work.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["work"]


def test_data_writes_only_to_a_regular_file_or_a_new_path(tmp_path, capsys):
    # Before: os.replace put a regular file in the place of a FIFO (or of /dev/null, as root).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["data", "seed42", "--out", str(fifo)]) == 2
    assert "is not a regular file (a device, FIFO or socket)" in capsys.readouterr().err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert main(["data", "seed42", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    # A symlink to a file is followed: the file gets the data, the link stays a link.
    # (Changed for issue 23, case 4: the file held "old" and was replaced; now a link is
    # followed only to a file of the form `data` writes.)
    real = tmp_path / "real.csv"
    real.write_text("x1,x2\n0.5,1.5\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert main(["data", "seed42", "--out", str(link), "--quiet"]) == 0
    assert link.is_symlink()
    assert np.array_equal(read_csv(real).X, load_dataset("seed42").X)
    # - is standard output.
    assert main(["data", "seed42", "--out", "-"]) == 0
    assert capsys.readouterr().out.startswith("label,x1,x2\n0,")
    assert not (tmp_path / "-").exists()


def test_warnings_are_one_line_each_on_stderr(tmp_path, run_gmm_compare):
    # Before: EM stopped at max_iter silently. Unstructured data make k-means++ EM slow.
    path = tmp_path / "blob.csv"
    np.savetxt(path, np.random.default_rng(0).normal(size=(300, 2)), delimiter=",")
    result = run_gmm_compare("em", "--data", path, "-k", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        line for line in result.stderr.splitlines() if line.startswith("gmm-compare: warning: ")
    ]
    assert "gmm-compare: warning: EM stopped at max_iter=100 before converging" in result.stderr
    assert result.stderr.rstrip().endswith("(ConvergenceWarning)")


def test_unwritable_output_folder_is_one_line_exit_2(tmp_path, run_gmm_compare):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    result = run_gmm_compare("--out", blocker / "report")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"gmm-compare: error: cannot write '{blocker / 'report'}': '{blocker}' is a file, "
        "not a folder"
    ]
    result = run_gmm_compare("--out", blocker)
    assert result.returncode == 2
    assert "exists and is not a folder" in result.stderr
    assert blocker.read_text() == "in the way"


@pytest.mark.parametrize("subcommand", ["sample", "compare"])
def test_read_only_folder_is_refused_before_any_work(tmp_path, subcommand, monkeypatch, capsys):
    # Root may write anywhere, so the refusal is simulated at the one place it is decided.
    monkeypatch.setattr("analysis.files.os.access", lambda *_: False)
    monkeypatch.setattr("analysis.pipeline.run_nuts", pytest.fail)
    assert main([subcommand, "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"gmm-compare: error: cannot write '{tmp_path / 'report'}': folder "
        f"'{tmp_path}' is not writable\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_report_without_saved_results_is_one_line(existing_report, run_gmm_compare):
    before = _snapshot(existing_report)
    result = run_gmm_compare("report", "--out", existing_report)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "no saved results to rebuild from (missing em.json, data.csv)" in result.stderr
    assert _snapshot(existing_report) == before


def test_a_failure_during_the_run_leaves_the_old_report(existing_report, monkeypatch, capsys):
    def broken(*_args, **_kwargs):
        raise ValueError("the sampler failed half way")

    monkeypatch.setattr("analysis.pipeline.run_nuts", broken)
    before = _snapshot(existing_report)
    assert main(["--out", str(existing_report), "--bootstrap", "0"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == "gmm-compare: error: the sampler failed half way"
    assert "warning" not in " ".join(lines) and "Traceback" not in " ".join(lines)
    assert _snapshot(existing_report) == before
    assert [p.name for p in existing_report.parent.iterdir()] == ["old"]


def test_an_interrupt_leaves_the_old_report(existing_report, monkeypatch, capsys):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("analysis.pipeline.run_nuts", interrupted)
    before = _snapshot(existing_report)
    assert main(["--out", str(existing_report)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert _snapshot(existing_report) == before
    assert [p.name for p in existing_report.parent.iterdir()] == ["old"]


@pytest.mark.parametrize(
    "module", ["analysis", "analysis.cli", "analysis.files", "analysis.render_check"]
)
def test_each_analysis_command_runs_on_its_own(module):
    """`python -m` of the package and of each module that is a command prints its usage."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


ANALYSIS_MODULES = sorted(
    path.stem
    for path in (Path(__file__).parents[1] / "analysis").glob("*.py")
    if path.stem not in ("__init__", "__main__", "cli")
)


def test_no_analysis_module_imports_the_command_line():
    """Importing (and using) any analysis module besides cli leaves analysis.cli unloaded."""
    assert {"datasets", "em_fits", "pipeline", "report", "figures"} <= set(ANALYSIS_MODULES)
    names = ", ".join(f"analysis.{m}" for m in ANALYSIS_MODULES)
    code = f"import sys, {names}; print('analysis.cli' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_python_m_analysis_writes_csv():
    """`python -m analysis data NAME` is the command: the dataset as CSV on stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "data", "seed1000"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "label,x1,x2" and len(lines) == 1001


def test_the_same_command_twice_gives_the_same_numbers(capsys):
    assert main(["em", "seed42", "--seed", "9", "--json"]) == 0
    first = capsys.readouterr().out
    assert main(["em", "seed42", "--seed", "9", "--json"]) == 0
    assert capsys.readouterr().out == first


def test_select_writes_its_report_and_json_with_every_em_and_vb_criterion(tmp_path, capsys):
    out = tmp_path / "choose"
    argv = ["select", "seed42", "--methods", "em,vb", "-k", "2:4", "--out", str(out), "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    keys = ["k", "log_likelihood", "bic", "icl", "elbo", "vb_effective_components", "elpd_loo"]
    keys += ["elpd_loo_se", "pareto_k_bad", "max_rhat", "divergences"]
    assert [list(row)[: len(keys)] for row in document["rows"]] == [keys] * 3
    assert [row["k"] for row in document["rows"]] == [2, 3, 4]
    assert all(row["elpd_loo"] is None and row["bic"] > 0 for row in document["rows"])
    assert document["choice"] == {"bic": 3, "icl": 3, "elbo": 3, "loo": None}
    names = {p.name for p in out.iterdir()}
    assert names == {
        "selection.json",
        "criteria.png",
        "summary.md",
        "index.html",
        "gmm-compare-manifest.json",
    }
    assert json.loads((out / "selection.json").read_text()) == document
    assert "| 3 | -1156.6 | 2410.2 |" in (out / "summary.md").read_text()
    # The folder is now one of ours: a second run replaces it; another folder is refused.
    assert main([*argv[:-1], "--quiet"]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "t.txt").write_text("keep")
    assert main(["select", "seed42", "--methods", "em", "--out", str(mine)]) == 2
    assert (mine / "t.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--components", "5:2", "must be LOW:HIGH with LOW <= HIGH"),
        ("--components", "0:3", "must be at least 1"),
        ("--methods", "em,gibbs", "must be a comma-separated subset of em,vb,nuts"),
        ("--max-components", "400", "fewer than the 400 components"),
    ],
)
def test_select_refuses_bad_k_ranges_and_methods_in_one_line(option, value, message, capsys):
    assert main(["select", "seed42", "--methods", "em", option, value, "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_methods_em_only_writes_an_em_report_without_sampling(tmp_path, capsys):
    out = tmp_path / "em_only"
    argv = ["seed42", "--methods", "em", "--bootstrap", "0", "--out", str(out), "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["methods"] == ["em"] and printed["sampler"] is None and printed["vb"] is None
    assert {p.name for p in out.iterdir()} == {
        "gmm-compare-manifest.json",
        "em.json",
        "data.csv",
        "comparison.json",
        "summary.md",
        "index.html",
        "figures",
    }
    rows = printed["parameters"]
    assert all(row["posterior_mean"] is None and row["vb_mean"] is None for row in rows)
    X = load_dataset("seed42").X
    fit = GaussianMixtureEM(3, n_init=10, random_state=0).fit(X)
    weights = [row["em"]["restarts"] for row in rows if row["group"] == "weights"]
    assert sorted(weights) == pytest.approx(sorted(fit.weights_), abs=1e-10)


def test_methods_em_vb_saves_vb_and_the_report_rebuilds_from_it(tmp_path, capsys, run_gmm_compare):
    out = tmp_path / "em_vb"
    assert main(["seed42", "--methods", "em,vb", "--bootstrap", "0", "--out", str(out), "-q"]) == 0
    assert (out / "vb.json").is_file() and not (out / "posterior.nc").exists()
    first = (out / "comparison.json").read_text()
    saved = json.loads(first)
    assert saved["methods"] == ["em", "vb"] and saved["vb"]["converged"]
    assert all(row["vb_mean"] is not None for row in saved["parameters"])
    assert all(row["vb_sd_ratio"] is None for row in saved["parameters"])
    (out / "comparison.json").unlink()
    result = run_gmm_compare("report", "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert (out / "comparison.json").read_text() == first


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("em,gibbs", "--methods: must be a comma-separated subset of em,vb,nuts, got 'em,gibbs'"),
        ("vb,nuts", "methods must be a subset of em,vb,nuts that includes em"),
    ],
)
@pytest.mark.parametrize("command", ["compare", "sample"])
def test_bad_methods_are_one_line_exit_2(tmp_path, capsys, command, value, message):
    assert main([command, "--methods", value, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gmm-compare: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_sample_with_em_only_saves_em_and_says_there_is_no_sampler(tmp_path, capsys):
    out = tmp_path / "saved"
    argv = ["sample", "seed42", "--methods", "em", "--bootstrap", "0", "--out", str(out), "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"path": str(out), "sampler": None}
    assert {p.name for p in out.iterdir()} == {"gmm-compare-manifest.json", "em.json", "data.csv"}
