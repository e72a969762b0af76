"""The report checker's screenshot test: enough colour for the figures the page embeds."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

from analysis.render_check import COLOURED_PIXELS_PER_FIGURE, check_screenshot

NO_COLOUR = "the screenshot has almost no colour: figures did not render"


def page(tmp_path, coloured: int, height: int = 400):
    """A white height x 1000 page with grey 'text' and `coloured` blue pixels; its PNG path."""
    pixels = np.ones((height, 1000, 3))
    pixels[10:30, 10:600] = 0.2
    rows, cols = np.divmod(np.arange(coloured), 1000)
    pixels[100 + rows, cols] = (0.1, 0.3, 0.9)
    path = tmp_path / "shot.png"
    mpimg.imsave(path, pixels)
    return path


def test_a_grey_page_with_a_figure_fails(tmp_path):
    assert check_screenshot(page(tmp_path, 0), figures=1) == [NO_COLOUR]


def test_a_tall_page_with_one_small_figure_passes(tmp_path):
    # Like the selection report: one two-panel figure, about 0.2 % of a tall page's pixels
    # coloured (a rule on the fraction of the page, 0.5 %, failed it).
    shot = page(tmp_path, 5 * COLOURED_PIXELS_PER_FIGURE, height=2400)
    assert check_screenshot(shot, figures=1) == []


def test_the_colour_needed_grows_with_the_figures(tmp_path):
    shot = page(tmp_path, 3 * COLOURED_PIXELS_PER_FIGURE)
    assert check_screenshot(shot, figures=3) == []
    assert check_screenshot(shot, figures=4) == [NO_COLOUR]
