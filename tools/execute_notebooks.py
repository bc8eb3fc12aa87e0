"""Regenerates the executed copies of the notebooks that a reader sees without running anything.

    python tools/execute_notebooks.py                       # every notebooks/*.ipynb -> docs/notebooks/
    python tools/execute_notebooks.py 01_quickstart --out DIR

The notebooks in notebooks/ are committed without outputs (tests/test_notebooks.py checks that and runs
them); this tool runs each one top to bottom in a fresh kernel, with the package imported from this
checkout and one thread, and writes the executed copy, outputs and figures included, to ``--out``. It needs
the test extra's notebook packages (nbformat, nbclient, ipykernel, matplotlib). It writes only inside
``--out``.
"""

import argparse
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
OUT_DIR = REPO / "docs" / "notebooks"
CELL_TIMEOUT = 600


def clean(notebook) -> None:
    """Drops what would change with every regeneration or machine: execution timestamps and stderr
    streams (library warnings, which name the installation's paths); the outputs a reader needs stay."""
    for cell in notebook.cells:
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [
                output
                for output in cell.outputs
                if not (output.get("output_type") == "stream" and output.get("name") == "stderr")
            ]


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
