"""Bad names, bad values and oversized molecules in the OGB-format path: clear errors, nothing deleted."""

import gzip
import logging
import time

import numpy as np
import pandas as pd
import pytest

from plstm_geometric.datasets import OGBMolDataset, TUGraphDataset, build_ogb_dataset
from plstm_geometric.datasets.__main__ import main
from plstm_geometric.datasets.safe_load import DatasetFileError

SMILES = ["CCO", "c1ccccc1O", "CC(=O)O", "C1CCCCC1N", "c1ccncc1", "CCN(CC)CC"]
META = {
    "num tasks": 1,
    "eval metric": "rmse",
    "task type": "regression",
    "add_inverse_edge": "True",
    "split": "scaffold",
}
BAD_NAMES = [".", "..", "", "a/b", "../outside", "/tmp/absolute", ".hidden", "a\\b"]


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "source.csv"
    pd.DataFrame({"smiles": SMILES, "target": ["CI", "CA", "CI", "CM", "CI", "CI"]}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", BAD_NAMES)
def test_build_ogb_refuses_a_name_that_is_not_plain_and_deletes_nothing(csv, tmp_path, name, caplog):
    root = tmp_path / "root"
    root.mkdir()
    (root / "other_set").mkdir()
    (root / "other_set" / "keep.txt").write_text("another dataset")
    (tmp_path / "sibling.txt").write_text("outside the root")
    arguments = [
        "build-ogb",
        "--csv",
        str(csv),
        "--name",
        name,
        "--target-columns",
        "target",
        "--root",
        str(root),
        "--overwrite",
    ]
    assert main(arguments) == 1
    assert "name: expected a plain dataset name" in caplog.text
    assert (root / "other_set" / "keep.txt").read_text() == "another dataset"
    assert (tmp_path / "sibling.txt").exists() and csv.exists()
    assert sorted(path.name for path in root.iterdir()) == ["other_set"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_datasets_never_read_outside_the_root(tmp_path, name):
    with pytest.raises(ValueError, match="name: expected a plain dataset name"):
        OGBMolDataset(name, tmp_path / "root", meta_info=META)
    with pytest.raises(ValueError, match="name: expected a plain dataset name"):
        TUGraphDataset(name, tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_wrong_types_are_type_errors(tmp_path):
    with pytest.raises(TypeError, match="name: expected a str"):
        build_ogb_dataset(pd.DataFrame({"smiles": SMILES, "v": range(6)}), 3, tmp_path, target_columns=["v"])
    with pytest.raises(TypeError, match="max_atoms: expected an int"):
        build_ogb_dataset(
            pd.DataFrame({"smiles": SMILES, "v": range(6)}), "a", tmp_path, target_columns=["v"], max_atoms=1.5
        )
    with pytest.raises(TypeError, match="use_node_attr: expected a bool"):
        TUGraphDataset("MUTAG", tmp_path, use_node_attr="yes")


@pytest.mark.parametrize("bad_class", ["", "ci", "Ci", "CX", "active"])
def test_hiv_classes_must_be_known(tmp_path, bad_class):
    classes = ["CI", "CA", "CI", bad_class, "CI", "CM"]
    path = tmp_path / "hiv.csv"
    pd.DataFrame({"smiles": SMILES, "target": classes}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"target: expected an HIV screening class .* in row 3 .*column 'target'"):
        build_ogb_dataset(path, "ogbg-molhiv", tmp_path / "root")
    assert not (tmp_path / "root" / "ogbg_molhiv").exists()


@pytest.mark.parametrize("text", ["inf", "-inf", "1e400"])
def test_infinite_labels_are_refused(tmp_path, text):
    path = tmp_path / "values.csv"
    rows = [f"{smiles},{value}" for smiles, value in zip(SMILES, ["1.0", "2.0", text, "", "0.5", "3"])]
    path.write_text("smiles,value\n" + "\n".join(rows) + "\n")
    with pytest.raises(
        ValueError,
        match=r"target_columns: expected finite or missing labels, got -?inf in row 2 "
        r".*column 'value'",
    ):
        build_ogb_dataset(path, "values", tmp_path / "root", target_columns=["value"])


def test_empty_and_header_only_csv(tmp_path):
    empty, header = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header.write_text("smiles,value\n")
    with pytest.raises(ValueError, match="csv: expected a header and at least one row, got an empty file"):
        build_ogb_dataset(empty, "a", tmp_path, target_columns=["value"])
    with pytest.raises(ValueError, match="csv: expected at least one row below the header"):
        build_ogb_dataset(header, "a", tmp_path, target_columns=["value"])


def test_oversized_molecules_are_skipped_quickly_and_counted(tmp_path, caplog):
    long_chain = "C" * 600  # over max_atoms=500: rejected before the scaffold computation
    huge = "C" * 1_000_000  # over max_smiles_length: rejected before parsing
    frame = pd.DataFrame({"smiles": SMILES + [long_chain, huge], "value": np.arange(8.0)})
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="plstm_geometric.datasets.build_ogb"):
        build_ogb_dataset(frame, "sized", tmp_path, target_columns=["value"])
    assert time.perf_counter() - start < 10
    assert "skipped 2 of 8 rows with molecules over the size limits max_atoms=500" in caplog.text
    assert len(OGBMolDataset("sized", tmp_path, meta_info=META)) == 6
    with pytest.raises(ValueError, match=r"row 6 .*a molecule of 600 atoms \(max_atoms=500\)"):
        build_ogb_dataset(frame, "sized", tmp_path, target_columns=["value"], strict=True, overwrite=True)
    with pytest.raises(ValueError, match=r"row 1 .*max_smiles_length=3"):
        build_ogb_dataset(
            frame, "sized", tmp_path, target_columns=["value"], strict=True, overwrite=True, max_smiles_length=3
        )


@pytest.fixture
def built(tmp_path):
    build_ogb_dataset(
        pd.DataFrame({"smiles": SMILES, "value": np.arange(6.0)}), "toy-set", tmp_path, target_columns=["value"]
    )
    return tmp_path, tmp_path / "toy_set"


def write_gz(path, rows):
    with gzip.open(path, "wt") as handle:
        handle.write("".join(f"{row}\n" for row in rows))


@pytest.mark.parametrize("values", [[-1], [6], [0, 1, 99]])
def test_split_indices_out_of_range_raise(built, values):
    root, folder = built
    write_gz(folder / "split" / "scaffold" / "valid.csv.gz", values)
    dataset = OGBMolDataset("toy-set", root, meta_info=META)
    with pytest.raises(DatasetFileError, match=r"valid\.csv\.gz: expected graph indices in \[0, 6\)"):
        dataset.get_idx_split()


def read_rows(path):
    with gzip.open(path, "rt") as handle:
        return handle.read().splitlines()


@pytest.mark.parametrize(
    "file, change, message",
    [
        (
            "num-node-list.csv.gz",
            lambda rows: [str(int(rows[0]) + 1)] + rows[1:],
            r"node-feat\.csv\.gz: expected \d+ rows",
        ),
        ("num-node-list.csv.gz", lambda rows: rows[:-1], r"num-edge-list\.csv\.gz: expected one row per graph"),
        ("num-edge-list.csv.gz", lambda rows: ["0"] + rows[1:], r"edge\.csv\.gz: expected \d+ rows"),
        ("edge-feat.csv.gz", lambda rows: rows[:-1], r"edge-feat\.csv\.gz: expected \d+ rows"),
        (
            "edge.csv.gz",
            lambda rows: ["0,40"] + rows[1:],
            r"edge\.csv\.gz: expected node indices in \[0, 3\) for graph 0",
        ),
        ("graph-label.csv.gz", lambda rows: ["inf"] + rows[1:], "expected finite or missing labels"),
        ("graph-label.csv.gz", lambda rows: rows[:-1], "expected one row per graph"),
    ],
)
def test_raw_files_that_disagree_raise(built, file, change, message):
    root, folder = built
    path = folder / "raw" / file
    write_gz(path, change(read_rows(path)))
    with pytest.raises(DatasetFileError, match=message):
        OGBMolDataset("toy-set", root, meta_info=META)
