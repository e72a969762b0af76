"""The comparison of EM, VB and the NUTS posterior: every number the report shows, as plain values.

`compare` returns one JSON-ready dict (written as comparison.json): the point-estimate table
(with EM's standard errors, Wald and bootstrap intervals, and EM SE / posterior SD; VB's mean,
SD and interval, and VB SD / SD of NUTS under VB's priors with its Monte Carlo error),
clustering accuracy with confusion matrices, uncertain points, EM and VB convergence, the
diagnostics of both NUTS runs, and the warnings the report shows. A number that does not exist
(a true value for a user's CSV, a bootstrap that was turned off, a method that was not run) is
None; a NaN anywhere else is an error, never a silent entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from analysis.collapse import collapse_section
from analysis.datasets import Dataset
from analysis.em_fits import EMFits, confusion_matrix
from analysis.em_uncertainty import EMUncertainty
from analysis.pipeline import Results
from analysis.settings import INTERVAL_PROB, UNCERTAIN_BELOW, gauss_wishart_sizes
from analysis.vb_fits import VBFit, draw_summary
from em_reference.variational import log_responsibilities

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
    "mcse_sd": "mcse_sd",
}
"""The statistics the report takes from ArviZ's summary: ours -> ArviZ's name."""


def arviz_summary(idata: Any) -> Any:
    """ArviZ's summary of the compared parameters: one xarray Dataset, dim `summary` first.

    Mean, SD (ddof 1), equal-tailed INTERVAL_PROB interval, R-hat and bulk/tail ESS; the
    report's table and the sampler diagnostics are both read from it. ValueError if any draw
    is NaN or infinite.
    """
    import arviz_stats as azs  # imported here: it takes seconds, and only this needs it

    # A parameter constant in every draw (K = 1's weight) has an R-hat and MC errors of 0 / 0:
    # NaN, which the rows show as null and the warnings name, so NumPy's own warning is noise.
    with np.errstate(divide="ignore", invalid="ignore"):
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


Summary = dict[str, dict[str, np.ndarray]]
"""name -> statistic -> array (K,) ...: `posterior_summary` or `vb_fits.draw_summary` output."""


def _entry(summary: Summary | None, name: str, index: tuple[int, ...]) -> dict[str, Any]:
    """One parameter's statistics from a summary, as floats (NaN kept); {} when none."""
    if summary is None:
        return {}
    return {stat: float(values[index]) for stat, values in summary[name].items()}


def posterior_columns(post: dict[str, Any], reference: float, true: float | None) -> dict:
    """The NUTS posterior's columns of one row (default priors); None when NUTS was not run."""
    if not post:
        names = ("posterior_mean", "posterior_sd", "interval_low", "interval_high", "em_inside")
        return dict.fromkeys((*names, "true_inside", "r_hat", "ess_bulk", "ess_tail"))
    return {
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
    }


def vb_columns(vb: dict[str, Any], gw: dict[str, Any]) -> dict[str, float | None]:
    """VB's mean, SD and interval, NUTS's mean and SD under VB's priors, and VB SD / that SD.

    The ratio's Monte Carlo error combines both SDs' relative errors (NUTS's from ArviZ's
    mcse_sd, VB's from its independent draws): r sqrt((e_nuts / s_nuts)^2 + (e_vb / s_vb)^2).
    None where a method was not run.
    """
    columns: dict[str, float | None] = {
        "vb_mean": vb.get("mean"),
        "vb_sd": vb.get("sd"),
        "vb_low": vb.get("low"),
        "vb_high": vb.get("high"),
        "gauss_wishart_mean": gw.get("mean"),
        "gauss_wishart_sd": gw.get("sd"),
        "gauss_wishart_mcse_sd": _plain(gw["mcse_sd"]) if gw else None,
        "vb_sd_ratio": None,
        "vb_sd_ratio_mcse": None,
    }
    if vb and gw and gw["sd"] > 0 and vb["sd"] > 0:
        ratio = vb["sd"] / gw["sd"]
        relative = np.hypot(gw["mcse_sd"] / gw["sd"], vb["mcse_sd"] / vb["sd"])
        columns["vb_sd_ratio"] = ratio
        columns["vb_sd_ratio_mcse"] = _plain(ratio * relative)
    return columns


def parameter_rows(
    dataset: Dataset,
    fits: EMFits,
    summary: Any,
    uncertainty: EMUncertainty,
    vb_summary: Summary | None = None,
    gauss_wishart_summary: Any = None,
) -> list[dict[str, Any]]:
    """One row per scalar parameter: truth, published, EM runs and uncertainty, NUTS, VB.

    `summary` and `gauss_wishart_summary` are ArviZ summaries of the two NUTS runs, `vb_summary`
    VB's `draw_summary`; each None when its method was not run.
    """
    k = fits.reference_run.parameters.n_components
    known = known_parameters(dataset, k)
    post_summary = None if summary is None else posterior_summary(summary)
    gw_summary = None if gauss_wishart_summary is None else posterior_summary(gauss_wishart_summary)
    rows = []
    for name, index in entries(k, dataset.n_features):
        post = _entry(post_summary, name, index)
        em = {run: _value(result.parameters, name, index) for run, result in fits.runs.items()}
        true = _value(known["true"], name, index)
        row = {
            "parameter": label(name, index, dataset.dim_coords),
            "group": name,
            "index": list(index),
            "fixed": is_fixed(name, k),
            "true": true,
            "published": _value(known["published"], name, index),
            "em": em,
            **posterior_columns(post, em[fits.reference], true),
            **uncertainty_columns(uncertainty, name, index, post.get("sd", 0.0)),
            **vb_columns(_entry(vb_summary, name, index), _entry(gw_summary, name, index)),
        }
        rows.append(row | dict.fromkeys(SPREAD_COLUMNS) if row["fixed"] else row)
    return rows


def is_fixed(name: str, n_components: int) -> bool:
    """True for the weight of a single component: 1 by definition, so it has no spread."""
    return name == "weights" and n_components == 1


SPREAD_COLUMNS = (
    "posterior_sd",
    "interval_low",
    "interval_high",
    "em_inside",
    "true_inside",
    "r_hat",
    "ess_bulk",
    "ess_tail",
    "em_se",
    "em_wald_low",
    "em_wald_high",
    "em_bootstrap_se",
    "em_bootstrap_low",
    "em_bootstrap_high",
    "se_ratio",
    "vb_sd",
    "vb_low",
    "vb_high",
    "gauss_wishart_sd",
    "gauss_wishart_mcse_sd",
    "vb_sd_ratio",
    "vb_sd_ratio_mcse",
)
"""A row's SDs, intervals and what is computed from them: None (null) for a fixed parameter,
whose SD is 0 and whose interval is the point itself (or float noise around it)."""


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


def accuracy_summary(
    dataset: Dataset, fits: EMFits, membership: np.ndarray | None, vb: np.ndarray | None = None
) -> dict[str, Any]:
    """Clustering of every EM run, of VB's q (responsibilities `vb`) and of the posterior.

    `membership` and `vb` are (n, K); each is None, and left out, when its method was not run.
    """
    k = fits.reference_run.parameters.n_components
    sections = {}
    for name, run in fits.runs.items():
        top = run.responsibilities.max(axis=1)
        sections[name] = clustering(run.labels, top, dataset.labels, k)
    if vb is not None:
        # VB starts from EM's reference estimate, so its labels are EM's.
        sections["vb"] = clustering(vb.argmax(axis=1), vb.max(axis=1), dataset.labels, k)
    if membership is not None:
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


def vb_summary(vb: VBFit) -> dict[str, Any]:
    """VB's start, priors (and whose they are), iterations, convergence and final ELBO."""
    return {
        "start": vb.start,
        "prior_source": vb.prior_source,
        "priors": vb.as_dict()["priors"],
        "n_iter": vb.n_iter,
        "converged": vb.converged,
        "lower_bound": vb.lower_bound,
    }


def warnings_for(
    em: dict[str, Any],
    sampler: dict[str, Any] | None,
    rows: list[dict[str, Any]],
    dataset: Dataset,
    n_components: int,
    chains: int = 2,
    label: str = "sampler",
) -> list[str]:
    """What the report flags: sampler problems, EM runs that hit max_iter, unmatched K.

    With one chain R-hat cannot exist: the sampler's problem line says so, once. `sampler` is
    None when NUTS was not run; `label` names the NUTS run in each line.
    """
    found = [] if sampler is None else _sampler_warnings(sampler, rows, chains, label)
    for name, run in em["runs"].items():
        if not run["converged"]:
            found.append(f"EM ({name}) stopped at the iteration limit before converging")
    if dataset.true is not None and dataset.true.n_components != n_components:
        found.append(
            f"{n_components} components fitted; the data were drawn from "
            f"{dataset.true.n_components}, so no true values are shown"
        )
    return found


def _sampler_warnings(
    sampler: dict[str, Any], rows: list[dict[str, Any]], chains: int, label: str
) -> list[str]:
    """One NUTS run's problems, each line starting with `label`.

    `rows` are the parameter rows whose R-hat belongs to this run ([] for the run under VB's
    priors, whose R-hats the rows do not hold).
    """
    found = [f"{label}: {problem}" for problem in sampler["problems"]]
    if not sampler["ok"] and not sampler["problems"]:
        found.append(f"{label}: the diagnostics report a problem")
    missing = [
        key for key, value in sampler.items() if value is None and (chains > 1 or key != "max_rhat")
    ]
    if missing:
        found.append(f"{label}: {', '.join(missing)} could not be computed (NaN)")
    undefined = [
        r["parameter"]
        for r in rows
        if r["r_hat"] is None and r["posterior_sd"] is not None and r["posterior_sd"] > 0
    ]
    if undefined and chains > 1:
        found.append(f"{label}: R-hat is undefined for {', '.join(undefined)}")
    return found


def gauss_wishart_section(results: Results, summary: Any) -> dict[str, Any]:
    """The NUTS run under VB's priors: its sizes (a share of the main run's) and diagnostics."""
    draws, tune, chains = gauss_wishart_sizes(results.settings)
    return {"draws": draws, "tune": tune, "chains": chains} | sampler_summary(
        results.idata_gauss_wishart, summary
    )


def fitted_responsibilities(results: Results) -> dict[str, np.ndarray]:
    """Each fit's responsibilities (n, K), by the name the report gives its method.

    Every EM run's, VB's q's and the NUTS posterior's membership probabilities, as run.
    """
    fitted = {f"EM ({name})": run.responsibilities for name, run in results.fits.runs.items()}
    if results.vb is not None:
        fitted["VB"] = np.exp(log_responsibilities(results.dataset.X, results.vb.posterior))
    if results.membership is not None:
        fitted["NUTS"] = results.membership
    return fitted


def mark_collapsed(rows: list[dict[str, Any]], collapsed: list[dict[str, Any]]) -> None:
    """Give each row the methods whose fit collapsed its component, as "collapsed_in"."""
    for row in rows:
        row["collapsed_in"] = [c["method"] for c in collapsed if c["component"] == row["index"][0]]


def compare(results: Results) -> dict[str, Any]:
    """Everything the report shows, as one JSON-ready dict (comparison.json)."""
    dataset, fits, idata = results.dataset, results.fits, results.idata
    fitted = fitted_responsibilities(results)
    collapse = collapse_section(dataset.X, dataset.dim_coords, fitted)
    k = fits.reference_run.parameters.n_components
    summary = None if idata is None else arviz_summary(idata)
    gw_idata = results.idata_gauss_wishart
    gw_summary = None if gw_idata is None else arviz_summary(gw_idata)
    vb_draws = (
        None if results.vb is None else draw_summary(results.vb.draws(results.settings.random_seed))
    )
    em = em_summary(fits)
    sampler = None if idata is None else sampler_summary(idata, summary)
    gauss_wishart = None if gw_idata is None else gauss_wishart_section(results, gw_summary)
    rows = parameter_rows(dataset, fits, summary, results.uncertainty, vb_draws, gw_summary)
    mark_collapsed(rows, collapse["collapsed"])
    chains = 0 if idata is None else int(idata.posterior.sizes["chain"])
    found = collapse["warnings"] + warnings_for(em, sampler, rows, dataset, k, chains)
    if gauss_wishart is not None:
        # What both runs share (a single chain's missing R-hat) is said once, for the main run.
        shared = set(sampler["problems"]) if sampler is not None else set()
        own = [p for p in gauss_wishart["problems"] if p not in shared]
        ok = gauss_wishart["ok"] or (not own and bool(gauss_wishart["problems"]))
        found += _sampler_warnings(
            gauss_wishart | {"problems": own, "ok": ok}, [], chains, "sampler (VB's priors)"
        )
    if results.vb is not None and not results.vb.converged:
        found.append("VB stopped at the iteration limit before its ELBO converged")
    return {
        "dataset": {
            "name": dataset.name,
            "description": dataset.description,
            "n_points": dataset.n_points,
            "n_features": dataset.n_features,
            "names": dataset.dim_coords,
            "header": None if dataset.header is None else dataset.header.as_dict(),
            "labels_known": dataset.labels is not None,
        },
        "settings": results.settings.as_dict()
        | {"interval_prob": INTERVAL_PROB, "interval": "eti"},
        "methods": list(results.settings.methods),
        "parameters": rows,
        "accuracy": accuracy_summary(dataset, fits, results.membership, fitted.get("VB")),
        "collinear_columns": collapse["collinear_columns"],
        "collapsed": collapse["collapsed"],
        "em": em,
        "em_uncertainty": uncertainty_summary(results.uncertainty),
        "vb": None if results.vb is None else vb_summary(results.vb),
        "sampler": sampler,
        "gauss_wishart_sampler": gauss_wishart,
        "warnings": found + list(results.uncertainty.problems),
    }
