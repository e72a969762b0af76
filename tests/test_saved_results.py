"""Saved results belong together: every saved file is checked against data.csv, or refused.

Issue 23, case 6: an em.json from seed42 copied into a seed-7907 report gave a report titled
seed42 with seed-7907's VB fit, and the NUTS posterior silently left out. The posteriors here
are conftest's fake ones (NumPy draws), so nothing samples.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.datasets import load_dataset
from analysis.em_fits import fit_em
from analysis.pipeline import results_from, run_uncertainty, run_vb
from analysis.saved import load_results, save_results
from analysis.settings import RunSettings
from models import load_posterior, save_posterior
from tests.conftest import seed7907_results

SETTINGS = RunSettings(n_components=3, random_seed=0, draws=250, tune=0, chains=4, bootstrap=0)
HASH_KEY = "data_sha256"
"""Where each saved file records the data it was fitted to (the files' format, pinned here)."""


@pytest.fixture(scope="module")
def results(seed_fake_posterior, seed_fake_gauss_wishart):
    """seed-7907: EM, VB and fake posteriors of both NUTS runs (methods em, vb, nuts)."""
    return seed7907_results(SETTINGS, seed_fake_posterior, seed_fake_gauss_wishart)


@pytest.fixture
def folder(results, tmp_path) -> Path:
    """A folder holding results' saved files."""
    out = tmp_path / "saved"
    out.mkdir()
    save_results(results, out)
    return out


def snapshot(folder: Path) -> list[tuple[str, bytes]]:
    """Every file under folder, with its bytes."""
    return sorted(
        (str(p.relative_to(folder)), p.read_bytes()) for p in folder.rglob("*") if p.is_file()
    )


def compare_em_vb(dataset: str, out: Path) -> None:
    """`gmm-compare compare DATASET --methods em,vb` into out (no sampling)."""
    run = [dataset, "--methods", "em,vb", "--bootstrap", "0", "--out", str(out), "-q"]
    assert main(run) == 0


def test_report_refuses_an_em_json_fitted_to_other_data(tmp_path, capsys):
    # Before: exit 0, a report titled seed42 holding seed-7907's data and VB fit.
    seed42, seed7907 = tmp_path / "seed42", tmp_path / "seed7907"
    compare_em_vb("seed42", seed42)
    compare_em_vb("seed7907", seed7907)
    shutil.copy2(seed42 / "em.json", seed7907 / "em.json")
    before = snapshot(seed7907)
    capsys.readouterr()
    assert main(["report", "--out", str(seed7907)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gmm-compare: error: ")
    assert "do not belong together: em.json was fitted to other data than data.csv" in err
    assert snapshot(seed7907) == before


@pytest.fixture(scope="module")
def seed42_folder(tmp_path_factory) -> Path:
    """em.json, vb.json and data.csv saved from EM and VB on seed42 (K = 3, D = 2, as seed-7907)."""
    out = tmp_path_factory.mktemp("seed42")
    dataset = load_dataset("seed42")
    fits = fit_em(dataset, 3, random_seed=0)
    uncertainty = run_uncertainty(dataset, fits, SETTINGS)
    vb = run_vb(dataset, fits)
    save_results(results_from(dataset, fits, uncertainty, None, SETTINGS, vb), out)
    return out


FOREIGN_HASH = "0" * 64
"""A data hash other than seed-7907's, as a file fitted to other data records."""


def _restamp(folder: Path, name: str, value: str | None) -> None:
    """Set (or, with None, remove) the data hash recorded in one saved file."""
    path = folder / name
    if name.endswith(".json"):
        document = json.loads(path.read_text())
        document.pop(HASH_KEY, None)
        if value is not None:
            document[HASH_KEY] = value
        path.write_text(json.dumps(document))
        return
    tree = load_posterior(path)
    tree.attrs.pop(HASH_KEY, None)
    if value is not None:
        tree.attrs[HASH_KEY] = value
    save_posterior(tree, path)


SAVED = ("em.json", "vb.json", "posterior.nc", "posterior_gauss_wishart.nc")


@pytest.mark.parametrize("name", SAVED)
def test_a_saved_file_fitted_to_other_data_is_refused_by_name(folder, seed42_folder, name):
    # Before: every file here loaded, whatever data it was fitted to.
    if name.endswith(".json"):  # seed42's own file, as a user would copy it
        shutil.copy2(seed42_folder / name, folder / name)
    else:
        _restamp(folder, name, FOREIGN_HASH)
    with pytest.raises(ValueError, match=f"{name} was fitted to other data than data.csv holds"):
        load_results(folder)


@pytest.mark.parametrize("name", SAVED)
def test_a_saved_file_from_an_earlier_version_is_refused(folder, name):
    # Before: loaded unchecked (no saved file recorded its data).
    _restamp(folder, name, None)
    with pytest.raises(ValueError) as refused:
        load_results(folder)
    message = str(refused.value)
    assert f"{str(folder / name)!r} was saved by an earlier version of gmm-compare" in message
    assert "run `gmm-compare compare` again" in message


def test_a_posterior_the_settings_do_not_save_is_not_left_out_silently(results, folder, tmp_path):
    # Before: loaded with no posterior at all, the NUTS runs left out of the report unsaid.
    em_vb = tmp_path / "em_vb"
    em_vb.mkdir()
    settings = dataclasses.replace(SETTINGS, methods=("em", "vb"))
    save_results(
        dataclasses.replace(results, settings=settings, idata=None, idata_gauss_wishart=None),
        em_vb,
    )
    shutil.copy2(em_vb / "em.json", folder / "em.json")
    with pytest.raises(ValueError) as refused:
        load_results(folder)
    assert str(refused.value) == (
        f"the saved results in {str(folder)!r} do not belong together: posterior.nc, "
        "posterior_gauss_wishart.nc are there, but the methods in em.json (em, vb) do not "
        "save them"
    )


def test_saved_results_load_as_saved(results, folder):
    loaded = load_results(folder)
    assert loaded.dataset.name == "seed7907" and loaded.settings == SETTINGS
    assert loaded.vb is not None and loaded.idata is not None
    assert loaded.idata_gauss_wishart is not None
    # The caller's posterior is not stamped by saving.
    assert HASH_KEY not in results.idata.attrs
