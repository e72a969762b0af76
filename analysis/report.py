"""The report folder: comparison.json, figures/*.png, summary.md and a self-contained index.html.

Everything is made from a `Results` value (run now, or loaded from the saved files), so a
report can be rebuilt without sampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.comparison import compare
from analysis.files import dumps
from analysis.pipeline import Results
from analysis.render import render_html, render_markdown
from analysis.tables import build_tables


def write_report(results: Results, folder: Path) -> dict[str, Any]:
    """comparison.json, figures, summary.md and index.html into folder; returns the comparison."""
    from analysis.figures import draw_all  # matplotlib and arviz_plots: only when drawing

    comparison = compare(results)
    (folder / "comparison.json").write_text(dumps(comparison), encoding="utf-8")
    figures = draw_all(results, comparison, folder / "figures")
    tables = build_tables(comparison)
    (folder / "summary.md").write_text(
        render_markdown(comparison, tables, figures), encoding="utf-8"
    )
    (folder / "index.html").write_text(render_html(comparison, tables, figures), encoding="utf-8")
    return comparison
