"""The comparison of EM and the NUTS posterior: every number the report shows, as plain values.

`compare` returns one JSON-ready dict (written as comparison.json): the point-estimate table
(with EM's standard errors, Wald and bootstrap intervals, and EM SE / posterior SD), clustering
accuracy with confusion matrices, uncertain points, EM convergence and sampler diagnostics, and
the warnings the report shows. A number that does not exist (a true value for a user's CSV, a
bootstrap that was turned off) is None; a NaN anywhere else is an error, never a silent entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from analysis.datasets import Dataset
from analysis.em_fits import EMFits, confusion_matrix
from analysis.em_uncertainty import EMUncertainty
from analysis.pipeline import Results
from analysis.settings import INTERVAL_PROB, UNCERTAIN_BELOW

PARAMETERS = ("weights", "means", "covariances")


# ---------------------------------------------------------------------------------------------
# Posterior summaries


def entries(n_components: int, n_features: int) -> list[tuple[str, tuple[int, ...]]]:
    """The table's scalar parameters: every weight, mean coordinate, covariance entry i <= j."""
    rows: list[tuple[str, tuple[int, ...]]] = []
    rows += [("weights", (k,)) for k in range(n_components)]
    rows += [("means", (k, j)) for k in range(n_components) for j in range(n_features)]
    rows += [
        ("covariances", (k, i, j))
        for k in range(n_components)
        for i in range(n_features)
        for j in range(i, n_features)
    ]
    return rows


def label(name: str, index: tuple[int, ...], dim_coords: Sequence[str | int] | None = None) -> str:
    """A parameter's name as the report prints it, e.g. 'means[1, 0]' or 'means[1, width]'.

    The component stays a number; a coordinate index shows as its `dim` coordinate (D,), the
    column's name when the data have names.
    """
    shown = [
        str(i) if position == 0 or dim_coords is None else str(dim_coords[i])
        for position, i in enumerate(index)
    ]
    return f"{name}[{', '.join(shown)}]"


SUMMARY_STATISTICS = {
    "mean": "mean",
    "sd": "sd",
    "low": f"eti{round(INTERVAL_PROB * 100)}_lb",
    "high": f"eti{round(INTERVAL_PROB * 100)}_ub",
    "r_hat": "r_hat",
    "ess_bulk": "ess_bulk",
    "ess_tail": "ess_tail",
}
"""The statistics the report takes from ArviZ's summary: ours -> ArviZ's name."""


def arviz_summary(idata: Any) -> Any:
    """ArviZ's summary of the compared parameters: one xarray Dataset, dim `summary` first.

    Mean, SD (ddof 1), equal-tailed INTERVAL_PROB interval, R-hat and bulk/tail ESS; the
    report's table and the sampler diagnostics are both read from it. ValueError if any draw
    is NaN or infinite.
    """
    import arviz_stats as azs  # imported here: it takes seconds, and only this needs it

    summary = azs.summary(
        idata,
        var_names=list(PARAMETERS),
        ci_prob=INTERVAL_PROB,
        ci_kind="eti",
        fmt="xarray",
        round_to="none",
    )
    for name in PARAMETERS:
        if not np.all(np.isfinite(summary[name].sel(summary="mean"))):
            raise ValueError(f"the posterior draws of {name} contain NaN or infinite values")
    return summary


def posterior_summary(summary: Any) -> dict[str, dict[str, np.ndarray]]:
    """The summary as arrays: name -> statistic (`SUMMARY_STATISTICS`) -> (K,) ... array."""
    return {
        name: {
            ours: np.asarray(summary[name].sel(summary=theirs))
            for ours, theirs in SUMMARY_STATISTICS.items()
        }
        for name in PARAMETERS
    }


# ---------------------------------------------------------------------------------------------
# The point-estimate table


def known_parameters(dataset: Dataset, n_components: int) -> dict[str, Any]:
    """The true and published parameters, only when they exist for this K and D."""
    known = {}
    for column, params in (("true", dataset.true), ("published", dataset.published)):
        fits = params is not None and params.n_components == n_components
        known[column] = params if fits and params.n_features == dataset.n_features else None
    return known


def _value(params: Any, name: str, index: tuple[int, ...]) -> float | None:
    """One entry of a parameter set, or None when the set is unknown."""
    return None if params is None else float(getattr(params, name)[index])


def uncertainty_columns(
    uncertainty: EMUncertainty, name: str, index: tuple[int, ...], posterior_sd: float
) -> dict[str, float | None]:
    """EM's SE, Wald and bootstrap bounds of one entry, and EM SE / posterior SD (None: unknown)."""
    u = uncertainty
    se = _value(u.standard_errors, name, index)
    return {
        "em_se": se,
        "em_wald_low": _value(u.wald_low, name, index),
        "em_wald_high": _value(u.wald_high, name, index),
        "em_bootstrap_se": _value(u.bootstrap_standard_errors, name, index),
        "em_bootstrap_low": _value(u.bootstrap_low, name, index),
        "em_bootstrap_high": _value(u.bootstrap_high, name, index),
        "se_ratio": None if se is None or not posterior_sd > 0 else se / posterior_sd,
    }


def parameter_rows(
    dataset: Dataset, fits: EMFits, summary: Any, uncertainty: EMUncertainty
) -> list[dict[str, Any]]:
    """One row per scalar parameter: truth, published, EM runs and uncertainty, the posterior."""
    k = fits.reference_run.parameters.n_components
    known = known_parameters(dataset, k)
    summary = posterior_summary(summary)
    rows = []
    for name, index in entries(k, dataset.n_features):
        post = {stat: float(values[index]) for stat, values in summary[name].items()}
        em = {run: _value(result.parameters, name, index) for run, result in fits.runs.items()}
        true = _value(known["true"], name, index)
        reference = em[fits.reference]
        rows.append(
            {
                "parameter": label(name, index, dataset.dim_coords),
                "group": name,
                "index": list(index),
                "true": true,
                "published": _value(known["published"], name, index),
                "em": em,
                "posterior_mean": post["mean"],
                "posterior_sd": post["sd"],
                "interval_low": post["low"],
                "interval_high": post["high"],
                "em_inside": bool(post["low"] <= reference <= post["high"]),
                "true_inside": None if true is None else bool(post["low"] <= true <= post["high"]),
                # None for a parameter whose draws are constant, e.g. the weight of K = 1.
                "r_hat": _plain(post["r_hat"]),
                "ess_bulk": _plain(post["ess_bulk"]),
                "ess_tail": _plain(post["ess_tail"]),
                **uncertainty_columns(uncertainty, name, index, post["sd"]),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# Clustering accuracy


def clustering(
    labels: np.ndarray, top: np.ndarray, true_labels: np.ndarray | None, n_components: int
) -> dict[str, Any]:
    """Accuracy and confusion matrix against the truth (when known) and the uncertain count."""
    result: dict[str, Any] = {
        "uncertain": int(np.sum(top < UNCERTAIN_BELOW)),
        "counts": np.bincount(labels, minlength=n_components).tolist(),
    }
    if true_labels is None:
        return result | {"correct": None, "accuracy": None, "confusion": None}
    n_true = int(true_labels.max()) + 1
    counts = confusion_matrix(true_labels, labels, n_true, n_components)
    correct = int(np.sum(labels == true_labels))
    return result | {
        "correct": correct,
        "accuracy": correct / labels.size,
        "confusion": counts.tolist(),
    }


def accuracy_summary(dataset: Dataset, fits: EMFits, membership: np.ndarray) -> dict[str, Any]:
    """Clustering of every EM run and of the posterior (membership (n, K)), published accuracy."""
    k = fits.reference_run.parameters.n_components
    sections = {}
    for name, run in fits.runs.items():
        top = run.responsibilities.max(axis=1)
        sections[name] = clustering(run.labels, top, dataset.labels, k)
    sections["posterior"] = clustering(
        membership.argmax(axis=1), membership.max(axis=1), dataset.labels, k
    )
    published = dataset.published_accuracy if known_parameters(dataset, k)["published"] else None
    return {
        "labels_known": dataset.labels is not None,
        "n_points": dataset.n_points,
        "uncertain_below": UNCERTAIN_BELOW,
        "published_accuracy": published,
        "methods": sections,
    }


# ---------------------------------------------------------------------------------------------
# Convergence and diagnostics


def em_summary(fits: EMFits) -> dict[str, Any]:
    """Iterations, convergence and final log-likelihood of each EM run."""
    return {
        "reference": fits.reference,
        "runs": {
            name: {
                "start": run.start,
                "n_iter": run.n_iter,
                "converged": run.converged,
                "log_likelihood": run.log_likelihood,
            }
            for name, run in fits.runs.items()
        },
    }


def uncertainty_summary(uncertainty: EMUncertainty) -> dict[str, Any]:
    """How EM's uncertainty was computed: bootstrap replicates and their counts, the problems."""
    u = uncertainty
    return {
        "information": "observed",
        "bootstrap": "nonparametric",
        "n_boot": u.n_boot,
        "n_failed": u.n_failed,
        "n_relabelled": u.n_relabelled,
        "n_unconverged": u.n_unconverged,
        "problems": list(u.problems),
    }


def sampler_summary(idata: Any, summary: Any | None = None) -> dict[str, Any]:
    """The models package's diagnostics of the NUTS run (from `summary` if given), plain values."""
    from models import diagnose

    diag = diagnose(idata, summary=summary)
    values = {key: _plain(value) for key, value in asdict(diag).items()}
    values["ok"] = bool(diag.ok)
    values["problems"] = list(diag.problems)
    return values


def _plain(value: Any) -> Any:
    """A JSON-ready Python value from NumPy scalars and tuples; NaN becomes None."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def warnings_for(
    em: dict[str, Any],
    sampler: dict[str, Any],
    rows: list[dict[str, Any]],
    dataset: Dataset,
    n_components: int,
    chains: int = 2,
) -> list[str]:
    """What the report flags: sampler problems, EM runs that hit max_iter, unmatched K.

    With one chain R-hat cannot exist: the sampler's problem line says so, once.
    """
    found = [f"sampler: {problem}" for problem in sampler["problems"]]
    if not sampler["ok"] and not sampler["problems"]:
        found.append("sampler: the diagnostics report a problem")
    missing = [
        key for key, value in sampler.items() if value is None and (chains > 1 or key != "max_rhat")
    ]
    if missing:
        found.append(f"sampler: {', '.join(missing)} could not be computed (NaN)")
    undefined = [r["parameter"] for r in rows if r["r_hat"] is None and r["posterior_sd"] > 0]
    if undefined and chains > 1:
        found.append(f"sampler: R-hat is undefined for {', '.join(undefined)}")
    for name, run in em["runs"].items():
        if not run["converged"]:
            found.append(f"EM ({name}) stopped at the iteration limit before converging")
    if dataset.true is not None and dataset.true.n_components != n_components:
        found.append(
            f"{n_components} components fitted; the data were drawn from "
            f"{dataset.true.n_components}, so no true values are shown"
        )
    return found


def compare(results: Results) -> dict[str, Any]:
    """Everything the report shows, as one JSON-ready dict (comparison.json)."""
    dataset, fits, idata = results.dataset, results.fits, results.idata
    k = fits.reference_run.parameters.n_components
    summary = arviz_summary(idata)
    em = em_summary(fits)
    sampler = sampler_summary(idata, summary)
    rows = parameter_rows(dataset, fits, summary, results.uncertainty)
    return {
        "dataset": {
            "name": dataset.name,
            "description": dataset.description,
            "n_points": dataset.n_points,
            "n_features": dataset.n_features,
            "names": dataset.dim_coords,
            "labels_known": dataset.labels is not None,
        },
        "settings": results.settings.as_dict()
        | {"interval_prob": INTERVAL_PROB, "interval": "eti"},
        "parameters": rows,
        "accuracy": accuracy_summary(dataset, fits, results.membership),
        "em": em,
        "em_uncertainty": uncertainty_summary(results.uncertainty),
        "sampler": sampler,
        "warnings": warnings_for(em, sampler, rows, dataset, k, int(idata.posterior.sizes["chain"]))
        + list(results.uncertainty.problems),
    }
