"""EM's uncertainty in the pipeline, em.json, comparison.json, the report and the forest plot.

The numbers are checked against em_reference's own methods on the seed program's EM fit of
seed-7907 (`seed_em`), which is the reference run of `fit_em` on seed-7907, in the same order.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from matplotlib.collections import LineCollection

from analysis import figures
from analysis.comparison import compare
from analysis.datasets import load_dataset
from analysis.em_fits import fit_em
from analysis.em_uncertainty import EMUncertainty
from analysis.files import dumps
from analysis.pipeline import Results, results_from, run_uncertainty
from analysis.report import write_report
from analysis.saved import load_results, save_results
from analysis.settings import RunSettings
from analysis.tables import DASH, build_tables, se_ratio_sentence

N_BOOT = 60
SETTINGS = RunSettings(
    n_components=3,
    random_seed=7907,
    draws=250,
    tune=0,
    chains=4,
    bootstrap=N_BOOT,
    methods=("em", "nuts"),
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


def _forest_axes(comparison, tmp_path, monkeypatch):
    """Draw the forest plot and return its axes (captured before the figure is closed)."""
    drawn = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or save(fig, path))
    figures.plot_forest(comparison, tmp_path)
    (fig,) = drawn
    return fig.axes


def test_forest_plot_draws_em_wald_under_each_posterior_interval(
    seed_comparison, tmp_path, monkeypatch
):
    """Per panel: the posterior intervals and one red line per parameter at EM's Wald bounds."""
    axes = _forest_axes(seed_comparison, tmp_path, monkeypatch)
    assert len(axes) == len(GROUPS)
    for ax, group in zip(axes, GROUPS, strict=True):
        rows = [r for r in seed_comparison["parameters"] if r["group"] == group]
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(lines) == 2
        wald = np.array([segment[:, 0] for segment in lines[1].get_segments()])
        expected = [[r["em_wald_low"], r["em_wald_high"]] for r in rows]
        np.testing.assert_allclose(wald, expected)
        assert len(ax.lines) >= 2  # the posterior means and EM's estimates are still marked


def test_without_bootstrap_the_fields_are_null_and_the_report_renders(seed_results, tmp_path):
    """--bootstrap 0: bootstrap columns None (en dashes), the information SEs still there."""
    settings = dataclasses.replace(SETTINGS, bootstrap=0)
    u = run_uncertainty(seed_results.dataset, seed_results.fits, settings)
    results = dataclasses.replace(seed_results, uncertainty=u, settings=settings)
    comparison = write_report(results, tmp_path)
    for row in comparison["parameters"]:
        assert row["em_bootstrap_se"] is None
        assert row["em_bootstrap_low"] is None and row["em_bootstrap_high"] is None
        assert row["em_se"] > 0 and row["se_ratio"] > 0
    summary = (tmp_path / "summary.md").read_text()
    assert "The bootstrap was turned off (--bootstrap 0)." in summary
    weights_row = next(line for line in summary.splitlines() if line.startswith("| weights[0]"))
    assert weights_row.split(" | ")[-4] == DASH  # the bootstrap column, before 3 others
    assert (tmp_path / "figures" / "forest.png").is_file()


def test_report_shows_em_uncertainty_beside_the_posterior(seed_comparison):
    """The columns, their cells for one parameter, and the ratio table with its sentence."""
    tables = {table.title: table for table in build_tables(seed_comparison)}
    point = tables["Point estimates"]
    columns = ["EM SE", "EM 94 % Wald", "EM 94 % bootstrap"]
    start = point.headers.index("EM SE")
    assert point.headers[start : start + 3] == columns
    assert point.headers[start - 1] == "94 % interval"
    row = next(r for r in seed_comparison["parameters"] if r["parameter"] == "means[1, 0]")
    cells = next(c for c in point.rows if c[0] == "means[1, 0]")[start : start + 3]
    assert cells == [
        f"{row['em_se']:.3f}",
        f"[{row['em_wald_low']:.3f}, {row['em_wald_high']:.3f}]",
        f"[{row['em_bootstrap_low']:.3f}, {row['em_bootstrap_high']:.3f}]",
    ]
    ratios = tables["EM standard error / posterior SD"]
    assert [r[0] for r in ratios.rows] == list(GROUPS)
    means = [r["se_ratio"] for r in seed_comparison["parameters"] if r["group"] == "means"]
    assert ratios.rows[1][2] == f"{min(means):.2f}" and ratios.rows[1][4] == f"{max(means):.2f}"
    ratio = {r["parameter"]: r["se_ratio"] for r in seed_comparison["parameters"]}
    furthest = max(ratio, key=lambda name: abs(np.log(ratio[name])))
    assert len(ratios.notes) == 1
    assert f"the furthest, {furthest}, is {ratio[furthest]:.2f} times" in ratios.notes[0]


def test_the_ratio_sentence_reads_agreement_departure_and_absence():
    """Within a factor 1.25 everywhere: agreement; otherwise the count and the furthest; none."""
    rows = [{"parameter": "a", "se_ratio": 1.1}, {"parameter": "b", "se_ratio": 0.85}]
    assert "within a factor 1.25 of the posterior SDs for all 2 parameters" in (
        se_ratio_sentence(rows)
    )
    assert "(furthest: b, 0.85)" in se_ratio_sentence(rows)
    rows.append({"parameter": "c", "se_ratio": 0.5})
    sentence = se_ratio_sentence(rows)
    assert sentence.startswith("1 of 3 EM standard errors differ")
    assert "the furthest, c, is 0.50 times it, so EM is surer of it" in sentence
    assert "unknown for this run" in se_ratio_sentence([])


def test_unknown_standard_errors_are_dashes_and_a_warning(seed_results, tmp_path, monkeypatch):
    """A singular information: the message among the warnings, dashes, no Wald lines drawn."""
    message = "EM standard errors: the information is singular: not identified: weights"
    results = dataclasses.replace(seed_results, uncertainty=EMUncertainty.unknown(message))
    comparison = json.loads(dumps(compare(results)))
    assert message in comparison["warnings"]
    for row in comparison["parameters"]:
        assert [row[key] for key in (*COLUMNS, "se_ratio")] == [None] * 7
    point = build_tables(comparison)[0]
    start = point.headers.index("EM SE")
    assert {cell for row in point.rows for cell in row[start : start + 3]} == {DASH}
    for ax in _forest_axes(comparison, tmp_path, monkeypatch):
        assert sum(isinstance(c, LineCollection) for c in ax.collections) == 1


def test_an_em_json_without_uncertainty_still_loads(seed_results, tmp_path):
    """A folder saved before EM's uncertainty existed: loaded, and the warning says so."""
    save_results(seed_results, tmp_path)
    path = tmp_path / "em.json"
    document = json.loads(path.read_text())
    del document["uncertainty"], document["settings"]["bootstrap"]
    path.write_text(json.dumps(document))
    loaded = load_results(tmp_path)
    assert loaded.settings.bootstrap == 0
    assert loaded.uncertainty.standard_errors is None
    assert "run `gmm-compare sample` again" in loaded.uncertainty.problems[0]
