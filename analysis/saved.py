"""The results folder on disk: the saved files, and saving, loading and copying them.

A report folder holds the saved results (`posterior.nc`, `em.json`, `data.csv`), from which
`gmm-compare report` rebuilds everything else without sampling. Loading checks that the three
files belong together.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from analysis.datasets import Dataset, read_csv, to_csv
from analysis.em_fits import EMFits
from analysis.em_uncertainty import EMUncertainty
from analysis.files import dumps
from analysis.pipeline import Results, check_complete, results_from
from analysis.settings import RunSettings
from em_reference import MixtureParameters

POSTERIOR_FILE = "posterior.nc"
EM_FILE = "em.json"
DATA_FILE = "data.csv"
SAVED_FILES = (POSTERIOR_FILE, EM_FILE, DATA_FILE)
REPORT_NAMES = frozenset({*SAVED_FILES, "comparison.json", "summary.md", "index.html", "figures"})
"""What a report folder holds: one written before folders carried a manifest is known by it."""


def _parameters_or_none(params: MixtureParameters | None) -> dict[str, list] | None:
    """A parameter set as JSON lists, or None."""
    return None if params is None else params.as_dict()


NO_UNCERTAINTY = (
    f"EM standard errors: not in {EM_FILE} (saved by an earlier version); "
    "run `gmm-compare sample` again to compute them"
)


def em_document(
    dataset: Dataset, fits: EMFits, settings: RunSettings, uncertainty: EMUncertainty
) -> dict[str, Any]:
    """The contents of em.json: known values, settings, EM runs, the reference run's uncertainty."""
    return {
        "dataset": {
            "name": dataset.name,
            "description": dataset.description,
            "names": None if dataset.names is None else list(dataset.names),
            "true": _parameters_or_none(dataset.true),
            "initial": _parameters_or_none(dataset.initial),
            "published": _parameters_or_none(dataset.published),
            "published_accuracy": dataset.published_accuracy,
        },
        "settings": settings.as_dict(),
        "em": fits.as_dict(),
        "uncertainty": uncertainty.as_dict(),
    }


def save_results(results: Results, folder: Path) -> None:
    """Write posterior.nc, em.json and data.csv into folder (a complete posterior only)."""
    from models import save_posterior

    check_complete(results.idata, results.settings)
    (folder / DATA_FILE).write_text(to_csv(results.dataset), encoding="utf-8")
    document = em_document(results.dataset, results.fits, results.settings, results.uncertainty)
    (folder / EM_FILE).write_text(dumps(document), encoding="utf-8")
    save_posterior(results.idata, folder / POSTERIOR_FILE)


def copy_results(source: Path, folder: Path) -> None:
    """Copy the saved result files of a report folder into another folder."""
    for name in SAVED_FILES:
        shutil.copy2(source / name, folder / name)


def load_results(folder: Path) -> Results:
    """Read a report folder's saved results; ValueError naming a missing or broken file."""
    missing = [name for name in SAVED_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"{str(folder)!r} has no saved results to rebuild from "
            f"(missing {', '.join(missing)}): run `gmm-compare compare` first"
        )
    try:
        document = json.loads((folder / EM_FILE).read_text(encoding="utf-8"))
        dataset = _dataset_from(document["dataset"], read_csv(folder / DATA_FILE))
        runs = document["em"]["runs"]
        parameters = {name: MixtureParameters.from_any(run) for name, run in runs.items()}
        settings = RunSettings.from_dict(document["settings"])
        uncertainty = (
            EMUncertainty.from_dict(document["uncertainty"])
            if "uncertainty" in document
            else EMUncertainty.unknown(NO_UNCERTAINTY)
        )
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise _not_an_em_file(folder, error) from None
    from models import load_posterior

    try:
        idata = load_posterior(folder / POSTERIOR_FILE)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {str(folder / POSTERIOR_FILE)!r}: {error}") from None
    check_consistent(dataset, parameters, idata, settings, folder)
    try:
        fits = EMFits.from_dict(document["em"], dataset.X)
    except (KeyError, TypeError) as error:
        raise _not_an_em_file(folder, error) from None
    return results_from(dataset, fits, uncertainty, idata, settings)


def _not_an_em_file(folder: Path, error: Exception) -> ValueError:
    """The error for an em.json that cannot be read."""
    return ValueError(f"{str(folder / EM_FILE)!r} is not a gmm-compare EM file: {error}")


def check_consistent(
    dataset: Dataset,
    parameters: dict[str, MixtureParameters],
    idata: Any,
    settings: RunSettings,
    folder: Path,
) -> None:
    """ValueError naming the mismatch unless data.csv, em.json and posterior.nc belong together.

    `parameters` are the EM runs' estimates by run name, as em.json holds them.
    """
    from models import OBSERVED

    posterior = idata.posterior
    k_post, d_post = (int(posterior.sizes[dim]) for dim in ("component", "dim"))
    n, d = dataset.X.shape
    problems = [
        f"{EM_FILE} run {name!r} has K = {p.n_components}, D = {p.n_features}"
        for name, p in parameters.items()
        if (p.n_components, p.n_features) != (k_post, d_post)
    ]
    if settings.n_components != k_post:
        problems.append(f"{EM_FILE} settings have K = {settings.n_components}")
    if d != d_post:
        problems.append(f"{DATA_FILE} has D = {d}")
    elif (saved_dims := [_plain_coord(c) for c in posterior["dim"].values]) != dataset.dim_coords:
        problems.append(
            f"{EM_FILE} names the coordinates {dataset.dim_coords}, {POSTERIOR_FILE} {saved_dims}"
        )
    if "observed_data" in idata.children:
        observed = np.asarray(idata.observed_data[OBSERVED])
        if observed.shape != (n, d):
            problems.append(f"{DATA_FILE} has {n} points of D = {d}, not {observed.shape[0]}")
        elif not np.array_equal(observed, dataset.X):
            problems.append(f"{DATA_FILE} holds other points than the ones sampled on")
    if problems:
        raise ValueError(
            f"the saved results in {str(folder)!r} do not belong together: {POSTERIOR_FILE} "
            f"has K = {k_post}, D = {d_post}, but " + "; ".join(problems)
        )


def _plain_coord(value: Any) -> str | int:
    """A `dim` coordinate value read from netCDF as a Python str or int."""
    return value.item() if isinstance(value, np.generic) else value


def _dataset_from(values: dict[str, Any], data: Dataset) -> Dataset:
    """The saved data with the name, coordinate names and known parameters recorded in em.json.

    An em.json from before names were kept has none: its coordinates were 0..D-1.
    """

    def params(key: str) -> MixtureParameters | None:
        return None if values[key] is None else MixtureParameters.from_any(values[key])

    return Dataset(
        name=values["name"],
        X=data.X,
        labels=data.labels,
        description=values["description"],
        true=params("true"),
        initial=params("initial"),
        published=params("published"),
        published_accuracy=values["published_accuracy"],
        names=values.get("names"),
    )
