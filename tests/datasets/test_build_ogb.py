import logging
import os

import numpy as np
import pandas as pd
import pytest
import torch
from ogb.utils import smiles2graph

from plstm_geometric.datasets import OGBMolDataset, build_ogb_dataset
from plstm_geometric.testing import shared_path

SMALL = pd.DataFrame(
    {
        "smiles": [
            "CCO",
            "c1ccccc1O",
            "C1CC",
            "CC(=O)Oc1ccccc1C(=O)O",
            "not-a-smiles",
            "C",
            "c1ccccc1CC",
            "C1CCCCC1N",
            "C[C@H](N)C(=O)O",
            "O=C(O)c1ccccc1",
        ],
        "label_a": [0, 1, 1, 0, 1, 1, 0, 1, 0, 1],
        "label_b": [1.5, np.nan, 0.5, 2.0, 1.0, -1.0, 0.25, 3.0, np.nan, 0.0],
    }
)
VALID_ROWS = [0, 1, 3, 5, 6, 7, 8, 9]  # rows 2 and 4 hold invalid SMILES


def read(path):
    try:
        return pd.read_csv(path, compression="gzip", header=None)
    except pd.errors.EmptyDataError:  # an empty split
        return pd.DataFrame({0: []})


@pytest.fixture
def small_csv(tmp_path):
    path = tmp_path / "small.csv"
    SMALL.to_csv(path, index=False)
    return path


def test_layout_features_and_skipped_rows(small_csv, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="plstm_geometric.datasets.build_ogb"):
        folder = build_ogb_dataset(small_csv, "my-set", tmp_path / "root", target_columns=["label_a", "label_b"])
    assert folder == tmp_path / "root" / "my_set"
    assert "skipped 2 of 10 rows with invalid SMILES (rows [2, 4])" in caplog.text

    files = sorted(
        os.path.relpath(os.path.join(directory, name), folder)
        for directory, _, names in os.walk(folder)
        for name in names
    )
    assert files == [
        "RELEASE_v1.txt",
        "mapping/README.md",
        "mapping/mol.csv.gz",
        "raw/edge-feat.csv.gz",
        "raw/edge.csv.gz",
        "raw/graph-label.csv.gz",
        "raw/node-feat.csv.gz",
        "raw/num-edge-list.csv.gz",
        "raw/num-node-list.csv.gz",
        "split/scaffold/test.csv.gz",
        "split/scaffold/train.csv.gz",
        "split/scaffold/valid.csv.gz",
    ]

    graphs = [smiles2graph(SMALL.smiles[row]) for row in VALID_ROWS]
    raw = folder / "raw"
    np.testing.assert_array_equal(read(raw / "num-node-list.csv.gz")[0], [g["num_nodes"] for g in graphs])
    # Each bond once, as (begin, end): the first column of every pair smiles2graph lists.
    np.testing.assert_array_equal(
        read(raw / "num-edge-list.csv.gz")[0], [g["edge_index"].shape[1] // 2 for g in graphs]
    )
    np.testing.assert_array_equal(
        read(raw / "edge.csv.gz").values, np.concatenate([g["edge_index"][:, ::2].T for g in graphs])
    )
    np.testing.assert_array_equal(
        read(raw / "edge-feat.csv.gz").values, np.concatenate([g["edge_feat"][::2] for g in graphs])
    )
    np.testing.assert_array_equal(
        read(raw / "node-feat.csv.gz").values, np.concatenate([g["node_feat"] for g in graphs])
    )
    labels = read(raw / "graph-label.csv.gz").values
    np.testing.assert_array_equal(labels, SMALL.loc[VALID_ROWS, ["label_a", "label_b"]].values)

    mapping = pd.read_csv(folder / "mapping" / "mol.csv.gz")
    assert list(mapping.columns) == ["label_a", "label_b", "smiles", "mol_id"]
    assert mapping["smiles"].tolist() == SMALL.smiles[VALID_ROWS].tolist()
    assert mapping["mol_id"].tolist() == VALID_ROWS

    parts = [read(folder / "split" / "scaffold" / f"{part}.csv.gz")[0].tolist() for part in ("train", "valid", "test")]
    assert sorted(sum(parts, [])) == list(range(len(VALID_ROWS)))


def test_strict_names_the_invalid_row(small_csv, tmp_path):
    with pytest.raises(ValueError, match=r"row 2 .*'C1CC'"):
        build_ogb_dataset(small_csv, "my-set", tmp_path, target_columns=["label_a"], strict=True)
    assert not (tmp_path / "my_set").exists()


def test_argument_errors(small_csv, tmp_path):
    with pytest.raises(ValueError, match="target_columns: expected label columns"):
        build_ogb_dataset(small_csv, "my-set", tmp_path)
    with pytest.raises(ValueError, match="target_columns: .* no column"):
        build_ogb_dataset(small_csv, "my-set", tmp_path, target_columns=["missing"])
    with pytest.raises(ValueError, match="smiles_column"):
        build_ogb_dataset(small_csv, "my-set", tmp_path, smiles_column="SMILES", target_columns=["label_a"])
    with pytest.raises(ValueError, match="binary classification"):
        build_ogb_dataset(small_csv, "ogbg-molbbbp", tmp_path, target_columns=["label_b"])
    with pytest.raises(ValueError, match="csv: expected an existing file"):
        build_ogb_dataset(tmp_path / "absent.csv", "my-set", tmp_path, target_columns=["label_a"])
    with pytest.raises(TypeError, match="csv: expected a path"):
        build_ogb_dataset(3, "my-set", tmp_path, target_columns=["label_a"])


def test_existing_folder_needs_overwrite(small_csv, tmp_path):
    build_ogb_dataset(small_csv, "my-set", tmp_path, target_columns=["label_a"])
    with pytest.raises(FileExistsError, match="overwrite"):
        build_ogb_dataset(small_csv, "my-set", tmp_path, target_columns=["label_a"])
    build_ogb_dataset(small_csv, "my-set", tmp_path, target_columns=["label_b"], overwrite=True)
    assert read(tmp_path / "my_set" / "raw" / "graph-label.csv.gz").shape == (8, 1)
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


@pytest.fixture(scope="module")
def hiv_subset(tmp_path_factory):
    """The first 1000 rows of hiv.csv (two of them hypervalent Al/B complexes) as ogbg-molhiv."""
    frame = pd.read_csv(shared_path("data", "moleculenet", "hiv.csv")).iloc[:1000]
    root = tmp_path_factory.mktemp("hiv")
    build_ogb_dataset(frame, "ogbg-molhiv", root)
    return frame, root


def test_hiv_subset_matches_smiles2graph(hiv_subset):
    frame, root = hiv_subset
    dataset = OGBMolDataset("ogbg-molhiv", root)
    assert len(dataset) == len(frame)
    for index in range(0, len(frame), 37):
        if index in (137, 987):  # rejected by this RDKit's smiles2graph, see test_molecule_graph
            continue
        expected = smiles2graph(frame.smiles[index])
        data = dataset[index]
        assert data.x.tolist() == expected["node_feat"].tolist()
        assert data.edge_index.tolist() == expected["edge_index"].tolist()
        assert data.edge_attr.tolist() == expected["edge_feat"].tolist()
    np.testing.assert_array_equal(dataset.y.view(-1).numpy(), (frame.target != "CI").astype(int))
    assert dataset.y.dtype == torch.long  # as OGB's molhiv


def test_hiv_subset_split_is_a_disjoint_cover(hiv_subset):
    frame, root = hiv_subset
    split = OGBMolDataset("ogbg-molhiv", root).get_idx_split()
    assert [len(split[part]) for part in ("train", "valid", "test")] == [800, 100, 100]
    assert sorted(np.concatenate([split[part].numpy() for part in split]).tolist()) == list(range(len(frame)))


def test_ogb_own_reader_loads_the_build(hiv_subset):
    """OGB's numpy dataset reads the rebuilt folder (no prompt: RELEASE_v1.txt is present)."""
    from ogb.graphproppred import GraphPropPredDataset

    frame, root = hiv_subset
    ours = OGBMolDataset("ogbg-molhiv", root)
    theirs = GraphPropPredDataset("ogbg-molhiv", root=str(root))
    assert len(theirs) == len(ours)
    for index in (0, 137, 500, 999):
        graph, label = theirs[index]
        assert graph["edge_index"].tolist() == ours[index].edge_index.tolist()
        assert graph["node_feat"].tolist() == ours[index].x.tolist()
        assert label.tolist() == ours[index].y.view(-1).tolist()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("PLSTM_FULL_HIV") != "1", reason="full ogbg-molhiv rebuild takes ~1-3 min; set PLSTM_FULL_HIV=1"
)
def test_full_hiv_rebuild(tmp_path):
    build_ogb_dataset(shared_path("data", "moleculenet", "hiv.csv"), "ogbg-molhiv", tmp_path)
    dataset = OGBMolDataset("ogbg-molhiv", tmp_path)
    assert len(dataset) == 41127
    split = dataset.get_idx_split()
    assert [len(split[part]) for part in ("train", "valid", "test")] == [32901, 4113, 4113]
    assert int(dataset.y.sum()) == 1443  # CM + CA molecules
