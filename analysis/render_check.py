"""Render a report's index.html in headless Chromium and check the page is really drawn.

    python -m analysis.render_check reports/seed7907/index.html --screenshot /tmp/report.png

A manual check (Chromium is a Debian package, `apt-get install -y chromium`, not a project
dependency): it takes a full-height screenshot of the page with networking off, and fails unless
the page loads offline, shows every embedded figure, and the screenshot is not blank.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
WIDTH = 1200


def count_figures(html: str) -> int:
    """The number of figures embedded in the page."""
    return len(re.findall(r'<img src="data:image/png;base64,', html))


def page_height(html: str) -> int:
    """A screenshot height that holds the whole page: tables plus every figure."""
    figures = count_figures(html)
    rows = html.count("<tr>")
    return 900 + 26 * rows + 800 * figures


def check_html(html: str) -> list[str]:
    """Problems that make the page not self-contained or not complete."""
    problems = []
    if re.search(r'(src|href)="(?!data:)', html):
        problems.append("the page refers to an outside file or address")
    if "data:image/png;base64," not in html:
        problems.append("the page embeds no figure")
    return problems


def screenshot(page: Path, out: Path, height: int, chromium: str) -> None:
    """Run headless Chromium to draw the page into out (PNG)."""
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{height}",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr.strip()[-500:]}")


COLOURED_PIXELS_PER_FIGURE = 1000
"""Fewer coloured pixels than this per embedded figure means the figures were not drawn: the
page's text and tables are grey, and a two-panel line plot alone has about 5000."""


def check_screenshot(out: Path, figures: int) -> list[str]:
    """Problems visible in the screenshot: blank, or too little colour for its figures."""
    import matplotlib.image as mpimg

    pixels = mpimg.imread(out)[..., :3]
    problems = []
    if float(pixels.std()) < 0.02:
        problems.append("the screenshot is blank")
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    if int(np.sum(spread > 0.2)) < COLOURED_PIXELS_PER_FIGURE * figures:
        problems.append("the screenshot has almost no colour: figures did not render")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Check a report page; print what was checked, exit 1 on any problem."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.render_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("page", type=Path, nargs="?", default=Path("reports/seed7907/index.html"))
    parser.add_argument("--screenshot", type=Path, default=Path("report-screenshot.png"))
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print(
            "render_check: chromium is not installed (apt-get install -y chromium)", file=sys.stderr
        )
        return 2
    html = args.page.read_text(encoding="utf-8")
    screenshot(args.page, args.screenshot, page_height(html), chromium)
    problems = check_html(html) + check_screenshot(args.screenshot, count_figures(html))
    for problem in problems:
        print(f"render_check: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"{args.page}: rendered offline, {html.count('<figure>')} figures, "
            f"{html.count('<table>')} tables; screenshot {args.screenshot}"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
