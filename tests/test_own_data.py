"""A user's CSV with a header: its names on every table, axis and saved file; the pairs plot.

The report tests run on a fake posterior around EM's fit to iris (conftest's `fake_posterior`);
the end-to-end test samples, and checks posterior.nc and the rebuilt report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from analysis import figures, pairs
from analysis.cli import main
from analysis.datasets import Dataset, load_dataset, read_csv
from analysis.em_fits import fit_em
from analysis.pairs import pairs_caption, separation, shown_coordinates
from analysis.pipeline import results_from, run_uncertainty
from analysis.report import write_report
from analysis.settings import RunSettings
from em_reference import MixtureParameters, sample_mixture
from tests.conftest import fake_posterior

IRIS = Path(__file__).parent / "data" / "iris.csv"
NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def results_for(dataset: Dataset, n_components: int):
    """EM on the dataset and a fake posterior around it, named as the dataset is."""
    settings = RunSettings(n_components, 0, draws=100, tune=0, chains=2, bootstrap=0)
    fits = fit_em(dataset, n_components, random_seed=0)
    uncertainty = run_uncertainty(dataset, fits, settings)
    idata = fake_posterior(
        dataset.X, fits.reference_run.parameters, chains=2, draws=100, names=dataset.names
    )
    return results_from(dataset, fits, uncertainty, idata, settings)


def axis_labels(fig: Figure) -> list[tuple[str, str]]:
    """(x label, y label) of every visible axes of a figure, in the figure's order."""
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.axison]


def keep_figures(monkeypatch: pytest.MonkeyPatch, kept: dict[str, Figure]) -> None:
    """Make the figures drawn in-process and kept open in `kept`, by file stem."""

    def keep(fig: Figure, path: Path) -> Path:
        kept[path.stem] = fig
        fig.savefig(path, dpi=20)
        return path

    monkeypatch.setattr(figures, "_can_fork", lambda: False)
    monkeypatch.setattr(figures, "_save", keep)
    monkeypatch.setattr(pairs, "_save", keep)


@pytest.fixture
def drawn(monkeypatch) -> dict[str, Figure]:
    """The figures drawn during a test, by file stem, kept open for inspection."""
    kept: dict[str, Figure] = {}
    keep_figures(monkeypatch, kept)
    yield kept
    for fig in kept.values():
        plt.close(fig)


@pytest.fixture(scope="module")
def iris_results():
    """iris (4 named coordinates, 3 species), EM with K = 3 and a fake posterior."""
    return results_for(read_csv(IRIS), 3)


@pytest.fixture(scope="module")
def iris_report(iris_results, tmp_path_factory):
    """The report on iris_results: (folder, comparison, the figures kept open by stem)."""
    folder = tmp_path_factory.mktemp("iris_report")
    kept: dict[str, Figure] = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        keep_figures(monkeypatch, kept)
        comparison = write_report(iris_results, folder)
    yield folder, comparison, kept
    for fig in kept.values():
        plt.close(fig)


def test_iris_csv_has_its_names(iris_results):
    assert iris_results.dataset.names == NAMES
    assert iris_results.dataset.X.shape == (150, 4)
    assert np.bincount(iris_results.dataset.labels).tolist() == [50, 50, 50]


def test_names_label_every_table_row_and_the_comparison(iris_report):
    folder, comparison, _ = iris_report
    saved = json.loads((folder / "comparison.json").read_text())
    assert saved["dataset"]["names"] == list(NAMES)
    labels = [row["parameter"] for row in saved["parameters"]]
    assert [f"means[0, {name}]" for name in NAMES] == labels[3:7]
    assert "covariances[2, sepal_width, petal_width]" in labels
    assert not any("[0, 0" in label for label in labels)
    summary = (folder / "summary.md").read_text()
    page = (folder / "index.html").read_text()
    for label in ("means[1, petal_length]", "covariances[0, sepal_length, sepal_width]"):
        assert f"| {label} |" in summary and f"<td>{label}</td>" in page
    assert comparison["parameters"][3]["parameter"] == "means[0, sepal_length]"


def test_names_label_every_figure_axis(iris_report):
    _, _, drawn = iris_report
    for stem in ("data", "em_clusters", "posterior_clusters", "misclassified"):
        (x, y), *_ = axis_labels(drawn[stem])
        assert (x, y) == ("sepal_length (first two of 4 coordinates shown)", "sepal_width")
    panels = np.array(drawn["pairs"].axes).reshape(4, 4)
    assert [ax.get_xlabel() for ax in panels[-1]] == list(NAMES)
    assert [ax.get_ylabel() for ax in panels[1:, 0]] == list(NAMES[1:])
    forest_ticks = [t.get_text() for ax in drawn["forest"].axes for t in ax.get_yticklabels()]
    assert "means[2, petal_width]" in forest_ticks
    titles = " ".join(ax.get_title() for ax in drawn["ppc"].axes)
    assert all(name in titles for name in NAMES) and "x1" not in titles
    rank = [ax.get_title() for ax in drawn["rank"].axes]
    assert "means\n0, sepal_length" in rank and "means\n2, petal_width" in rank


def test_the_pairs_plot_comes_after_the_clusterings_with_its_caption(iris_report):
    folder, _, _ = iris_report
    shown = sorted(p.stem for p in (folder / "figures").iterdir())
    every_method = {"idata": 1, "vb": 1, "idata_gauss_wishart": 1}
    four, two = (
        figures.figure_names(SimpleNamespace(**every_method, dataset=SimpleNamespace(n_features=d)))
        for d in (4, 2)
    )
    assert sorted(four) == sorted([*figures.FIGURES, "pairs"])
    assert four.index("pairs") == figures.FIGURES.index("posterior_clusters") + 1
    assert two == figures.FIGURES
    # iris_results has EM and a posterior, no VB: its report leaves VB's two figures out
    without_vb = [name for name in figures.FIGURES if name not in ("elbo", "vb_sd_ratio")]
    assert shown == sorted([*without_vb, "pairs"])
    page = (folder / "index.html").read_text()
    assert page.count("<img ") == len(without_vb) + 1
    assert figures.CAPTIONS["pairs"].replace("'", "&#x27;") in page


def test_pairs_panels_hold_the_exact_marginal_ellipses(iris_results, drawn, tmp_path):
    pairs.plot_pairs(iris_results.dataset, iris_results.fits, iris_results.idata, tmp_path)
    panels = np.array(drawn["pairs"].axes).reshape(4, 4)
    params = iris_results.fits.reference_run.parameters
    # Panel (row 3, column 2): x = petal_length (2), y = petal_width (3).
    black = [p for p in panels[3, 2].patches if p.get_edgecolor()[:3] == (0.0, 0.0, 0.0)]
    assert len(black) == 2 * 3  # 1 and 2 sigma, each component
    centres = sorted(tuple(np.round(p.center, 9)) for p in black[::2])
    assert centres == sorted(tuple(np.round(m[[2, 3]], 9)) for m in params.means)
    one_sigma = black[0]
    values = np.linalg.eigvalsh(params.covariances[0][np.ix_([2, 3], [2, 3])])
    assert sorted([one_sigma.width, one_sigma.height]) == pytest.approx(2 * np.sqrt(values))
    coloured = [p for p in panels[3, 2].patches if p not in black]
    assert len(coloured) == pairs.PAIRS_DRAWS * 3
    assert not panels[0, 1].axison  # upper triangle left empty


def test_unnamed_data_keep_numbered_coordinates_and_x1_x2_axes(drawn, tmp_path):
    dataset = load_dataset("seed7907")
    fits = fit_em(dataset, 3, random_seed=0)
    figures.plot_em_clusters(dataset, fits, tmp_path)
    assert axis_labels(drawn["em_clusters"])[0] == ("x1", "x2")


def separated_mixture(scale_of_2: float = 1.0) -> MixtureParameters:
    """Two components in 10-D, apart along coordinates 0, 2, 3, 5, 6, 7, 8, 9, not 1 or 4."""
    apart = np.array([3.0, 0.0, 4.0, 2.5, 0.0, 3.5, 2.0, 5.0, 3.0, 2.2])
    scale = np.ones(10)
    scale[2] = scale_of_2
    return MixtureParameters(
        weights=[0.5, 0.5],
        means=np.stack([np.zeros(10), apart * scale]),
        covariances=np.stack([np.diag(scale**2)] * 2),
    )


def test_beyond_eight_coordinates_the_best_separating_eight_are_drawn():
    params = separated_mixture()
    ratio = separation(params)
    assert ratio[[1, 4]].tolist() == [0.0, 0.0]
    assert ratio[7] == pytest.approx(0.25 * 25.0)  # between 0.25 * 5^2, within 1
    assert shown_coordinates(params).tolist() == [0, 2, 3, 5, 6, 7, 8, 9]
    # A coordinate's unit does not matter: coordinate 2 in thousandths is still chosen.
    assert shown_coordinates(separated_mixture(1000.0)).tolist() == [0, 2, 3, 5, 6, 7, 8, 9]
    assert shown_coordinates(params, limit=3).tolist() == [2, 5, 7]


def test_a_ten_dimensional_pairs_plot_says_which_coordinates_it_shows(drawn, tmp_path):
    params = separated_mixture()
    X, labels = sample_mixture(400, params.weights, params.means, params.covariances, seed=5)
    names = tuple(f"c{j}" for j in range(10))
    dataset = Dataset("ten", X, labels, "ten coordinates", names=names)
    results = results_for(dataset, 2)
    pairs.plot_pairs(dataset, results.fits, results.idata, tmp_path)
    panels = np.array(drawn["pairs"].axes).reshape(8, 8)
    assert [ax.get_xlabel() for ax in panels[-1]] == [
        "c0",
        "c2",
        "c3",
        "c5",
        "c6",
        "c7",
        "c8",
        "c9",
    ]
    caption = pairs_caption(figures.CAPTIONS["pairs"], dataset, results.fits)
    assert "Only 8 of the 10 coordinates are drawn: c0, c2, c3, c5, c6, c7, c8, c9," in caption
    assert pairs_caption("base.", read_csv(IRIS), fit_em(read_csv(IRIS), 3, 0)) == "base."


def test_a_repeated_header_name_is_one_line_and_exit_status_2(tmp_path, capsys):
    path = tmp_path / "twice.csv"
    path.write_text("width,height,width\n1,2,3\n2,3,5\n3,1,4\n4,4,4\n")
    assert main(["em", "--data", str(path), "-k", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "column 3 of the header repeats the name 'width' of column 1" in err


@pytest.mark.sampling
def test_iris_end_to_end_keeps_the_names_in_every_saved_file(tmp_path, run_gmm_compare):
    out = tmp_path / "iris"
    run = ("--data", IRIS, "-k", "3", "--draws", "100", "--tune", "100", "--chains", "2")
    result = run_gmm_compare(*run, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    from models import load_posterior

    idata = load_posterior(out / "posterior.nc")
    for group, variable in (("posterior", "means"), ("observed_data", "X")):
        assert idata[group][variable].coords["dim"].values.tolist() == list(NAMES)
    assert idata.posterior["covariances"].coords["dim_bis"].values.tolist() == list(NAMES)
    under_vb_priors = load_posterior(out / "posterior_gauss_wishart.nc")
    assert under_vb_priors.posterior["means"].coords["dim"].values.tolist() == list(NAMES)
    saved = json.loads((out / "comparison.json").read_text())
    assert "means[0, petal_length]" in [row["parameter"] for row in saved["parameters"]]
    assert (out / "figures" / "pairs.png").is_file()
    assert (out / "data.csv").read_text().splitlines()[0] == "label," + ",".join(NAMES)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "comparison.json").unlink()
    assert run_gmm_compare("report", "--out", copy, "--quiet").returncode == 0
    assert (copy / "comparison.json").read_text() == (out / "comparison.json").read_text()
    em = json.loads((copy / "em.json").read_text())
    em["dataset"]["names"] = ["a", "b", "c", "d"]
    (copy / "em.json").write_text(json.dumps(em))
    refused = run_gmm_compare("report", "--out", copy)
    assert refused.returncode == 2
    assert "em.json names the coordinates ['a', 'b', 'c', 'd'], posterior.nc [" in refused.stderr
