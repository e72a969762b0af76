"""Running the methods on a dataset into one `Results` value: EM and its uncertainty, then NUTS.

No rendering and no files here (saving and loading: `analysis.saved`). PyMC is imported inside
the functions that sample, so this module is cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.datasets import Dataset
from analysis.em_fits import EMFits, fit_em
from analysis.em_uncertainty import EMUncertainty, em_uncertainty
from analysis.settings import RunSettings


@dataclass(frozen=True)
class Results:
    """Everything a report is made from: data, EM runs, EM's uncertainty, posterior, settings.

    `membership` (n, K) holds each point's posterior membership probabilities, computed once.
    """

    dataset: Dataset
    fits: EMFits
    uncertainty: EMUncertainty
    idata: Any
    settings: RunSettings
    membership: np.ndarray


def results_from(
    dataset: Dataset, fits: EMFits, uncertainty: EMUncertainty, idata: Any, settings: RunSettings
) -> Results:
    """A Results value, with the posterior membership probabilities computed once."""
    return Results(dataset, fits, uncertainty, idata, settings, membership_probabilities(idata))


def membership_probabilities(idata: Any) -> np.ndarray:
    """Posterior membership probabilities (n, K) from the models package."""
    from models import posterior_membership

    probabilities = np.asarray(posterior_membership(idata).probabilities, dtype=np.float64)
    if not np.all(np.isfinite(probabilities)):
        raise ValueError("the posterior membership probabilities contain NaN values")
    return probabilities


def run_em(dataset: Dataset, settings: RunSettings) -> EMFits:
    """Both EM runs on the dataset, in the common component order."""
    return fit_em(dataset, settings.n_components, settings.random_seed)


def run_uncertainty(
    dataset: Dataset,
    fits: EMFits,
    settings: RunSettings,
    note: Callable[[str], None] | None = None,
) -> EMUncertainty:
    """The reference run's standard errors, Wald intervals and `settings.bootstrap` replicates.

    `note` is told, in one line, what is being computed before the bootstrap starts.
    """
    if note is not None and settings.bootstrap > 0:
        note(
            f"EM uncertainty: information standard errors and {settings.bootstrap} "
            "nonparametric bootstrap replicates"
        )
    return em_uncertainty(dataset.X, fits.reference_run, settings.bootstrap, settings.random_seed)


def run_nuts(dataset: Dataset, fits: EMFits, settings: RunSettings, progressbar: bool) -> Any:
    """NUTS on the Bayesian twin, labelled like the reference EM run; a complete posterior only."""
    from models import build_model, sample_posterior

    model = build_model(dataset.X, n_components=settings.n_components, names=dataset.names)
    idata = sample_posterior(
        model,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        random_seed=settings.random_seed,
        reference=fits.reference_run.estimator(),
        progressbar=progressbar,
    )
    check_complete(idata, settings)
    return idata


def check_complete(idata: Any, settings: RunSettings) -> None:
    """ValueError unless the posterior has every chain and draw the settings asked for.

    PyMC returns the draws made so far when its sampling loop is interrupted; such a truncated
    posterior must never be saved as if it were the run that was asked for.
    """
    chains, draws = (int(idata.posterior.sizes[dim]) for dim in ("chain", "draw"))
    if (chains, draws) != (settings.chains, settings.draws):
        raise ValueError(
            f"the sampler returned {chains} chains of {draws} draws, not the {settings.chains} "
            f"of {settings.draws} asked for (was it interrupted?); nothing was written"
        )


def run_all(
    dataset: Dataset,
    settings: RunSettings,
    progressbar: bool,
    note: Callable[[str], None] | None = None,
) -> Results:
    """EM, its uncertainty, then NUTS: the expensive part of a comparison (`note`: progress)."""
    fits = run_em(dataset, settings)
    uncertainty = run_uncertainty(dataset, fits, settings, note)
    idata = run_nuts(dataset, fits, settings, progressbar)
    return results_from(dataset, fits, uncertainty, idata, settings)
