"""Running the methods on a dataset into one `Results` value: EM and its uncertainty, VB, NUTS.

EM always runs (it fixes the component order and starts VB and NUTS); VB and NUTS as the
settings' `methods` say; with both, NUTS also samples the Gauss-Wishart twin under VB's own
priors, so VB can be measured against an exact posterior of the same model.

No rendering and no files here (saving and loading: `analysis.saved`). PyMC is imported inside
the functions that sample, so this module is cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.datasets import Dataset
from analysis.em_fits import EMFits, fit_em
from analysis.em_uncertainty import EMUncertainty, em_uncertainty
from analysis.forked import beside
from analysis.settings import RunSettings, gauss_wishart_sizes
from analysis.vb_fits import VBFit, fit_vb


@dataclass(frozen=True)
class Results:
    """Everything a report is made from: data, EM runs and uncertainty, VB, posteriors, settings.

    `idata` is the NUTS posterior under the default priors, `idata_gauss_wishart` the one under
    VB's priors, `vb` VB's fit; each None when its method was not run. `membership` (n, K) holds
    each point's posterior membership probabilities (None without NUTS), computed once.
    """

    dataset: Dataset
    fits: EMFits
    uncertainty: EMUncertainty
    idata: Any
    settings: RunSettings
    membership: np.ndarray | None
    vb: VBFit | None = None
    idata_gauss_wishart: Any = None


def results_from(
    dataset: Dataset,
    fits: EMFits,
    uncertainty: EMUncertainty,
    idata: Any,
    settings: RunSettings,
    vb: VBFit | None = None,
    idata_gauss_wishart: Any = None,
) -> Results:
    """A Results value, with the posterior membership probabilities computed once."""
    membership = None if idata is None else membership_probabilities(idata)
    return Results(dataset, fits, uncertainty, idata, settings, membership, vb, idata_gauss_wishart)


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


def run_uncertainty(dataset: Dataset, fits: EMFits, settings: RunSettings) -> EMUncertainty:
    """The reference run's standard errors, Wald intervals and `settings.bootstrap` replicates."""
    return em_uncertainty(dataset.X, fits.reference_run, settings.bootstrap, settings.random_seed)


def announce_uncertainty(settings: RunSettings, note: Callable[[str], None] | None) -> None:
    """Tell `note`, in one line, what `run_uncertainty` computes (when it bootstraps)."""
    if note is not None and settings.bootstrap > 0:
        note(
            f"EM uncertainty: information standard errors and {settings.bootstrap} "
            "nonparametric bootstrap replicates"
        )


def run_vb(dataset: Dataset, fits: EMFits) -> VBFit:
    """VB at the run's K from the reference EM run (the source's own priors when it has them)."""
    return fit_vb(dataset, fits.reference_run)


def run_nuts(
    dataset: Dataset,
    fits: EMFits,
    settings: RunSettings,
    progressbar: bool,
    predictions: bool = True,
) -> Any:
    """NUTS on the Bayesian twin, labelled like the reference EM run; a complete posterior only.

    predictions=False leaves the log-likelihood and predictive groups to
    `models.sampling.add_predictions`.
    """
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
        predictions=predictions,
    )
    check_complete(idata, settings.chains, settings.draws)
    return idata


@contextmanager
def gauss_wishart_in_background(
    dataset: Dataset, fits: EMFits, vb: VBFit | None, settings: RunSettings, progressbar: bool
) -> Iterator[Callable[[], Any]]:
    """NUTS on the twin under VB's priors, sampling while the caller goes on; None without vb.

    Yields a call that waits for the posterior (`gauss_wishart_sizes`, labelled like the
    reference). Only the posterior is kept (no log-likelihood or predictive groups): it is
    compared with VB entry by entry.
    """
    if vb is None:
        yield lambda: None
        return
    from models import build_model
    from models.sampling import posterior_in_background

    draws, tune, chains = gauss_wishart_sizes(settings)
    model = build_model(
        dataset.X,
        n_components=settings.n_components,
        prior="gauss-wishart",
        names=dataset.names,
        **vb.priors,
    )
    with posterior_in_background(
        model,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=settings.random_seed,
        reference=fits.reference_run.estimator(),
        progressbar=progressbar,
        predictions=False,
    ) as result:

        def complete() -> Any:
            idata = result()
            check_complete(idata, chains, draws)
            return idata

        yield complete


def check_complete(idata: Any, chains: int, draws: int) -> None:
    """ValueError unless the posterior has every chain and draw that was asked for.

    PyMC returns the draws made so far when its sampling loop is interrupted; such a truncated
    posterior must never be saved as if it were the run that was asked for.
    """
    got = tuple(int(idata.posterior.sizes[dim]) for dim in ("chain", "draw"))
    if got != (chains, draws):
        raise ValueError(
            f"the sampler returned {got[0]} chains of {got[1]} draws, not the {chains} "
            f"of {draws} asked for (was it interrupted?); nothing was written"
        )


def run_all(
    dataset: Dataset,
    settings: RunSettings,
    progressbar: bool,
    note: Callable[[str], None] | None = None,
) -> Results:
    """EM and its uncertainty, VB, NUTS, then NUTS under VB's priors, as `settings.methods` say.

    `note` is told, one line each, what is being computed (progress). With NUTS, the bootstrap
    runs in a forked process beside the main NUTS's imports and set-up, and the twin under VB's
    priors samples while the main posterior's predictions and membership are computed: the
    results are those of one step after the other.
    """
    fits = run_em(dataset, settings)
    nuts = settings.runs("nuts")
    announce_uncertainty(settings, note)
    # The bootstrap is single-core NumPy: beside NUTS's imports and set-up when NUTS runs.
    with beside(run_uncertainty, dataset, fits, settings, fork=nuts) as uncertainty_result:
        vb = run_vb(dataset, fits) if settings.runs("vb") else None
        if not nuts:
            return results_from(dataset, fits, uncertainty_result(), None, settings, vb)
        if note is not None:
            note(
                f"NUTS: {settings.chains} x {settings.draws} draws after {settings.tune} "
                "tuning steps"
            )
        idata = run_nuts(dataset, fits, settings, progressbar, predictions=False)
        if vb is not None and note is not None:
            draws, _, chains = gauss_wishart_sizes(settings)
            note(f"NUTS under VB's priors ({vb.prior_source}): {chains} x {draws} draws")
        from models.sampling import add_predictions

        # The twin's chains sample in nutpie's threads while the main posterior's predictions
        # and membership are computed here, on one core.
        with gauss_wishart_in_background(dataset, fits, vb, settings, progressbar) as twin:
            idata = add_predictions(idata, settings.random_seed)
            membership = membership_probabilities(idata)
            idata_gauss_wishart = twin()
        uncertainty = uncertainty_result()
    return Results(dataset, fits, uncertainty, idata, settings, membership, vb, idata_gauss_wishart)
