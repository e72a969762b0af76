"""The report's tables: one `Table` value per table, built from the comparison dict.

Markdown and HTML are rendered from these (`analysis.render`), so both show the same cells.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from analysis.settings import EM_MAX_ITER, EM_TOL, interval_percent

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
    """The point-estimate table: truth, published, EM runs, posterior and EM's SEs, per scalar."""
    runs = list(comparison["em"]["runs"])
    reference = comparison["em"]["reference"]
    headers = [
        "parameter",
        "true",
        "published",
        *[f"EM ({r})" for r in runs],
        "posterior mean",
        "posterior SD",
        f"{interval_percent()} interval",
        "EM SE",
        f"EM {interval_percent()} Wald",
        f"EM {interval_percent()} bootstrap",
        "EM inside",
        "true inside",
        "R-hat",
    ]
    rows = [
        [
            r["parameter"],
            format_number(r["true"]),
            format_number(r["published"]),
            *[format_number(r["em"][run]) for run in runs],
            format_number(r["posterior_mean"]),
            format_number(r["posterior_sd"]),
            _interval(r["interval_low"], r["interval_high"]),
            format_number(r["em_se"]),
            _interval(r["em_wald_low"], r["em_wald_high"]),
            _interval(r["em_bootstrap_low"], r["em_bootstrap_high"]),
            _yes(r["em_inside"]),
            _yes(r["true_inside"]),
            format_number(r["r_hat"]),
        ]
        for r in comparison["parameters"]
    ]
    inside = sum(bool(r["true_inside"]) for r in comparison["parameters"])
    known = sum(r["true"] is not None for r in comparison["parameters"])
    notes = [
        f"{interval_percent()} equal-tailed posterior intervals; 'EM inside' tests the "
        f"{reference} run; covariance entries are listed once (i ≤ j).",
        _bootstrap_note(comparison),
    ]
    notes.append(
        f"The true value lies inside the interval for {inside} of {known} parameters."
        if known
        else "True values are unknown for this dataset."
    )
    return Table("Point estimates", headers, rows, notes)


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
        label = "posterior" if name == "posterior" else f"EM ({name})"
        correct = DASH if m["correct"] is None else f"{m['correct']} of {n}"
        accuracy = DASH if m["accuracy"] is None else f"{m['accuracy']:.1%}"
        rows.append(
            [label, correct, accuracy, str(m["uncertain"]), " / ".join(str(c) for c in m["counts"])]
        )
    notes = [
        "Uncertain: EM responsibility or posterior membership probability of the most "
        "probable component below the threshold."
    ]
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


def _confusion_table(name: str, confusion: list[list[int]]) -> Table:
    """A confusion matrix: rows are true components, columns estimated ones."""
    label = "posterior" if name == "posterior" else f"EM ({name})"
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


MASS_MATRIX_NAMES = {"full": "dense", "diag": "diagonal"}


def sampler_table(comparison: dict[str, Any]) -> Table:
    """The NUTS diagnostics, with a verdict."""
    s = comparison["sampler"]
    settings = comparison["settings"]
    rows = [
        [
            f"chains {TIMES} draws (tuning)",
            f"{settings['chains']} {TIMES} {settings['draws']} ({settings['tune']})",
        ],
        [
            "mass matrix (adapted while tuning)",
            MASS_MATRIX_NAMES.get(s.get("mass_matrix", ""), "not recorded"),
        ],
        ["divergences", str(s["divergences"])],
        ["max R-hat", format_number(s["max_rhat"], 4)],
        ["min bulk ESS", format_number(s["min_ess_bulk"], 0)],
        ["min tail ESS", format_number(s["min_ess_tail"], 0)],
        ["sampling time (s)", format_number(s["sampling_seconds"], 1)],
        ["compile time (s)", format_number(s["compile_seconds"], 1)],
        ["verdict", "fine" if s["ok"] else "PROBLEMS: " + "; ".join(s["problems"])],
    ]
    return Table("Sampler diagnostics", ["diagnostic", "value"], rows, [])


def build_tables(comparison: dict[str, Any]) -> list[Table]:
    """Every table of the report, in order."""
    return [
        point_estimates_table(comparison),
        se_ratio_table(comparison),
        *accuracy_tables(comparison),
        em_convergence_table(comparison),
        sampler_table(comparison),
    ]
