"""OGB's own tools on a set that build-ogb wrote: OGB's Evaluator and split reader accept it, OGB's dataset class
reads the same tensors as OGBMolDataset, and the two ways datasets/README.md gives around OGB's reload failure
with torch >= 2.6 work (plstm_geometric imported, or TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from ogb.graphproppred import Evaluator, PygGraphPropPredDataset

from plstm_geometric.datasets import OGBMolDataset, build_ogb_dataset

# 20 molecules of 14 scaffolds: every part of the 80/10/10 scaffold split gets some.
SMILES = [
    "CCO", "CCN", "CCCl", "CC(=O)O", "c1ccccc1O", "c1ccccc1N", "c1ccccc1CC", "C1CCCCC1N", "C1CCCCC1O",
    "c1ccncc1", "c1ccncc1C", "C1CCOC1", "C1CCNC1", "c1ccc2ccccc2c1", "c1ccoc1", "c1ccsc1", "C1CC1",
    "C1CCC1", "O=C1CCCN1", "c1cnc2ccccc2n1",
]  # fmt: skip


@pytest.fixture(scope="module", params=["ogbg-molbbbp", "ogbg-molesol"])
def built(request, tmp_path_factory):
    name = request.param
    labels = np.arange(len(SMILES)) % 2 if name == "ogbg-molbbbp" else np.linspace(-3.0, 1.0, len(SMILES))
    frame = pd.DataFrame({"smiles": SMILES, "y": labels})
    root = tmp_path_factory.mktemp("root")
    build_ogb_dataset(frame, name, root, target_columns=["y"])
    return name, root


def test_ogb_dataset_class_reads_what_build_ogb_writes(built):
    # This process has imported plstm_geometric, which registers PyG's data classes as safe globals: OGB's
    # class then reloads its own processed file (torch.load with the default weights_only=True).
    name, root = built
    ours = OGBMolDataset(name, root)
    theirs = PygGraphPropPredDataset(name, root=str(root))
    assert len(ours) == len(theirs) == len(SMILES)
    for a, b in zip(ours, theirs):
        for key in ("x", "edge_index", "edge_attr", "y"):
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    ogb_split, our_split = theirs.get_idx_split(), ours.get_idx_split()
    assert set(ogb_split) == set(our_split) == {"train", "valid", "test"}
    for part in our_split:
        assert len(our_split[part]) > 0 and torch.equal(torch.as_tensor(ogb_split[part]), our_split[part])


def test_ogb_evaluator_scores_a_rebuilt_set(built):
    name, root = built
    dataset = OGBMolDataset(name, root)
    assert type(dataset.evaluator) is Evaluator  # OGB's own, not the stand-in for unknown sets
    y_true = dataset.y.float()
    y_pred = torch.randn(y_true.shape, generator=torch.Generator().manual_seed(0))
    result = Evaluator(name).eval({"y_true": y_true, "y_pred": y_pred})
    assert set(result) == {dataset.eval_metric} and np.isfinite(result[dataset.eval_metric])


SCRIPT = """
import json, os, pickle, sys
from ogb.graphproppred import PygGraphPropPredDataset
outcome = {}
try:
    PygGraphPropPredDataset(sys.argv[1], root=sys.argv[2])
    outcome["plain"] = "loaded"
except pickle.UnpicklingError as error:
    outcome["plain"] = "UnpicklingError: DataEdgeAttr" if "DataEdgeAttr" in str(error) else repr(error)
os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
outcome["forced"] = len(PygGraphPropPredDataset(sys.argv[1], root=sys.argv[2]))
print(json.dumps(outcome))
"""


def test_ogb_dataset_class_without_plstm_geometric(tmp_path):
    # In a process that has not imported plstm_geometric, OGB 1.3.6 with torch >= 2.6 processes the folder and
    # then cannot reload its own file, as datasets/README.md says; the environment variable gets past that.
    frame = pd.DataFrame({"smiles": SMILES, "y": np.ones(len(SMILES))})
    build_ogb_dataset(frame, "ogbg-molesol", tmp_path, target_columns=["y"])
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, "ogbg-molesol", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"plain": "UnpicklingError: DataEdgeAttr", "forced": len(SMILES)}, outcome
