"""Collapsed fits are named: which method, which component, which columns (issue 23, case 16).

Before, identical or collinear columns gave a log-likelihood of +1089 with at most an R-hat
warning, three distinct points repeated 100 times "converged" with every component on one
point, and `compare -k 6` printed "VB SD / NUTS SD: 0.00 to 4602636.82" from emptied components.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

NAMES = ("a", "b", "c")


def _columns(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Two independent columns of n points: a bimodal one and a normal one."""
    rng = np.random.default_rng(0)
    half = n // 2
    x = np.concatenate([rng.normal(0.0, 1.0, half), rng.normal(5.0, 1.0, n - half)])
    return x, rng.normal(0.0, 1.0, n)


def _csv(tmp_path, name: str, header: str, X: np.ndarray):
    """X (n, D) written as a CSV with a header; its path."""
    path = tmp_path / f"{name}.csv"
    np.savetxt(path, X, delimiter=",", header=header, comments="")
    return path


# ---------------------------------------------------------------------------------------------
# The definitions


def test_collinear_columns_are_found_and_named():
    from analysis.collapse import collinear_columns  # new: here so the other tests run on old code

    x, y = _columns()
    assert collinear_columns(np.c_[x, y], NAMES[:2]) == []
    assert collinear_columns(np.c_[x, x], NAMES[:2]) == [["a", "b"]]
    assert collinear_columns(np.c_[x, y, x + 2 * y], NAMES) == [["a", "b", "c"]]
    assert collinear_columns(1e6 * np.c_[x, y, 3 * y], NAMES) == [["b", "c"]]  # any unit


def test_a_component_is_collapsed_when_emptied_or_without_spread():
    from analysis.collapse import collapsed_components

    x, y = _columns()
    X = np.c_[x, y]
    halves = np.zeros((300, 3))
    halves[:150, 0] = halves[150:, 1] = 1.0  # component 2 holds nothing
    halves[:, 2] = 1e-3  # 0.3 expected points, below D + 1 = 3
    halves /= halves.sum(axis=1, keepdims=True)
    found = collapsed_components(X, halves, NAMES[:2])
    assert [(c["component"], c["reason"], c["columns"]) for c in found] == [(2, "emptied", [])]
    assert found[0]["count"] == pytest.approx(0.3, rel=0.01)
    # Component 1's points all lie on the line b = 2 (no spread along b).
    X[150:, 1] = 2.0
    found = collapsed_components(X, halves, NAMES[:2])
    assert [(c["component"], c["reason"], c["columns"]) for c in found] == [
        (1, "flat", ["b"]),
        (2, "emptied", []),
    ]


# ---------------------------------------------------------------------------------------------
# The command: banner, comparison.json and the printed headline


def test_identical_columns_are_named_in_the_banner_json_and_headline(tmp_path, run_gmm_compare):
    x, _ = _columns()
    path = _csv(tmp_path, "same", "a,b", np.c_[x, x])
    out = tmp_path / "same_report"
    result = run_gmm_compare(
        "compare", "--data", path, "-k", "2", "--methods", "em", "--bootstrap", "0", "--out", out
    )
    assert result.returncode == 0, result.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["collinear_columns"] == [["a", "b"]]  # before: no such key
    collapsed = [(c["method"], c["component"], c["columns"]) for c in comparison["collapsed"]]
    assert collapsed == [("EM (restarts)", 0, ["a", "b"]), ("EM (restarts)", 1, ["a", "b"])]
    assert "WARNING: the columns a, b are collinear" in result.stdout
    assert re.search(r"WARNING: EM \(restarts\): component\(s\) 0 \(along a, b\); 1", result.stdout)
    page = (out / "index.html").read_text()
    banner = page.split('<div class="warning">')[1].split("</div>")[0]
    assert "the columns a, b are collinear" in banner and "component(s) 0 (along a, b)" in banner


def test_collinear_columns_name_all_three(tmp_path, run_gmm_compare):
    x, y = _columns()
    path = _csv(tmp_path, "coll", "a,b,c", np.c_[x, y, x + 2 * y])
    out = tmp_path / "coll_report"
    result = run_gmm_compare(
        "compare",
        "--data",
        path,
        "-k",
        "2",
        "--methods",
        "em",
        "--bootstrap",
        "0",
        "--out",
        out,
        "-q",
    )
    assert result.returncode == 0, result.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["collinear_columns"] == [["a", "b", "c"]]
    assert {c["component"] for c in comparison["collapsed"]} == {0, 1}


def test_three_points_repeated_collapse_every_component_of_em_and_vb(tmp_path, run_gmm_compare):
    points = np.repeat([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], 100, axis=0)
    path = _csv(tmp_path, "three", "x,y", points)
    out = tmp_path / "three_report"
    args = ("--data", path, "-k", "3", "--methods", "em,vb", "--bootstrap", "0", "--out", out)
    result = run_gmm_compare("compare", *args)
    assert result.returncode == 0, result.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["collinear_columns"] == []  # the columns themselves are fine
    found = {(c["method"], c["component"], c["reason"]) for c in comparison["collapsed"]}
    assert found == {(m, k, "flat") for m in ("EM (restarts)", "VB") for k in range(3)}
    assert all(c["columns"] == ["x", "y"] for c in comparison["collapsed"])
    assert "WARNING: EM (restarts): component(s) 0 (along x, y); 1 (along x, y); 2" in result.stdout
    assert "WARNING: VB: component(s) 0 (along x, y)" in result.stdout
    rows = comparison["parameters"]
    assert all(r["collapsed_in"] == ["EM (restarts)", "VB"] for r in rows)


def test_vb_emptied_components_at_k_6_are_named_and_em_s_small_one_is_not(
    tmp_path, run_gmm_compare
):
    out = tmp_path / "k6"
    args = ("-k", "6", "--methods", "em,vb", "--bootstrap", "0", "--out", out, "-q")
    result = run_gmm_compare("compare", *args)
    assert result.returncode == 0, result.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    collapsed = comparison["collapsed"]
    assert {(c["method"], c["reason"]) for c in collapsed} == {("VB", "emptied")}
    emptied = sorted(c["component"] for c in collapsed)
    assert len(emptied) == 3 and all(c["count"] < 3 for c in collapsed)
    em_counts = comparison["accuracy"]["methods"]["restarts"]["counts"]
    assert min(em_counts) >= 3  # EM's smallest component holds points: not collapsed
    for row in comparison["parameters"]:
        assert row["collapsed_in"] == (["VB"] if row["index"][0] in emptied else [])
    warning = [w for w in comparison["warnings"] if w.startswith("VB: component(s)")]
    assert len(warning) == 1 and "emptied: fewer than D + 1 = 3 points expected" in warning[0]


@pytest.mark.sampling
def test_the_headline_ratio_range_leaves_out_emptied_components(tmp_path, run_gmm_compare):
    out = tmp_path / "k6"
    tiny = ("--draws", "50", "--tune", "50", "--chains", "2", "--bootstrap", "0")
    result = run_gmm_compare("compare", "-k", "6", *tiny, "--out", out)
    assert result.returncode == 0, result.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    rows = [r for r in comparison["parameters"] if r["vb_sd_ratio"] is not None]
    trusted = [r["vb_sd_ratio"] for r in rows if not r["collapsed_in"]]
    left = [r for r in rows if r["collapsed_in"]]
    assert left and trusted  # VB empties components at K = 6
    line = next(s for s in result.stdout.splitlines() if s.startswith("VB SD / NUTS SD"))
    shown = f"{min(trusted):.2f} to {max(trusted):.2f} over {len(trusted)} parameters"
    assert shown in line and f"; {len(left)} ratio(s) of collapsed component(s)" in line
    assert "left out" in (out / "summary.md").read_text()
