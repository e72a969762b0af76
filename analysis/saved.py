"""The results folder on disk: the saved files, and saving, loading and copying them.

A report folder holds the saved results (`em.json`, `data.csv`, and as the run's methods say
`posterior.nc` (NUTS), `vb.json` (VB) and `posterior_gauss_wishart.nc` (NUTS under VB's
priors)), from which `gmm-compare report` rebuilds everything else without sampling or
fitting. Every saved file records `data_hash` of the data it was fitted to; loading checks
each against data.csv (a file saved by an earlier version, without it, is refused), and that
the folder holds exactly the files its settings save.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from analysis.datasets import Dataset, HeaderUse, read_csv, to_csv
from analysis.em_fits import EMFits
from analysis.em_uncertainty import EMUncertainty
from analysis.files import dumps
from analysis.pipeline import Results, check_complete, results_from
from analysis.settings import RunSettings, gauss_wishart_sizes
from analysis.vb_fits import VBFit
from em_reference import MixtureParameters

POSTERIOR_FILE = "posterior.nc"
GAUSS_WISHART_FILE = "posterior_gauss_wishart.nc"
EM_FILE = "em.json"
VB_FILE = "vb.json"
DATA_FILE = "data.csv"
SAVED_FILES = (POSTERIOR_FILE, GAUSS_WISHART_FILE, EM_FILE, VB_FILE, DATA_FILE)
"""Every file a run may save; `saved_files` says which a given run saves."""
DATA_HASH = "data_sha256"
"""The key (in em.json and vb.json; the root attribute of a posterior) of `data_hash`."""


def _parameters_or_none(params: MixtureParameters | None) -> dict[str, list] | None:
    """A parameter set as JSON lists, or None."""
    return None if params is None else params.as_dict()


NO_UNCERTAINTY = (
    f"EM standard errors: not in {EM_FILE} (saved by an earlier version); "
    "run `gmm-compare sample` again to compute them"
)


def data_hash(dataset: Dataset) -> str:
    """SHA-256 of the points X (n, D) as float64, the labels (n,) and the coordinates' names."""
    X = np.ascontiguousarray(dataset.X, dtype="<f8")
    header = [list(X.shape), dataset.names, dataset.labels is not None]
    digest = hashlib.sha256(json.dumps(header).encode())
    digest.update(X.data)
    if dataset.labels is not None:
        # data.csv's reader numbers the labels 0..L-1 in sorted order: hash that partition.
        _, labels = np.unique(dataset.labels, return_inverse=True)
        digest.update(np.ascontiguousarray(labels, dtype="<i8").data)
    return digest.hexdigest()


def em_document(
    dataset: Dataset, fits: EMFits, settings: RunSettings, uncertainty: EMUncertainty
) -> dict[str, Any]:
    """The contents of em.json: the data's hash and known values, settings, EM runs, uncertainty."""
    return {
        DATA_HASH: data_hash(dataset),
        "dataset": {
            "name": dataset.name,
            "description": dataset.description,
            "names": None if dataset.names is None else list(dataset.names),
            "header": None if dataset.header is None else dataset.header.as_dict(),
            "true": _parameters_or_none(dataset.true),
            "initial": _parameters_or_none(dataset.initial),
            "published": _parameters_or_none(dataset.published),
            "published_accuracy": dataset.published_accuracy,
        },
        "settings": settings.as_dict(),
        "em": fits.as_dict(),
        "uncertainty": uncertainty.as_dict(),
    }


def saved_files(settings: RunSettings) -> tuple[str, ...]:
    """The files a run with these settings saves (and a rebuild needs)."""
    names = [EM_FILE, DATA_FILE]
    if settings.runs("nuts"):
        names.append(POSTERIOR_FILE)
    if settings.runs("vb"):
        names.append(VB_FILE)
    if settings.runs("vb") and settings.runs("nuts"):
        names.append(GAUSS_WISHART_FILE)
    return tuple(names)


def save_results(results: Results, folder: Path) -> None:
    """Write em.json, data.csv and the files of the methods run into folder (complete only)."""
    from models import save_posterior

    settings = results.settings
    if results.idata is not None:
        check_complete(results.idata, settings.chains, settings.draws)
    if results.idata_gauss_wishart is not None:
        draws, _, chains = gauss_wishart_sizes(settings)
        check_complete(results.idata_gauss_wishart, chains, draws)
    (folder / DATA_FILE).write_text(to_csv(results.dataset), encoding="utf-8")
    document = em_document(results.dataset, results.fits, settings, results.uncertainty)
    (folder / EM_FILE).write_text(dumps(document), encoding="utf-8")
    stamp = {DATA_HASH: document[DATA_HASH]}
    if results.vb is not None:
        (folder / VB_FILE).write_text(dumps(results.vb.as_dict() | stamp), encoding="utf-8")
    for name, idata in (
        (POSTERIOR_FILE, results.idata),
        (GAUSS_WISHART_FILE, results.idata_gauss_wishart),
    ):
        if idata is not None:
            stamped = idata.copy(deep=False)  # the caller's tree keeps its attributes
            stamped.attrs = {**idata.attrs, **stamp}
            save_posterior(stamped, folder / name)


def copy_results(source: Path, folder: Path) -> None:
    """Copy the saved result files of a report folder into another folder."""
    for name in SAVED_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)


def load_results(folder: Path) -> Results:
    """Read a report folder's saved results; ValueError naming a missing, broken or foreign file."""
    missing = [name for name in (EM_FILE, DATA_FILE) if not (folder / name).is_file()]
    if missing:
        raise _no_results(folder, missing)
    em = _read_em_file(folder, read_csv(folder / DATA_FILE, header=True))  # to_csv writes one
    dataset, settings = em.dataset, em.settings
    missing = [name for name in saved_files(settings) if not (folder / name).is_file()]
    if missing:
        raise _no_results(folder, missing)
    # Every posterior in the folder must fit the rest, even one this run's methods leave out
    # (refused next): a mismatch is named more precisely here.
    posteriors = {
        name: _load_posterior(folder / name)
        for name in (POSTERIOR_FILE, GAUSS_WISHART_FILE)
        if (folder / name).is_file()
    }
    for posterior in posteriors.values():
        check_consistent(dataset, em.parameters, posterior, settings, folder)
    check_no_strays(folder, settings)
    vb_document = _read_vb(folder) if settings.runs("vb") else None
    vb = None if vb_document is None else _vb_from(vb_document, folder)
    if vb is not None:
        check_vb_consistent(vb, settings, dataset, folder)
    # Last, as the checks above name a mismatch more precisely than a differing hash can.
    hashes = {EM_FILE: em.document.get(DATA_HASH)}
    hashes |= {name: posterior.attrs.get(DATA_HASH) for name, posterior in posteriors.items()}
    if vb_document is not None:
        hashes[VB_FILE] = vb_document.get(DATA_HASH)
    check_same_data(folder, dataset, hashes)
    try:
        fits = EMFits.from_dict(em.document["em"], dataset.X)
    except (KeyError, TypeError) as error:
        raise _not_an_em_file(folder, error) from None
    idata, idata_gauss_wishart = posteriors.get(POSTERIOR_FILE), posteriors.get(GAUSS_WISHART_FILE)
    return results_from(dataset, fits, em.uncertainty, idata, settings, vb, idata_gauss_wishart)


class _EMFile(NamedTuple):
    """What em.json holds, read: its contents, the data with its names, EM's runs, and more."""

    document: dict[str, Any]
    dataset: Dataset
    parameters: dict[str, MixtureParameters]
    settings: RunSettings
    uncertainty: EMUncertainty


def _read_em_file(folder: Path, data: Dataset) -> _EMFile:
    """em.json read beside data.csv's data; ValueError naming em.json when it is not ours."""
    try:
        document = json.loads((folder / EM_FILE).read_text(encoding="utf-8"))
        dataset = _dataset_from(document["dataset"], data)
        runs = document["em"]["runs"]
        parameters = {name: MixtureParameters.from_any(run) for name, run in runs.items()}
        settings = RunSettings.from_dict(document["settings"])
        uncertainty = (
            EMUncertainty.from_dict(document["uncertainty"])
            if "uncertainty" in document
            else EMUncertainty.unknown(NO_UNCERTAINTY)
        )
    except (KeyError, TypeError, ValueError) as error:
        raise _not_an_em_file(folder, error) from None
    return _EMFile(document, dataset, parameters, settings, uncertainty)


def check_no_strays(folder: Path, settings: RunSettings) -> None:
    """ValueError naming the saved files in the folder that its settings do not save.

    Such a file (a posterior.nc beside an em.json whose methods leave NUTS out) comes from
    another run: it would otherwise be left out of the report unsaid.
    """
    strays = [n for n in SAVED_FILES if n not in saved_files(settings) and (folder / n).exists()]
    if strays:
        raise ValueError(
            f"the saved results in {str(folder)!r} do not belong together: {', '.join(strays)} "
            f"{'is' if len(strays) == 1 else 'are'} there, but the methods in {EM_FILE} "
            f"({', '.join(settings.methods)}) do not save {'it' if len(strays) == 1 else 'them'}"
        )


def check_same_data(folder: Path, dataset: Dataset, hashes: dict[str, Any]) -> None:
    """ValueError naming the file unless each saved file's data hash (by file name) is data.csv's.

    `dataset` is data.csv's points and labels with em.json's names, as loaded.
    """
    expected = data_hash(dataset)
    for name, saved in hashes.items():
        if saved is None:
            raise ValueError(
                f"{str(folder / name)!r} was saved by an earlier version of gmm-compare, which "
                f"did not record the data it was fitted to, so it cannot be checked against "
                f"{DATA_FILE}: run `gmm-compare compare` again to remake the folder"
            )
        if saved != expected:
            raise ValueError(
                f"the saved results in {str(folder)!r} do not belong together: {name} was "
                f"fitted to other data than {DATA_FILE} holds (its {DATA_HASH} differs)"
            )


def _no_results(folder: Path, missing: list[str]) -> ValueError:
    """The error for a folder that lacks saved results."""
    return ValueError(
        f"{str(folder)!r} has no saved results to rebuild from "
        f"(missing {', '.join(missing)}): run `gmm-compare compare` first"
    )


def _load_posterior(path: Path) -> Any:
    """A saved posterior DataTree; ValueError naming the file when it cannot be read."""
    from models import load_posterior

    try:
        return load_posterior(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {str(path)!r}: {error}") from None


def _read_vb(folder: Path) -> dict[str, Any]:
    """vb.json's contents; ValueError naming it when it is not a JSON object."""
    path = folder / VB_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise _not_a_vb_file(path, error) from None
    if not isinstance(document, dict):
        raise _not_a_vb_file(path, TypeError("not a JSON object"))
    return document


def _vb_from(document: dict[str, Any], folder: Path) -> VBFit:
    """VB's saved fit from vb.json's contents; ValueError naming vb.json when it is broken."""
    try:
        return VBFit.from_dict(document)
    except (KeyError, TypeError, ValueError) as error:
        raise _not_a_vb_file(folder / VB_FILE, error) from None


def _not_a_vb_file(path: Path, error: Exception) -> ValueError:
    """The error for a vb.json that cannot be read."""
    return ValueError(f"{str(path)!r} is not a gmm-compare VB file: {error}")


def check_vb_consistent(vb: VBFit, settings: RunSettings, dataset: Dataset, folder: Path) -> None:
    """ValueError unless VB's saved q has the run's K and the data's D."""
    k, d = vb.posterior.means.shape
    if (k, d) != (settings.n_components, dataset.n_features):
        raise ValueError(
            f"the saved results in {str(folder)!r} do not belong together: {VB_FILE} has "
            f"K = {k}, D = {d}, but the run has K = {settings.n_components} and {DATA_FILE} "
            f"D = {dataset.n_features}"
        )


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

    An em.json from before names were kept has none: its coordinates were 0..D-1; one from
    before the header was recorded has no "header" (None).
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
        header=None if values.get("header") is None else HeaderUse(**values["header"]),
    )
