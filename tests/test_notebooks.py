"""The example notebooks run top to bottom (2 seeds, a tenth of the epochs), and are kept in git
without outputs."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "examples").glob("*.ipynb"))


def test_there_are_the_six_notebooks():
    assert [p.stem for p in NOTEBOOKS] == [
        "01-dropout-classification",
        "02-dropout-regression",
        "03-early-stopping",
        "04-regularization",
        "05-sklearn-and-mlxtend",
        "06-keras-bridge",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stripped_in_git(path):
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: run `make strip-notebooks`"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("REGLAB_NOTEBOOK_SEEDS", "2")
    monkeypatch.setenv("REGLAB_NOTEBOOK_QUICK", "1")
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    drawing = drawing_cells(book)
    assert drawing, f"{path.name}: draws nothing"
    for cell in drawing:  # every cell that draws shows its figure
        assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in cell.outputs), cell.source


def drawing_cells(book) -> list:
    return [c for c in book.cells if c.cell_type == "code" and ("figures." in c.source or "plot_decision_regions(" in c.source)]
