"""The teachers' notebook: docs/tutorial.ipynb is docs/tutorial.py rendered, and it runs."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

DOCS = Path(__file__).parent.parent / "docs"
SCRIPT = DOCS / "tutorial.py"
NOTEBOOK = DOCS / "tutorial.ipynb"


def test_the_notebook_is_the_script_rendered():
    script = jupytext.read(SCRIPT)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert [(c.cell_type, c.source) for c in notebook.cells] == [
        (c.cell_type, c.source) for c in script.cells
    ], "docs/tutorial.ipynb is stale: run `uv run jupytext --to ipynb docs/tutorial.py`"


@pytest.mark.sampling
def test_every_cell_of_the_notebook_runs(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=None,  # no wall-clock limit: the machines running the tests are shared
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError at the first cell that fails
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 6  # data, EM's log-likelihood, trace, rank, PPC, VB against NUTS
