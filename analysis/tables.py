"""The report's tables: one `Table` value per table, built from the comparison dict.

Markdown and HTML are rendered from these (`analysis.render`), so both show the same cells.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from analysis.settings import (
    EM_MAX_ITER,
    EM_TOL,
    GAUSS_WISHART_SHARE,
    VB_DRAWS,
    interval_percent,
)

DASH = "\N{EN DASH}"  # an unknown value in a table
TIMES = "\N{MULTIPLICATION SIGN}"
SE_RATIO_AGREES = 1.25
"""EM SE / posterior SD between 1 / this and this is read as agreement about the uncertainty."""
GROUPS = ("weights", "means", "covariances")


@dataclass(frozen=True)
class Table:
    """A titled table of preformatted cells, with notes printed under it."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str]


def _short(value: float) -> str:
    """A float in its shortest form with a plain exponent: 1e-05 -> '1e-5'."""
    mantissa, _, exponent = f"{value:g}".partition("e")
    return mantissa if not exponent else f"{mantissa}e{int(exponent)}"


def format_number(value: float | None, digits: int = 3) -> str:
    """A number with fixed decimals, or an en dash when unknown."""
    return DASH if value is None else f"{value:.{digits}f}"


def shown_name(row: dict[str, Any]) -> str:
    """A parameter row's name as tables and figures show it, K = 1's weight marked as fixed."""
    return row["parameter"] + (" (fixed at 1)" if row["fixed"] else "")


def _yes(value: bool | None) -> str:
    """Yes / no / en dash."""
    return DASH if value is None else ("yes" if value else "NO")


def _interval(low: float | None, high: float | None) -> str:
    """'[low, high]', or an en dash when the interval is unknown."""
    if low is None or high is None:
        return DASH
    return f"[{format_number(low)}, {format_number(high)}]"


def _bootstrap_note(comparison: dict[str, Any]) -> str:
    """How EM's SEs and intervals were computed, with the bootstrap's counts."""
    u = comparison["em_uncertainty"]
    reference = comparison["em"]["reference"]
    text = (
        f"EM SE: delta-method standard error of the {reference} run from the observed "
        f"information; EM {interval_percent()} Wald: formed on the logit scale for weights and "
        "the log scale for variances, so they stay in range. "
    )
    if u["n_boot"] == 0:
        return text + "The bootstrap was turned off (--bootstrap 0)."
    return text + (
        f"EM {interval_percent()} bootstrap: percentile interval of {u['n_boot']} nonparametric "
        f"replicates, each refitted by EM from the estimate ({u['n_failed']} failed, "
        f"{u['n_relabelled']} relabelled, {u['n_unconverged']} hit the iteration limit)."
    )


def point_estimates_table(comparison: dict[str, Any]) -> Table:
    """The point-estimate table: truth, published, EM runs and SEs, NUTS and VB, per scalar.

    The NUTS and VB columns are there when the method was run.
    """
    runs = list(comparison["em"]["runs"])
    reference = comparison["em"]["reference"]
    nuts = comparison["sampler"] is not None
    vb = comparison.get("vb") is not None
    percent = interval_percent()
    headers = ["parameter", "true", "published", *[f"EM ({r})" for r in runs]]
    if nuts:
        headers += ["posterior mean", "posterior SD", f"{percent} interval"]
    if vb:
        headers += ["VB mean", "VB SD", f"VB {percent} interval"]
    headers += ["EM SE", f"EM {percent} Wald", f"EM {percent} bootstrap"]
    if nuts:
        headers += ["EM inside", "true inside", "R-hat"]
    rows = []
    for r in comparison["parameters"]:
        row = [
            shown_name(r),
            format_number(r["true"]),
            format_number(r["published"]),
            *[format_number(r["em"][run]) for run in runs],
        ]
        if nuts:
            row += [
                format_number(r["posterior_mean"]),
                format_number(r["posterior_sd"]),
                _interval(r["interval_low"], r["interval_high"]),
            ]
        if vb:
            row += [
                format_number(r["vb_mean"]),
                format_number(r["vb_sd"]),
                _interval(r["vb_low"], r["vb_high"]),
            ]
        row += [
            format_number(r["em_se"]),
            _interval(r["em_wald_low"], r["em_wald_high"]),
            _interval(r["em_bootstrap_low"], r["em_bootstrap_high"]),
        ]
        if nuts:
            row += [_yes(r["em_inside"]), _yes(r["true_inside"]), format_number(r["r_hat"])]
        rows.append(row)
    notes = [
        f"{percent} equal-tailed posterior intervals; 'EM inside' tests the {reference} run; "
        "covariance entries are listed once (i ≤ j)."
        if nuts
        else f"Covariance entries are listed once (i ≤ j); no NUTS ({_methods(comparison)}).",
        _bootstrap_note(comparison),
    ]
    if vb:
        notes.append(_vb_note(comparison))
    if nuts:
        inside = sum(bool(r["true_inside"]) for r in comparison["parameters"])
        known = sum(r["true"] is not None for r in comparison["parameters"])
        notes.append(
            f"The true value lies inside the interval for {inside} of {known} parameters."
            if known
            else "True values are unknown for this dataset."
        )
    return Table("Point estimates", headers, rows, notes)


def _methods(comparison: dict[str, Any]) -> str:
    """The methods run, as --methods takes them."""
    return "--methods " + ",".join(comparison["settings"]["methods"])


def _vb_note(comparison: dict[str, Any]) -> str:
    """How VB's columns were computed, and under which priors."""
    vb = comparison["vb"]
    return (
        f"VB: mean-field q fitted by CAVI from {vb['start']}, under {vb['prior_source']}; "
        f"its mean, SD and equal-tailed {interval_percent()} interval are those of "
        f"{VB_DRAWS:,} independent draws from q (its marginals)."
    )


def se_ratio_table(comparison: dict[str, Any]) -> Table:
    """EM SE / posterior SD by parameter group (range, median, largest departure), read aloud."""
    rows_by_group = {
        group: [r for r in comparison["parameters"] if r["group"] == group and r["se_ratio"]]
        for group in GROUPS
    }
    headers = ["parameters", "count", "smallest", "median", "largest", "largest departure"]
    rows = []
    for group, rows_in in rows_by_group.items():
        if not rows_in:
            continue
        ratios = sorted(r["se_ratio"] for r in rows_in)
        worst = _largest_departure(rows_in)
        rows.append(
            [
                group,
                str(len(ratios)),
                format_number(ratios[0], 2),
                format_number(statistics.median(ratios), 2),
                format_number(ratios[-1], 2),
                f"{worst['parameter']} ({format_number(worst['se_ratio'], 2)})",
            ]
        )
    known = [r for group_rows in rows_by_group.values() for r in group_rows]
    return Table("EM standard error / posterior SD", headers, rows, [se_ratio_sentence(known)])


def _largest_departure(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row whose EM SE / posterior SD is furthest from 1 on a log scale."""
    return max(rows, key=lambda r: abs(math.log(r["se_ratio"])))


def se_ratio_sentence(rows: list[dict[str, Any]]) -> str:
    """One sentence reading the ratios of the rows that have one."""
    if not rows:
        return (
            "EM's standard errors are unknown for this run (see the warnings), so EM and the "
            "posterior cannot be compared on how sure they are."
        )
    worst = _largest_departure(rows)
    ratio = worst["se_ratio"]
    if 1 / SE_RATIO_AGREES <= ratio <= SE_RATIO_AGREES:
        return (
            f"EM's information standard errors are within a factor {SE_RATIO_AGREES} of the "
            f"posterior SDs for all {len(rows)} parameters (furthest: {worst['parameter']}, "
            f"{ratio:.2f}): maximum likelihood and the posterior agree about how uncertain each "
            "parameter is, as they should asymptotically."
        )
    apart = sum(not 1 / SE_RATIO_AGREES <= r["se_ratio"] <= SE_RATIO_AGREES for r in rows)
    sure = "surer" if ratio < 1 else "less sure"
    return (
        f"{apart} of {len(rows)} EM standard errors differ from the posterior SD by more than a "
        f"factor {SE_RATIO_AGREES}; the furthest, {worst['parameter']}, is {ratio:.2f} times "
        f"it, so EM is {sure} of it than the posterior: the asymptotic agreement of the two "
        "does not hold there at this sample size (the prior or a non-normal likelihood matters)."
    )


def vb_ratio_table(comparison: dict[str, Any]) -> Table:
    """VB SD / NUTS SD under the same (VB's) priors per parameter, with its Monte Carlo error."""
    gw = comparison["gauss_wishart_sampler"]
    headers = [
        "parameter",
        "VB mean",
        "NUTS mean (VB's priors)",
        "VB SD",
        "NUTS SD (VB's priors)",
        f"VB SD / NUTS SD {PLUS_MINUS} MC error",
        "NUTS SD (default priors)",
    ]
    rows = [
        [
            r["parameter"],
            format_number(r["vb_mean"]),
            format_number(r["gauss_wishart_mean"]),
            format_number(r["vb_sd"]),
            format_number(r["gauss_wishart_sd"]),
            _ratio(r["vb_sd_ratio"], r["vb_sd_ratio_mcse"]),
            format_number(r["posterior_sd"]),
        ]
        for r in comparison["parameters"]
    ]
    notes = [
        f"VB's priors, and NUTS's in this table: {comparison['vb']['prior_source']}; the VB fit "
        "table lists them.",
        ratio_sentence(comparison["parameters"]),
        "VB against NUTS on the same model and priors measures VB's approximation error only; "
        "the two NUTS runs side by side (default priors against VB's) show the priors' "
        "influence.",
        f"NUTS under VB's priors: {gw['chains']} chains {TIMES} {gw['draws']} draws after "
        f"{gw['tune']} tuning steps{gauss_wishart_share_note()}; the MC error combines both "
        "SDs' Monte Carlo errors (ArviZ's mcse_sd for NUTS, "
        f"the spread of the SD over {VB_DRAWS:,} independent draws for VB).",
    ]
    return Table("VB SD / NUTS SD under the same priors", headers, rows, notes)


def gauss_wishart_share_note() -> str:
    """How the run under VB's priors is sized against the main run, for the ratio table's notes."""
    if GAUSS_WISHART_SHARE == 1:
        return " (as the main run)"
    return f" (1/{GAUSS_WISHART_SHARE} of the main run's, to keep the job short)"


PLUS_MINUS = "\N{PLUS-MINUS SIGN}"


def _ratio(ratio: float | None, error: float | None) -> str:
    """'0.93 ± 0.02', or an en dash when unknown."""
    if ratio is None:
        return DASH
    return f"{ratio:.3f} {PLUS_MINUS} {format_number(error, 3)}"


def trusted_ratios(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The rows whose VB SD / NUTS SD measures VB, and a clause on those left out ('' if none).

    A collapsed component's SDs are the covariance floor's or the prior's, not the data's
    (`analysis.collapse`), so its ratios, often 0 or in the millions, are left out of summaries.
    """
    known = [r for r in rows if r["vb_sd_ratio"] is not None]
    trusted = [r for r in known if not r["collapsed_in"]]
    left = [r for r in known if r["collapsed_in"]]
    if not left:
        return trusted, ""
    components = sorted({r["index"][0] for r in left})
    methods = sorted({m for r in left for m in r["collapsed_in"]})
    return trusted, (
        f"{len(left)} ratio(s) of collapsed component(s) {', '.join(map(str, components))} "
        f"(in {', '.join(methods)}) left out"
    )


def ratio_sentence(rows: list[dict[str, Any]]) -> str:
    """One sentence on how much VB understates the spread: the ratios' range and median."""
    known, left_out = trusted_ratios(rows)
    if not known:
        return f"VB SD / NUTS SD could not be computed ({left_out or 'a posterior SD is zero'})."
    ratios = sorted(r["vb_sd_ratio"] for r in known)
    smallest = min(known, key=lambda r: r["vb_sd_ratio"])
    above = sum(r["vb_sd_ratio"] - 2 * r["vb_sd_ratio_mcse"] > 1 for r in known)
    return (
        f"VB SD / NUTS SD ranges from {ratios[0]:.3f} ({smallest['parameter']}) to "
        f"{ratios[-1]:.3f}, median {statistics.median(ratios):.3f}, over {len(ratios)} "
        f"parameters; {above} {'is' if above == 1 else 'are'} above 1 by more than twice "
        "its Monte Carlo error (mean-field VB is expected to understate the spread, never to "
        f"overstate it).{f' {left_out}.' if left_out else ''}"
    )


def vb_fit_table(comparison: dict[str, Any]) -> Table:
    """VB's priors, start, iterations, convergence and final ELBO."""
    vb = comparison["vb"]
    priors = vb["priors"]
    rows = [
        ["priors", vb["prior_source"]],
        ["alpha_0 (weight_concentration_prior)", _plain(priors["weight_concentration_prior"])],
        ["beta_0 (mean_precision_prior)", _plain(priors["mean_precision_prior"])],
        ["m_0 (mean_prior)", _plain(priors["mean_prior"])],
        ["nu_0 (degrees_of_freedom_prior)", _plain(priors["degrees_of_freedom_prior"])],
        ["W_0^-1 (covariance_prior)", _plain(priors["covariance_prior"])],
        ["start", vb["start"]],
        ["iterations", str(vb["n_iter"])],
        ["converged", "yes" if vb["converged"] else "NO (iteration limit)"],
        ["final ELBO (lower bound on ln p(X))", f"{vb['lower_bound']:.4f}"],
    ]
    notes = [
        "Dirichlet(alpha_0) weights; Lambda_k ~ Wishart(W_0, nu_0), "
        "mu_k | Lambda_k ~ N(m_0, (beta_0 Lambda_k)^-1) (Bishop, PRML §10.2)."
    ]
    return Table("VB fit", ["", "value"], rows, notes)


def _plain(value: Any) -> str:
    """A prior value, rounded to 4 significant digits, nested lists kept."""
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return f"{value:.4g}"


def accuracy_tables(comparison: dict[str, Any]) -> list[Table]:
    """Clustering accuracy, and one confusion matrix per method when labels are known."""
    acc = comparison["accuracy"]
    methods = acc["methods"]
    n = acc["n_points"]
    headers = [
        "method",
        "correct",
        "accuracy",
        f"uncertain (top prob. < {acc['uncertain_below']})",
        "points per component",
    ]
    rows = []
    if acc["published_accuracy"] is not None:
        p = acc["published_accuracy"]
        rows.append(["published (seed program)", f"{round(p * n)} of {n}", f"{p:.1%}", DASH, DASH])
    for name, m in methods.items():
        label = _clustering_label(name)
        correct = DASH if m["correct"] is None else f"{m['correct']} of {n}"
        accuracy = DASH if m["accuracy"] is None else f"{m['accuracy']:.1%}"
        rows.append(
            [label, correct, accuracy, str(m["uncertain"]), " / ".join(str(c) for c in m["counts"])]
        )
    shown = ["EM responsibility"]
    if "vb" in methods:
        shown.append("VB's q responsibility")
    if "posterior" in methods:
        shown.append("posterior membership probability")
    notes = [f"Uncertain: {' or '.join(shown)} of the most probable component below the threshold."]
    if not acc["labels_known"]:
        notes.insert(
            0,
            "True labels are unknown for this dataset, so accuracy and confusion "
            "matrices cannot be computed.",
        )
    tables = [Table("Clustering accuracy", headers, rows, notes)]
    if acc["labels_known"]:
        tables += [_confusion_table(name, m["confusion"]) for name, m in methods.items()]
    return tables


def _clustering_label(name: str) -> str:
    """The accuracy tables' name for a clustering: an EM run's name, "vb" or "posterior"."""
    return {"posterior": "posterior", "vb": "VB (q)"}.get(name, f"EM ({name})")


def _confusion_table(name: str, confusion: list[list[int]]) -> Table:
    """A confusion matrix: rows are true components, columns estimated ones."""
    label = _clustering_label(name)
    headers = ["true \\ estimated", *[str(k) for k in range(len(confusion[0]))]]
    rows = [[str(i), *[str(c) for c in row]] for i, row in enumerate(confusion)]
    return Table(f"Confusion matrix: {label}", headers, rows, [])


def em_convergence_table(comparison: dict[str, Any]) -> Table:
    """Iterations, convergence and log-likelihood of each EM run."""
    em = comparison["em"]
    rows = [
        [
            name + (" (reference)" if name == em["reference"] else ""),
            run["start"],
            str(run["n_iter"]),
            "yes" if run["converged"] else "NO (iteration limit)",
            f"{run['log_likelihood']:.4f}",
        ]
        for name, run in em["runs"].items()
    ]
    headers = ["run", "start", "iterations", "converged", "total log-likelihood"]
    return Table(
        "EM convergence",
        headers,
        rows,
        [
            f"Stops when the total log-likelihood improves by less than {_short(EM_TOL)}, "
            f"or after {EM_MAX_ITER} iterations."
        ],
    )


MASS_MATRIX_NAMES = {"full": "dense", "diag": "diagonal", "low-rank": "diagonal + low rank"}


def sampler_table(comparison: dict[str, Any]) -> Table:
    """The NUTS diagnostics, with a verdict; a second column for the run under VB's priors."""
    runs = [(comparison["sampler"], comparison["settings"])]
    headers = ["diagnostic", "value"]
    if comparison.get("gauss_wishart_sampler") is not None:
        gw = comparison["gauss_wishart_sampler"]
        runs.append((gw, gw))
        headers = ["diagnostic", "default priors", "VB's priors"]
    labels = [
        f"chains {TIMES} draws (tuning)",
        "NUTS, mass matrix (adapted while tuning)",
        "divergences",
        "max R-hat",
        "min bulk ESS",
        "min tail ESS",
        "sampling time (s)",
        "set-up time (s), compile included",
        "verdict",
    ]
    columns = [_sampler_column(s, sizes) for s, sizes in runs]
    rows = [[name, *cells] for name, *cells in zip(labels, *columns, strict=True)]
    return Table("Sampler diagnostics", headers, rows, [])


def _sampler_column(s: dict[str, Any], sizes: dict[str, Any]) -> list[str]:
    """One NUTS run's diagnostics as cells, in `sampler_table`'s row order."""
    return [
        f"{sizes['chains']} {TIMES} {sizes['draws']} ({sizes['tune']})",
        f"{s.get('sampler') or 'PyMC'}, "
        + MASS_MATRIX_NAMES.get(s.get("mass_matrix", ""), "mass matrix not recorded"),
        str(s["divergences"]),
        format_number(s["max_rhat"], 4),
        format_number(s["min_ess_bulk"], 0),
        format_number(s["min_ess_tail"], 0),
        format_number(s["sampling_seconds"], 1),
        format_number(s["compile_seconds"], 1),
        "fine" if s["ok"] else "PROBLEMS: " + "; ".join(s["problems"]),
    ]


def build_tables(comparison: dict[str, Any]) -> list[Table]:
    """Every table of the report, in order (those of methods not run left out)."""
    nuts = comparison["sampler"] is not None
    vb = comparison.get("vb") is not None
    tables = [point_estimates_table(comparison)]
    if nuts:
        tables.append(se_ratio_table(comparison))
    if comparison.get("gauss_wishart_sampler") is not None:
        tables.append(vb_ratio_table(comparison))
    tables += [*accuracy_tables(comparison), em_convergence_table(comparison)]
    if vb:
        tables.append(vb_fit_table(comparison))
    if nuts:
        tables.append(sampler_table(comparison))
    return tables
