"""The whole run and the report folder: results saved, tables, figures, summary.md, index.html.

A report folder holds the saved results (`posterior.nc`, `em.json`, `data.csv`), from which
`rebuild` makes everything else again without sampling: `comparison.json`, `figures/*.png`,
`summary.md` and a self-contained `index.html` (figures embedded as base64 PNG).
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.compare import Settings, compare, membership_probabilities
from analysis.datasets import Dataset, read_csv, to_csv
from analysis.files import dumps
from analysis.fitting import EMFits, fit_em
from em_reference import MixtureParameters

POSTERIOR_FILE = "posterior.nc"
EM_FILE = "em.json"
DATA_FILE = "data.csv"
SAVED_FILES = (POSTERIOR_FILE, EM_FILE, DATA_FILE)
REPORT_NAMES = frozenset({*SAVED_FILES, "comparison.json", "summary.md", "index.html", "figures"})
"""What a report folder holds: one written before folders carried a manifest is known by it."""
SIGMA = "\N{GREEK SMALL LETTER SIGMA}"
DASH = "\N{EN DASH}"  # an unknown value in a table
TIMES = "\N{MULTIPLICATION SIGN}"
FIGURE_CAPTIONS = {
    "data": "The data, coloured by the component each point was drawn from.",
    "em_clusters": f"EM's clustering with each component's 1{SIGMA} (solid) and 2{SIGMA} "
    "(dashed) ellipse.",
    "posterior_clusters": "Posterior clustering (most probable component of each point) with "
    "ellipses from a spread of posterior draws: their scatter is the "
    "uncertainty EM's single estimate does not show.",
    "misclassified": "Points whose EM or posterior label differs from the truth, and points "
    "whose posterior membership is uncertain (top probability < 0.9).",
    "em_convergence": "EM's total log-likelihood by iteration (top) and its distance to the "
    "final value on a log scale (bottom).",
    "forest": "Posterior means and 94 % intervals of every parameter, with EM's estimate (x) "
    "and the true value (◇) where known.",
    "trace": "Trace plot: marginal posterior of each weight and mean coordinate per chain "
    "(left) and the draws in order (right).",
    "rank": "Rank plots: the difference between each chain's rank ECDF and a uniform one; "
    "curves near zero mean the chains agree, a small p flags a chain that differs.",
    "ppc": "Posterior predictive check: the density of each coordinate, observed (black) "
    "against data sets replicated from the posterior (blue).",
}


@dataclass(frozen=True)
class Results:
    """Everything a report is made from: the data, the EM runs, the posterior, the settings."""

    dataset: Dataset
    fits: EMFits
    idata: Any
    settings: Settings


# ---------------------------------------------------------------------------------------------
# Running and saving


def run_em(dataset: Dataset, settings: Settings) -> EMFits:
    """Both EM runs on the dataset, in the common component order."""
    return fit_em(dataset, settings.n_components, settings.seed)


def run_sampler(dataset: Dataset, fits: EMFits, settings: Settings, progressbar: bool) -> Any:
    """NUTS on the Bayesian twin, labelled like the reference EM run."""
    from models import build_model, sample_posterior

    model = build_model(dataset.X, n_components=settings.n_components)
    return sample_posterior(
        model,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        random_seed=settings.seed,
        reference=fits.best.estimator(),
        progressbar=progressbar,
    )


def run_all(dataset: Dataset, settings: Settings, progressbar: bool) -> Results:
    """EM then NUTS: the expensive part of a comparison."""
    fits = run_em(dataset, settings)
    return Results(dataset, fits, run_sampler(dataset, fits, settings, progressbar), settings)


def _parameters_or_none(params: MixtureParameters | None) -> dict[str, list] | None:
    """A parameter set as JSON lists, or None."""
    return None if params is None else params.as_dict()


def em_document(dataset: Dataset, fits: EMFits, settings: Settings) -> dict[str, Any]:
    """The contents of em.json: the dataset's known values, the settings and the EM runs."""
    return {
        "dataset": {
            "name": dataset.name,
            "description": dataset.description,
            "true": _parameters_or_none(dataset.true),
            "initial": _parameters_or_none(dataset.initial),
            "published": _parameters_or_none(dataset.published),
            "published_accuracy": dataset.published_accuracy,
        },
        "settings": asdict(settings),
        "em": fits.as_dict(),
    }


def check_complete(idata: Any, settings: Settings) -> None:
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


def save_results(results: Results, folder: Path) -> None:
    """Write posterior.nc, em.json and data.csv into folder (a complete posterior only)."""
    from models import save_posterior

    check_complete(results.idata, results.settings)
    (folder / DATA_FILE).write_text(to_csv(results.dataset), encoding="utf-8")
    document = em_document(results.dataset, results.fits, results.settings)
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
        fits = EMFits.from_dict(document["em"])
        settings = Settings(**document["settings"])
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{str(folder / EM_FILE)!r} is not a gmm-compare EM file: {error}"
        ) from None
    from models import load_posterior

    try:
        idata = load_posterior(folder / POSTERIOR_FILE)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {str(folder / POSTERIOR_FILE)!r}: {error}") from None
    results = Results(dataset, fits, idata, settings)
    check_consistent(results, folder)
    return results


def check_consistent(results: Results, folder: Path) -> None:
    """ValueError naming the mismatch unless data.csv, em.json and posterior.nc belong together."""
    from models import OBSERVED

    posterior = results.idata.posterior
    k_post, d_post = (int(posterior.sizes[dim]) for dim in ("component", "dim"))
    fits = {name: run.parameters for name, run in results.fits.runs.items()}
    n, d = results.dataset.X.shape
    problems = [
        f"{EM_FILE} run {name!r} has K = {p.n_components}, D = {p.n_features}"
        for name, p in fits.items()
        if (p.n_components, p.n_features) != (k_post, d_post)
    ]
    if results.settings.n_components != k_post:
        problems.append(f"{EM_FILE} settings have K = {results.settings.n_components}")
    if d != d_post:
        problems.append(f"{DATA_FILE} has D = {d}")
    if "observed_data" in results.idata.children:
        observed = np.asarray(results.idata.observed_data[OBSERVED])
        if observed.shape != (n, d):
            problems.append(f"{DATA_FILE} has {n} points of D = {d}, not {observed.shape[0]}")
        elif not np.array_equal(observed, results.dataset.X):
            problems.append(f"{DATA_FILE} holds other points than the ones sampled on")
    if problems:
        raise ValueError(
            f"the saved results in {str(folder)!r} do not belong together: {POSTERIOR_FILE} "
            f"has K = {k_post}, D = {d_post}, but " + "; ".join(problems)
        )


def _dataset_from(values: dict[str, Any], data: Dataset) -> Dataset:
    """The saved data with the name and known parameters recorded in em.json."""

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
    )


# ---------------------------------------------------------------------------------------------
# Writing the report


def write_report(results: Results, folder: Path) -> dict[str, Any]:
    """comparison.json, figures, summary.md and index.html into folder; returns the comparison."""
    from analysis.figures import draw_all

    probabilities = membership_probabilities(results.idata)
    comparison = compare(
        results.dataset, results.fits, results.idata, results.settings, probabilities
    )
    (folder / "comparison.json").write_text(dumps(comparison), encoding="utf-8")
    figures = draw_all(
        results.dataset, results.fits, results.idata, probabilities, comparison, folder / "figures"
    )
    sections = build_sections(comparison)
    (folder / "summary.md").write_text(
        render_markdown(comparison, sections, figures), encoding="utf-8"
    )
    (folder / "index.html").write_text(render_html(comparison, sections, figures), encoding="utf-8")
    return comparison


# ---------------------------------------------------------------------------------------------
# Tables: one model, rendered as Markdown and as HTML


@dataclass(frozen=True)
class Table:
    """A titled table of preformatted cells, with notes printed under it."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str]


def _num(value: float | None, digits: int = 3) -> str:
    """A number with fixed decimals, or an en dash when unknown."""
    return DASH if value is None else f"{value:.{digits}f}"


def _yes(value: bool | None) -> str:
    """Yes / no / en dash."""
    return DASH if value is None else ("yes" if value else "NO")


def parameter_section(comparison: dict[str, Any]) -> Table:
    """The point-estimate table."""
    runs = list(comparison["em"]["runs"])
    reference = comparison["em"]["reference"]
    headers = [
        "parameter",
        "true",
        "published",
        *[f"EM ({r})" for r in runs],
        "posterior mean",
        "posterior SD",
        "94 % interval",
        "EM inside",
        "true inside",
        "R-hat",
    ]
    rows = [
        [
            r["parameter"],
            _num(r["true"]),
            _num(r["published"]),
            *[_num(r["em"][run]) for run in runs],
            _num(r["posterior_mean"]),
            _num(r["posterior_sd"]),
            f"[{_num(r['interval_low'])}, {_num(r['interval_high'])}]",
            _yes(r["em_inside"]),
            _yes(r["true_inside"]),
            _num(r["r_hat"]),
        ]
        for r in comparison["parameters"]
    ]
    inside = sum(bool(r["true_inside"]) for r in comparison["parameters"])
    known = sum(r["true"] is not None for r in comparison["parameters"])
    notes = [
        f"94 % equal-tailed posterior intervals; 'EM inside' tests the {reference} run; "
        "covariance entries are listed once (i ≤ j)."
    ]
    notes.append(
        f"The true value lies inside the interval for {inside} of {known} parameters."
        if known
        else "True values are unknown for this dataset."
    )
    return Table("Point estimates", headers, rows, notes)


def accuracy_sections(comparison: dict[str, Any]) -> list[Table]:
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


def em_convergence_section(comparison: dict[str, Any]) -> Table:
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
            "Stops when the total log-likelihood improves by less than 1e-5, "
            "or after 100 iterations."
        ],
    )


MASS_MATRIX_NAMES = {"full": "dense", "diag": "diagonal"}


def sampler_section(comparison: dict[str, Any]) -> Table:
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
        ["max R-hat", _num(s["max_rhat"], 4)],
        ["min bulk ESS", _num(s["min_ess_bulk"], 0)],
        ["min tail ESS", _num(s["min_ess_tail"], 0)],
        ["sampling time (s)", _num(s["sampling_seconds"], 1)],
        ["compile time (s)", _num(s["compile_seconds"], 1)],
        ["verdict", "fine" if s["ok"] else "PROBLEMS: " + "; ".join(s["problems"])],
    ]
    return Table("Sampler diagnostics", ["diagnostic", "value"], rows, [])


def build_sections(comparison: dict[str, Any]) -> list[Table]:
    """Every table of the report, in order."""
    return [
        parameter_section(comparison),
        *accuracy_sections(comparison),
        em_convergence_section(comparison),
        sampler_section(comparison),
    ]


def _heading(comparison: dict[str, Any]) -> tuple[str, str]:
    """The report's title and one line describing the data and the settings."""
    d = comparison["dataset"]
    s = comparison["settings"]
    title = f"EM and NUTS on {d['name']}"
    line = (
        f"{d['description']}. n = {d['n_points']}, D = {d['n_features']}, "
        f"K = {s['n_components']}; seed {s['seed']}."
    )
    return title, line


def render_markdown(
    comparison: dict[str, Any], sections: list[Table], figures: dict[str, Path]
) -> str:
    """summary.md: warnings, every table, links to the figures."""
    title, line = _heading(comparison)
    out = [f"# {title}", "", line, ""]
    if comparison["warnings"]:
        out += ["> **WARNING**", *[f"> - {w}" for w in comparison["warnings"]], ""]
    else:
        out += [
            "All diagnostics are fine: no divergences, R-hat and ESS within limits, EM converged.",
            "",
        ]
    for table in sections:
        out += [
            f"## {table.title}",
            "",
            "| " + " | ".join(table.headers) + " |",
            "|" + "---|" * len(table.headers),
        ]
        out += ["| " + " | ".join(row) + " |" for row in table.rows]
        out += ["", *[f"{note}" for note in table.notes], ""] if table.notes else [""]
    out += ["## Figures", ""]
    for name, path in figures.items():
        out += [f"![{FIGURE_CAPTIONS[name]}](figures/{path.name})", "", FIGURE_CAPTIONS[name], ""]
    return "\n".join(out)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 0.3em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td { white-space: nowrap; } .scroll { overflow-x: auto; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
td.bad { color: #b00; font-weight: bold; }
.warning { background: #fde8e8; border: 2px solid #c00; padding: 0.6em 1em; margin: 1em 0; }
.ok { background: #e8f6e8; border: 1px solid #4a4; padding: 0.6em 1em; margin: 1em 0; }
.note { color: #555; font-size: 0.9em; margin: 0 0 1em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.9em; }
"""


def _html_table(table: Table) -> str:
    """One table as HTML, with NO / PROBLEMS cells highlighted."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="bad">{html.escape(c)}</td>'
            if c.startswith(("NO", "PROBLEMS"))
            else f"<td>{html.escape(c)}</td>"
            for c in row
        )
        + "</tr>"
        for row in table.rows
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in table.notes)
    return (
        f'<h2>{html.escape(table.title)}</h2><div class="scroll"><table><thead><tr>{head}</tr>'
        f"</thead><tbody>{body}</tbody></table></div>{notes}"
    )


def _embedded(path: Path) -> str:
    """A PNG as a data: URI, so index.html needs no other file."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(comparison: dict[str, Any], sections: list[Table], figures: dict[str, Path]) -> str:
    """index.html: self-contained (inline style, embedded figures)."""
    title, line = _heading(comparison)
    if comparison["warnings"]:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in comparison["warnings"])
        banner = f'<div class="warning"><strong>⚠ Warning</strong><ul>{items}</ul></div>'
    else:
        banner = (
            '<div class="ok">All diagnostics are fine: no divergences, R-hat and ESS '
            "within limits, EM converged.</div>"
        )
    tables = "".join(_html_table(t) for t in sections)
    figs = "".join(
        f'<figure><img src="{_embedded(path)}" alt="{html.escape(name)}">'
        f"<figcaption>{html.escape(FIGURE_CAPTIONS[name])}</figcaption></figure>"
        for name, path in figures.items()
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(line)}</p>{banner}{tables}"
        f"<h2>Figures</h2>{figs}</body></html>\n"
    )


def headline(comparison: dict[str, Any]) -> list[str]:
    """The few lines the command prints after a run."""
    acc = comparison["accuracy"]["methods"]
    em = comparison["em"]
    lines = [
        f"{comparison['dataset']['name']}: n = {comparison['dataset']['n_points']}, "
        f"D = {comparison['dataset']['n_features']}, K = {comparison['settings']['n_components']}"
    ]
    for name, run in em["runs"].items():
        accuracy = acc[name]["accuracy"]
        shown = "labels unknown" if accuracy is None else f"accuracy {accuracy:.1%}"
        lines.append(
            f"EM ({name}): {run['n_iter']} iterations, log-likelihood "
            f"{run['log_likelihood']:.4f}, {shown}"
        )
    post = acc["posterior"]
    shown = "labels unknown" if post["accuracy"] is None else f"accuracy {post['accuracy']:.1%}"
    lines.append(f"posterior: {shown}, {post['uncertain']} uncertain points")
    inside = [r["true_inside"] for r in comparison["parameters"] if r["true_inside"] is not None]
    if inside:
        lines.append(
            f"true value inside the 94 % interval for {sum(inside)} of {len(inside)} parameters"
        )
    s = comparison["sampler"]
    lines.append(
        f"sampler: {s['divergences']} divergences, max R-hat {_num(s['max_rhat'], 3)}, "
        f"min bulk ESS {_num(s['min_ess_bulk'], 0)}"
    )
    lines += [f"WARNING: {w}" for w in comparison["warnings"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    """`python -m analysis.report [NAME] [--out DIR]`: the same as `gmm-compare report`."""
    from analysis.cli import main as cli_main

    return cli_main(["report", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
