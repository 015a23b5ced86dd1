"""The verification notebook runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "verify_retry.ipynb"


def test_verify_retry_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError if any cell (an assert included) fails
    outputs = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "retry is enabled: generate_content_async_with_retry" in outputs
    assert "answer: Retry is on." in outputs
    assert "Model request succeeded on attempt 3" in outputs
