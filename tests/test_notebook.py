"""The notebook in notebooks/ runs top to bottom on the embedded defaults."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest


@pytest.mark.slow
def test_secure_data_handling_notebook_executes(repo: Path, tmp_path: Path) -> None:
    notebook = nbformat.read(repo / "notebooks" / "secure-data-handling.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [
        o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    ]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "refused: decryption failed" in printed
