import subprocess
import sys

import pandas as pd
import pytest

from plstm_geometric.datasets.__main__ import main

FRAME = pd.DataFrame(
    {
        "smiles": ["CCO", "c1ccccc1O", "C1CC", "CC(=O)O", "c1ccncc1", "CCN"],
        "target": ["CI", "CA", "CI", "CI", "CM", "CI"],
    }
)


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "hiv_like.csv"
    FRAME.to_csv(path, index=False)
    return path


def test_build_then_prepare(csv, tmp_path, capsys):
    root = tmp_path / "root"
    assert main(["build-ogb", "--csv", str(csv), "--name", "ogbg-molhiv", "--root", str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(root / "ogbg_molhiv")
    assert main(["prepare", "ogbg-molhiv", "--root", str(root)]) == 0
    assert "OGBMolDataset('ogbg-molhiv', 5): task binary classification, metric rocauc" in capsys.readouterr().out


def test_strict_and_existing_folder_fail_with_status_1(csv, tmp_path, caplog):
    arguments = ["build-ogb", "--csv", str(csv), "--name", "ogbg-molhiv", "--root", str(tmp_path)]
    assert main(arguments + ["--strict"]) == 1
    assert "row 2" in caplog.text and "'C1CC'" in caplog.text
    assert main(arguments) == 0
    assert main(arguments) == 1 and "overwrite" in caplog.text
    assert main(arguments + ["--overwrite"]) == 0


def test_module_runs_without_a_terminal(csv, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "plstm_geometric.datasets",
            "build-ogb",
            "--csv",
            str(csv),
            "--name",
            "toy-set",
            "--target-columns",
            "target",
            "--root",
            str(tmp_path),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # "target" holds strings: the builder refuses it, naming the column, the first row and its value, and
    # suggests no command-line option that does not exist.
    assert result.returncode == 1
    assert "label column 'target', got 'CI' in row 0" in result.stderr
    assert "--target-transform" not in result.stderr
