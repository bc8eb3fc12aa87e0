"""The notebooks in notebooks/ run top to bottom, each draws at least one figure, and the committed copies
carry no outputs."""
import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ("01_quickstart", "02_dag_anatomy", "03_images_ape", "04_long_sequences")
# Per cell. Each notebook takes well under a minute on a 2-core machine; the margin is for a loaded one.
CELL_TIMEOUT = 300


def test_expected_notebooks_present():
    assert [path.stem for path in NOTEBOOKS] == list(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_outputs_stripped(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}, cell {index}: outputs or an execution count are committed; clear them before "
                "committing (Jupyter: Edit > Clear Outputs of All Cells, then save)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_executes_and_draws(path, monkeypatch):
    # The kernel is a child process and inherits the environment: make the package importable from this
    # checkout even without `pip install -e .`, and let ipykernel pick its inline backend (a non-interactive
    # MPLBACKEND such as Agg would swallow the figures).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    # The notebooks' tensors are small: one thread is as fast, and it cannot stall the way a second OpenMP
    # thread does on a busy machine (each small op then waits for a core: milliseconds instead of microseconds).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    figures = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs if "image/png" in output.get("data", {})]
    assert figures, f"{path.name}: executed, but no cell displayed a figure (image/png output)"
