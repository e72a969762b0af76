"""Every figure is drawn at large K and large D, showing its most telling part, said in its caption.

Issue 23, case 12: with K (D + 1) > 40 weights and means, the rank plot asked ArviZ for more than
its 40 panels and the whole run failed after all the sampling. The posterior here is conftest's
fake DataTree (no sampling), the EM run starts from the true values (no restarts).
"""

from __future__ import annotations

import re
import struct

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from analysis import figures
from analysis.comparison import compare
from analysis.datasets import Dataset
from analysis.em_fits import EMFit, EMFits
from analysis.em_uncertainty import EMUncertainty
from analysis.figures import FIGURES, PAIRS
from analysis.pipeline import Results, results_from, run_vb
from analysis.report import write_report
from analysis.settings import RunSettings
from em_reference import GaussianMixtureEM, MixtureParameters
from tests.conftest import fake_posterior, random_mixture, seed7907_results
from tests.test_own_data import keep_figures

PNG_LIMIT = 2**16
"""Agg refuses an image of this many pixels or more in either direction."""


def large_results(n_components: int, n_features: int, vb: bool) -> Results:
    """EM from the true values, fake posteriors and VB (when `vb`) on a random mixture's points."""
    rng = np.random.default_rng(1)
    weights, means, covariances = random_mixture(rng, n_components, n_features)
    n = 600 if n_features > 2 else 1000
    labels = rng.choice(n_components, size=n, p=weights)
    noise = rng.standard_normal((n, n_features))
    X = means[labels] + np.einsum("nij,nj->ni", np.linalg.cholesky(covariances)[labels], noise)
    dataset = Dataset("large", X, labels, "points from a random mixture")
    truth = MixtureParameters(weights, means, covariances)
    fit = GaussianMixtureEM(n_components, init=truth, max_iter=1000)
    run = EMFit.from_estimator("restarts", "the true values", fit.fit(X), X)
    fits = EMFits({"restarts": run}, "restarts")
    settings = RunSettings(n_components, random_seed=0, draws=50, tune=0, chains=2, bootstrap=0)
    uncertainty = EMUncertainty.unknown("not computed in this test")
    posterior = fake_posterior(X, run.parameters, chains=2, draws=50)
    if not vb:
        return results_from(dataset, fits, uncertainty, posterior, settings)
    twin = fake_posterior(X, run.parameters, chains=2, draws=50, random_seed=2)
    return results_from(
        dataset, fits, uncertainty, posterior, settings, run_vb(dataset, fits), twin
    )


def png_size(path) -> tuple[int, int]:
    """Width and height of a PNG, from its header."""
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.fixture(scope="module", params=[(14, 2, True), (3, 20, False)], ids=["K14-D2", "K3-D20"])
def large_report(request, tmp_path_factory):
    """A report written for K = 14, D = 2 (42 weights and means; VB too, 84 ratios) or K = 3,
    D = 20 (63 weights and means, 693 parameters; without VB, which would take a minute)."""
    folder = tmp_path_factory.mktemp("large")
    results = large_results(*request.param)
    comparison = write_report(results, folder)  # before: ValueError, 42 or 63 subplots > 40
    return results, comparison, folder


def _caption(folder, name: str) -> str:
    """The caption under a figure in summary.md."""
    summary = (folder / "summary.md").read_text()
    return re.search(rf"\]\(figures/{name}\.png\)\n\n(.*)\n", summary).group(1)


def test_every_figure_is_drawn_and_fits_a_png(large_report):
    results, _, folder = large_report
    expected = set(FIGURES) | ({PAIRS} if results.dataset.n_features > 2 else set())
    if results.vb is None:
        expected -= {"elbo", "vb_sd_ratio"}
    assert {p.stem for p in (folder / "figures").iterdir()} == expected
    for path in (folder / "figures").iterdir():
        assert max(png_size(path)) < PNG_LIMIT, path.name


def test_the_rank_plot_draws_the_24_largest_r_hats_and_names_them(large_report):
    _, comparison, folder = large_report
    scalars = [r for r in comparison["parameters"] if r["group"] in ("weights", "means")]
    assert len(scalars) > 40
    worst = sorted(scalars, key=lambda r: r["r_hat"], reverse=True)[:24]
    caption = _caption(folder, "rank")
    assert f"Only 24 of the {len(scalars)} weights and means are drawn" in caption
    named = caption.split("largest R-hat, ")[1].rstrip(".")
    in_table_order = [r["parameter"] for r in scalars if r in worst]
    assert named == ", ".join(in_table_order)


def test_long_tables_of_rows_keep_the_most_telling_80(large_report):
    _, comparison, folder = large_report
    rows = comparison["parameters"]
    assert len(rows) in (84, 693)
    assert f"Only 80 of the {len(rows)} parameters are drawn" in _caption(folder, "forest")
    assert png_size(folder / "figures" / "forest.png")[1] < 3500  # 80 rows: before, 24525 px


def test_twenty_coordinates_show_the_eight_the_pairs_plot_shows(large_report):
    results, _, folder = large_report
    if results.dataset.n_features == 2:
        assert "Only" not in _caption(folder, "ppc")
        return
    pairs = _caption(folder, PAIRS)
    assert "Only 8 of the 20 coordinates are drawn: x" in pairs
    assert pairs.split("Only")[1] == _caption(folder, "ppc").split("Only")[1]


def test_ratios_beyond_the_limit_keep_those_furthest_from_1(
    seed_fake_posterior, seed_fake_gauss_wishart, tmp_path, monkeypatch, request
):
    """With room for 10 of seed-7907's 18 ratios, the 10 furthest from 1 are drawn and said."""
    monkeypatch.setattr(figures, "MAX_ROWS", 10)
    plotted: dict[str, Figure] = {}
    keep_figures(monkeypatch, plotted)
    request.addfinalizer(lambda: [plt.close(fig) for fig in plotted.values()])
    settings = RunSettings(3, random_seed=0, draws=250, tune=0, chains=4, bootstrap=0)
    results = seed7907_results(settings, seed_fake_posterior, seed_fake_gauss_wishart)
    comparison = compare(results)
    ratios = [r for r in comparison["parameters"] if r["vb_sd_ratio"] is not None]
    assert len(ratios) == 18
    furthest = sorted(ratios, key=lambda r: abs(np.log(r["vb_sd_ratio"])), reverse=True)[:10]
    drawn = figures.draw_all(results, comparison, tmp_path)
    assert (
        "Only 10 of the 18 ratios are drawn: those furthest from 1" in drawn["vb_sd_ratio"].caption
    )
    assert "Only 10 of the 18 parameters are drawn" in drawn["forest"].caption
    ticks = [t.get_text() for t in plotted["vb_sd_ratio"].axes[0].get_yticklabels()]
    assert ticks == [r["parameter"] for r in ratios if r in furthest]
