"""The verification notebook runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "verify_retry.ipynb"


def test_verify_retry_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    from tests.test_examples import ROOT, assert_quiet

    # The kernel inherits this environment: make it import this checkout, not an installed copy.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
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
    assert_quiet(outputs)
    # Statistics as a few counters, not kilobytes of the provider's error text.
    assert "'retries': 2" in outputs
    assert "last_error" not in outputs
    assert "Traceback" not in outputs
    assert len(outputs) < 2000
