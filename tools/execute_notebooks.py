"""Regenerates the executed copies of the notebooks that a reader sees without running anything.

    python -m tools.execute_notebooks                       # every notebooks/*.ipynb -> docs/notebooks/
    python -m tools.execute_notebooks 01_quickstart --out DIR

The notebooks in notebooks/ are committed without outputs (tests/test_notebooks.py checks that and runs
them); this tool runs each one top to bottom in a fresh kernel, with the package imported from this
checkout and one thread, and writes the executed copy, outputs and figures included, to ``--out``. It needs
the test extra's notebook packages (nbformat, nbclient, ipykernel, matplotlib). It writes only inside
``--out``.
"""

import argparse
import os
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
OUT_DIR = REPO / "docs" / "notebooks"
CELL_TIMEOUT = 600


# Printed by OGB's raw-file reader only when a dataset is processed for the first time: whether a run shows them
# depends on the machine's data folder, not on the notebook.
PROCESSING_LINES = frozenset(
    {"Loading necessary files...", "This might take a while.", "Processing graphs...", "Saving..."}
)
# Numbers (timings, losses, sizes, addresses) change from run to run and machine to machine; the words around them
# do not.
NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?")


def clean(notebook) -> None:
    """Drops what would change with every regeneration or machine: execution timestamps, stderr streams (library
    warnings, which name the installation's paths) and OGB's first-processing messages; the outputs a reader
    needs stay."""
    for cell in notebook.cells:
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if output.get("output_type") == "stream":
                if output.get("name") == "stderr":
                    continue
                lines = output.text.splitlines(keepends=True)
                output.text = "".join(line for line in lines if line.strip() not in PROCESSING_LINES)
                if not output.text:
                    continue
            outputs.append(output)
        cell.outputs = outputs


def masked(text: str) -> list[str]:
    """The lines of an output with every number replaced by ``#`` and runs of spaces by one space."""
    return [
        " ".join(NUMBER.sub("#", line).split()) for line in text.splitlines() if line.strip() not in PROCESSING_LINES
    ]


def outline(notebook) -> list[dict]:
    """What a reader of an executed notebook sees, cell by cell, without what changes from run to run.

    Per code cell: the printed text (stdout, the cell's prints joined) with its numbers masked, and the
    displayed outputs (figures, tables, results) as their sorted MIME types and masked plain-text form, in
    sorted order (a figure may be shown before or after a print of the same cell, depending on flushing).
    Two runs of an unchanged notebook have the same outline; a printed field, line, figure or cell that
    appears or goes away changes it.
    """
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        printed, shown = [], []
        for output in cell.outputs:
            kind = output.get("output_type")
            if kind == "stream":
                if output.get("name") == "stdout":
                    printed.append(output.text)
            elif kind in ("display_data", "execute_result"):
                shown.append((sorted(output.get("data", {})), masked(output.get("data", {}).get("text/plain", ""))))
            else:
                shown.append(([kind], [output.get("ename", "")]))
        cells.append({"printed": masked("".join(printed)), "shown": sorted(shown)})
    return cells


def execute(path: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    client.execute()
    clean(notebook)
    target = out_dir / path.name
    nbformat.write(notebook, target)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook names without .ipynb (default: all)")
    parser.add_argument("--out", type=pathlib.Path, default=OUT_DIR, help="folder of the executed copies")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if args.names:
        known = {path.stem: path for path in paths}
        unknown = [name for name in args.names if name not in known]
        if unknown:
            parser.error(f"names: unknown notebooks {unknown}; expected some of {sorted(known)}")
        paths = [known[name] for name in args.names]
    # The kernel is a child process: it inherits the import path of this checkout, one thread (the
    # notebooks' tensors are small) and no non-interactive matplotlib backend that would swallow figures.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.pop("MPLBACKEND", None)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        print(f"{path.name} -> {execute(path, args.out)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
