"""What build-ogb tells a user: the known names in its help and in datasets/README.md come from KNOWN_SOURCES, and
a label that is not a number is named by row, column and value."""

import pathlib
import re

import numpy as np
import pandas as pd
import pytest

from plstm_geometric.datasets import build_ogb_dataset
from plstm_geometric.datasets.__main__ import main
from plstm_geometric.datasets.build_ogb import KNOWN_SOURCES

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_help_lists_every_known_name_and_where_the_csvs_are(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["build-ogb", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for name, (columns, _) in KNOWN_SOURCES.items():
        assert re.search(rf"^  {re.escape(name)} .*'{re.escape(columns[0])}'", text, flags=re.M), name
    assert "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/" in text


def test_datasets_readme_lists_the_known_names():
    text = (REPO / "datasets" / "README.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| `(ogbg-mol\w+)` \| `([\w.-]+)` \|", text, flags=re.M)
    assert [name for name, _ in table] == list(KNOWN_SOURCES)


@pytest.mark.parametrize(
    "labels, where",
    [
        (["1", "0", "active", "1"], "'active' in row 2"),
        (["1", "", "yes", "no"], "'yes' in row 2"),  # an empty cell is a missing label, not the culprit
    ],
)
def test_non_numeric_label_names_row_and_value(labels, where, tmp_path):
    frame = pd.DataFrame({"smiles": ["CCO", "CCN", "CCC", "CCCl"], "y": labels}).replace("", np.nan)
    with pytest.raises(ValueError, match=rf"label column 'y', got {where} \(0-based") as error:
        build_ogb_dataset(frame, "my-set", tmp_path, target_columns=["y"])
    assert "--" not in str(error.value)  # no command-line option is suggested, let alone one that does not exist
    assert not (tmp_path / "my_set").exists()


def test_non_numeric_label_in_a_csv_file(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("smiles,a,b\nCCO,1,0.5\nCCN,0,n/a\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"label column 'b', got 'n/a' in row 1 "):
        build_ogb_dataset(path, "my-set", tmp_path, target_columns=["a", "b"])
