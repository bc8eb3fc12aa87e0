"""Without the chemistry extra (RDKit, OGB) the datasets package, the training CLI and the benchmarks'
results folder still import; a molecule feature names what is missing and how to install it."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A fresh interpreter in which importing rdkit or ogb fails as if they were not installed.
BLOCK = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("rdkit", "ogb"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
"""


def run_without_chemistry(code: str) -> str:
    script = BLOCK + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_packages_import_and_molecules_say_what_is_missing():
    out = run_without_chemistry(
        """
        import plstm_geometric.datasets as datasets
        import plstm_geometric.train.graph
        from plstm_geometric.datasets.molecule import parse_smiles
        from plstm_geometric.datasets.scaffold import murcko_scaffold
        from plstm_geometric.datasets.embedded import nci_tpsa_frame

        evaluator = datasets.OGBStyleEvaluator("TINY", 1, "acc")
        for call in (lambda: parse_smiles("CCO"), lambda: murcko_scaffold(None), nci_tpsa_frame,
                     lambda: evaluator.eval({})):
            try:
                call()
            except ImportError as error:
                print(error)
        """
    )
    lines = out.strip().splitlines()
    assert len(lines) == 4, out
    for line, package in zip(lines, ("rdkit", "rdkit", "rdkit", "ogb")):
        assert f"needs {package}, which is not installed" in line
        assert "pip install 'plstm_geometric[chemistry]'" in line


def test_the_evaluator_scores_with_ogb_when_installed():
    import numpy as np
    import pytest

    Evaluator = pytest.importorskip("ogb.graphproppred").Evaluator  # noqa: N806 (OGB's class)

    from plstm_geometric.datasets import OGBStyleEvaluator

    y_true = np.array([[0.0], [1.0], [1.0], [0.0]])
    y_pred = np.array([[0.1], [0.8], [0.3], [0.4]])
    ours = OGBStyleEvaluator("ogbg-molhiv-like", 1, "rocauc").eval({"y_true": y_true, "y_pred": y_pred})
    assert ours == Evaluator("ogbg-molhiv").eval({"y_true": y_true, "y_pred": y_pred})
    assert "y_true" in OGBStyleEvaluator("x", 1, "rocauc").expected_input_format
