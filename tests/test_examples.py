"""examples/ogb_mol.py runs OGB's recipe with either graph layer on a set that build-ogb wrote, offline."""

import importlib.util
import math
import pathlib

import numpy as np
import pandas as pd
import pytest

from plstm_geometric.datasets import build_ogb_dataset

REPO = pathlib.Path(__file__).resolve().parents[1]
SMILES = [
    "CCO", "CCN", "CCCl", "CC(=O)O", "c1ccccc1O", "c1ccccc1N", "c1ccccc1CC", "C1CCCCC1N", "C1CCCCC1O",
    "c1ccncc1", "c1ccncc1C", "C1CCOC1", "C1CCNC1", "c1ccc2ccccc2c1", "c1ccoc1", "c1ccsc1", "C1CC1",
    "C1CCC1", "O=C1CCCN1", "c1cnc2ccccc2n1",
]  # fmt: skip


def load_example():
    spec = importlib.util.spec_from_file_location("ogb_mol_example", REPO / "examples" / "ogb_mol.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    frame = pd.DataFrame({"smiles": SMILES, "y": np.linspace(-3.0, 1.0, len(SMILES))})
    build_ogb_dataset(frame, "ogbg-molesol", root, target_columns=["y"])
    # ROC-AUC needs both classes in every part of the split: the split depends on the molecules alone, so a
    # first build tells which molecule lands where, and the labels alternate within each part.
    folder = build_ogb_dataset(frame.assign(y=0), "ogbg-molbbbp", root, target_columns=["y"])
    labels = np.zeros(len(SMILES), dtype=np.int64)
    for part in ("train", "valid", "test"):
        index = pd.read_csv(folder / "split" / "scaffold" / f"{part}.csv.gz", header=None)[0].to_numpy()
        labels[index[1::2]] = 1
    build_ogb_dataset(frame.assign(y=labels), "ogbg-molbbbp", root, target_columns=["y"], overwrite=True)
    return root


@pytest.mark.parametrize("dataset", ["ogbg-molbbbp", "ogbg-molesol"])
@pytest.mark.parametrize("gnn", ["gin", "plstm"])
def test_one_epoch(gnn, dataset, root, capsys):
    example = load_example()
    arguments = ["--gnn", gnn, "--dataset", dataset, "--root", str(root), "--epochs", "1"]
    result = example.main(arguments + ["--emb_dim", "16", "--num_layer", "2", "--batch_size", "8"])
    metric = "rocauc" if dataset == "ogbg-molbbbp" else "rmse"
    assert result["gnn"] == gnn and result["metric"] == metric and result["best_epoch"] == 1
    assert math.isfinite(result["valid"]) and math.isfinite(result["test"])
    output = capsys.readouterr().out
    assert f"{dataset}: {len(SMILES)} graphs, {gnn}" in output and "epoch 1: train" in output


def test_the_swap_is_the_graph_layer_alone():
    example = load_example()
    gin, plstm = (example.GNN(gnn, num_tasks=1, num_layer=2, emb_dim=16) for gnn in ("gin", "plstm"))
    assert [type(conv).__name__ for conv in gin.convs] == ["GINEConv"] * 2
    assert [(type(conv).__name__, conv.reverse) for conv in plstm.convs] == [("PLSTMConv", False), ("PLSTMConv", True)]
    for name in ("atom_encoder", "bond_encoders", "norms", "head"):
        assert [p.shape for p in getattr(gin, name).parameters()] == [
            p.shape for p in getattr(plstm, name).parameters()
        ]
    with pytest.raises(ValueError, match="gnn: expected one of"):
        example.GNN("gat", num_tasks=1)
