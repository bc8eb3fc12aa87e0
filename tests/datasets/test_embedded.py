import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import Descriptors

from plstm_geometric.datasets import EmbeddedMolDataset, OGBStyleEvaluator, load_dataset
from plstm_geometric.datasets.embedded import nci_tpsa_frame


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="module")
def dataset(root):
    return EmbeddedMolDataset(root)


def test_frame_reads_smiles_with_triple_bonds():
    frame = nci_tpsa_frame()
    assert len(frame) == 4999 and list(frame.columns) == ["smiles", "nci_id", "tpsa"]
    assert frame["smiles"].str.contains("#").any()  # "#" must not be read as a comment
    # The shipped TPSA values agree with RDKit's own TPSA on typical molecules.
    for row in (0, 1, 2, 1000):
        mol = Chem.MolFromSmiles(frame.smiles[row])
        assert Descriptors.TPSA(mol) == pytest.approx(frame.tpsa[row], abs=0.01)


def test_interface(dataset):
    assert len(dataset) == 4999
    assert (dataset.name, dataset.num_tasks, dataset.task_type, dataset.eval_metric) == (
        "nci-tpsa",
        1,
        "regression",
        "rmse",
    )
    data = dataset[0]
    assert data.x.shape[1] == 9 and data.edge_attr.shape[1] == 3
    assert data.y.shape == (1, 1) and data.y.dtype == torch.float32
    np.testing.assert_allclose(dataset.y.view(-1).numpy(), nci_tpsa_frame()["tpsa"].to_numpy(), rtol=1e-6)


def test_scaffold_split(dataset):
    split = dataset.get_idx_split()
    assert [len(split[part]) for part in ("train", "valid", "test")] == [3999, 500, 500]
    assert sorted(torch.cat(list(split.values())).tolist()) == list(range(4999))


def test_offline_evaluator_rmse(dataset):
    evaluator = dataset.evaluator
    assert isinstance(evaluator, OGBStyleEvaluator)
    y_true = dataset.y[:100]
    result = evaluator.eval({"y_true": y_true, "y_pred": y_true + 2.0})
    assert result["rmse"] == pytest.approx(2.0, rel=1e-5)


def test_load_dataset_reuses_the_build(dataset, root, monkeypatch):
    def refuse(self):
        raise AssertionError("rebuilt although the raw files exist")

    monkeypatch.setattr(EmbeddedMolDataset, "download", refuse)
    again = load_dataset("nci-tpsa", root)
    assert isinstance(again, EmbeddedMolDataset) and torch.equal(again.y, dataset.y)


def test_load_dataset_rejects_unknown_names(root):
    with pytest.raises(ValueError, match="name: expected one of .*nci-tpsa.*ogbg-molhiv.*MUTAG"):
        load_dataset("cifar10", root)
