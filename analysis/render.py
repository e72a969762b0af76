"""Rendering the report: summary.md, a self-contained index.html, and the headline lines.

Everything is rendered from the comparison dict and its tables; figures come as `FigureFile`
values (a PNG's path and its caption), embedded in the HTML as base64.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, NamedTuple

from analysis.settings import interval_percent
from analysis.tables import Table, format_number, trusted_ratios


class FigureFile(NamedTuple):
    """A drawn figure: the PNG's path and the caption printed under it."""

    path: Path
    caption: str


def _heading(comparison: dict[str, Any]) -> tuple[str, str]:
    """The report's title and one line describing the data and the settings."""
    d = comparison["dataset"]
    s = comparison["settings"]
    names = [name.upper() for name in comparison["settings"].get("methods", ("em", "nuts"))]
    joined = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    title = f"{joined} on {d['name']}"
    line = (
        f"{d['description']}. n = {d['n_points']}, D = {d['n_features']}, "
        f"K = {s['n_components']}; seed {s['seed']}."
    )
    return title, line


def render_markdown(
    comparison: dict[str, Any], tables: list[Table], figures: dict[str, FigureFile]
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
    for table in tables:
        out += [f"## {table.title}", "", *markdown_table(table)]
        out += ["", *[f"{note}" for note in table.notes], ""] if table.notes else [""]
    out += ["## Figures", ""]
    for figure in figures.values():
        out += [f"![{figure.caption}](figures/{figure.path.name})", "", figure.caption, ""]
    return "\n".join(out)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 0.3em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td { white-space: nowrap; } .scroll { overflow-x: auto; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
td.bad { color: #b00; font-weight: bold; white-space: normal; }
.warning { background: #fde8e8; border: 2px solid #c00; padding: 0.6em 1em; margin: 1em 0; }
.ok { background: #e8f6e8; border: 1px solid #4a4; padding: 0.6em 1em; margin: 1em 0; }
.note { color: #555; font-size: 0.9em; margin: 0 0 1em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.9em; }
"""


def markdown_table(table: Table) -> list[str]:
    """One table's Markdown lines: header, rule, rows; a `|` in a cell (a column's name) escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(table.headers), "|" + "---|" * len(table.headers), *map(line, table.rows)]


def html_table(table: Table) -> str:
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


def embedded_png(path: Path) -> str:
    """A PNG as a data: URI, so index.html needs no other file."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(
    comparison: dict[str, Any], tables: list[Table], figures: dict[str, FigureFile]
) -> str:
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
    body = "".join(html_table(t) for t in tables)
    figs = "".join(
        f'<figure><img src="{embedded_png(figure.path)}" alt="{html.escape(name)}">'
        f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>"
        for name, figure in figures.items()
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(line)}</p>{banner}{body}"
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
    vb = comparison.get("vb")
    if vb is not None:
        lines.append(f"VB: {vb['n_iter']} iterations, ELBO {vb['lower_bound']:.4f}")
    trusted, left_out = trusted_ratios(comparison["parameters"])
    ratios = [r["vb_sd_ratio"] for r in trusted]
    if ratios:
        lines.append(
            f"VB SD / NUTS SD (VB's priors): {min(ratios):.2f} to {max(ratios):.2f} over "
            f"{len(ratios)} parameters" + (f"; {left_out}" if left_out else "")
        )
    elif left_out:
        lines.append(f"VB SD / NUTS SD (VB's priors): no range: {left_out}")
    if "posterior" in acc:
        post = acc["posterior"]
        shown = "labels unknown" if post["accuracy"] is None else f"accuracy {post['accuracy']:.1%}"
        lines.append(f"posterior: {shown}, {post['uncertain']} uncertain points")
    inside = [r["true_inside"] for r in comparison["parameters"] if r["true_inside"] is not None]
    if inside:
        lines.append(
            f"true value inside the {interval_percent()} interval for {sum(inside)} of "
            f"{len(inside)} parameters"
        )
    s = comparison["sampler"]
    if s is not None:
        lines.append(
            f"sampler: {s['divergences']} divergences, max R-hat "
            f"{format_number(s['max_rhat'], 3)}, min bulk ESS {format_number(s['min_ess_bulk'], 0)}"
        )
    lines += [f"WARNING: {w}" for w in comparison["warnings"]]
    return lines
