"""The `select` report folder: the table of every criterion per K, the figure, the choices.

Written like the main report (built aside, moved into place whole, manifest): `selection.json`
(the `--json` document), `criteria.png`, `summary.md` and a self-contained `index.html`.
"""

from __future__ import annotations

import html
from pathlib import Path

from analysis.render import STYLE, embedded_png, html_table, markdown_table
from analysis.selection import SelectionResult, plot_selection
from analysis.tables import DASH, Table, format_number

CHOICE_NAMES = {"bic": "EM's BIC", "icl": "EM's ICL", "elbo": "VB's ELBO", "loo": "NUTS's PSIS-LOO"}


def _cell(value: float | int | None, digits: int = 1) -> str:
    """A number with `digits` decimals, or an en dash where the method was not run."""
    if value is None:
        return DASH
    return str(value) if isinstance(value, int) else format_number(value, digits)


def selection_table(result: SelectionResult) -> Table:
    """One row per K: every criterion, the NUTS diagnostics and the problems found."""
    headers = [
        "K",
        "log L",
        "BIC",
        "ICL",
        "ELBO",
        "VB components",
        "elpd_loo ± SE",
        "elpd diff ± SE",
        "Pareto k > 0.7",
        "max R-hat",
        "divergences",
        "relabelled draws",
        "problems",
    ]
    rows = []
    for row in result.rows:
        loo = DASH if row.elpd_loo is None else f"{row.elpd_loo:.1f} ± {row.elpd_loo_se:.1f}"
        diff = DASH if row.elpd_diff is None else f"{row.elpd_diff:.1f} ± {row.elpd_diff_se:.1f}"
        problems = "; ".join(row.problems)
        rows.append(
            [
                str(row.k),
                _cell(row.log_likelihood),
                _cell(row.bic),
                _cell(row.icl),
                _cell(row.elbo),
                _cell(row.vb_effective_components),
                loo,
                diff,
                _cell(row.pareto_k_bad),
                _cell(row.max_rhat, 3),
                _cell(row.divergences),
                _cell(row.relabelled_draws),
                f"PROBLEMS: {problems}" if problems else "",
            ]
        )
    notes = [
        "BIC = -2 log L + p log n and ICL = BIC - 2 sum_i log max_k r_ik: lower is better "
        "(mclust prints 2 log L - p log n, the same numbers with the opposite sign).",
        "ELBO: VB's lower bound on the log evidence, higher is better; VB components: expected "
        "weight above 1 %.",
        f"LOO: {result.to_dict()['loo_rule']}.",
    ]
    return Table("Every criterion against K", headers, rows, notes)


def choice_lines(result: SelectionResult) -> list[str]:
    """Each method's chosen K, and the sentence that says why they differ (if they do)."""
    lines = [
        f"{label}: K = {getattr(result.choice, key)}"
        for key, label in CHOICE_NAMES.items()
        if getattr(result.choice, key) is not None
    ]
    return [*lines, result.disagreement or "Every criterion that was run chooses the same K."]


def write_selection_report(result: SelectionResult, folder: Path, name: str) -> None:
    """selection.json, criteria.png, summary.md and index.html into folder (a staging folder)."""
    (folder / "selection.json").write_text(result.to_json() + "\n", encoding="utf-8")
    figure = plot_selection(result, folder / "criteria.png")
    table = selection_table(result)
    title = f"Choosing K on {name}"
    choices = choice_lines(result)
    markdown = [f"# {title}", "", *[f"- {line}" for line in choices], ""]
    markdown += [f"## {table.title}", "", *markdown_table(table)]
    markdown += ["", *table.notes, "", "![every criterion against K](criteria.png)", ""]
    (folder / "summary.md").write_text("\n".join(markdown), encoding="utf-8")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in choices)
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><ul>{items}</ul>{html_table(table)}"
        f'<figure><img src="{embedded_png(figure)}" alt="every criterion against K">'
        "<figcaption>Every criterion against K, one panel per method; the chosen K is starred."
        "</figcaption></figure></body></html>\n"
    )
    (folder / "index.html").write_text(page, encoding="utf-8")
