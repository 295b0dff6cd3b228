"""examples/quickstart.ipynb executed headless, as a user runs it: a fresh kernel, cells in order, outputs
checked. A notebook that stops working (an API change, a cell that raises) fails here, not in front of a
user."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def test_quickstart_notebook_trains_evaluates_predicts_and_exports(tmp_path: Path, monkeypatch):
    work = tmp_path / "nb"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    notebook = nbformat.read(work / NOTEBOOK.name, as_version=4)
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "cache"))  # the kernel inherits it: not ~/.cache
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError (with the cell and its traceback) if any cell fails

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [_text(cell) for cell in code]
    everything = "\n".join(outputs)
    assert "Traceback" not in everything

    # The run exists where the notebook put it, with its bundle and report.
    run = work / "runs" / "notebook"
    assert (run / "model" / "graft.json").is_file() and (run / "report" / "index.html").is_file()
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.85

    assert "Run('runs/notebook', best val_acc" in everything  # the one-line repr
    assert "accuracy" in everything and "macro F1" in everything
    right = [line for line in everything.splitlines() if line.endswith(" right")]
    assert right, everything
    hits, total = map(int, right[0].split()[0].split("/"))
    assert total == 10 and hits >= 8
    assert (run / "model" / "model.onnx").is_file()
    assert "max |onnx - torch|" in everything
