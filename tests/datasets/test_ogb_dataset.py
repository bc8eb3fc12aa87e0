import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from ogb.graphproppred import Evaluator
from ogb.utils import smiles2graph

from plstm_geometric.datasets import OGBMolDataset, OGBStyleEvaluator, build_ogb_dataset

SMILES = [
    "CCO",
    "c1ccccc1O",
    "CC(=O)Oc1ccccc1C(=O)O",
    "C",
    "c1ccccc1CC",
    "C1CCCCC1N",
    "C[C@H](N)C(=O)O",
    "O=C(O)c1ccccc1",
    "CCN(CC)CC",
    "c1ccc2ccccc2c1",
    "OCC(O)CO",
    "c1ccncc1",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "O=C1CCCC1",
    "Clc1ccccc1",
    "CCCCCC",
]
# MoleculeNet HIV classes: CI (inactive), CM and CA (active).
HIV_CLASSES = ["CI", "CM", "CI", "CA", "CI", "CI", "CM", "CI", "CI", "CA", "CI", "CI", "CM", "CI", "CI", "CI"]
META = {
    "num tasks": 1,
    "eval metric": "rmse",
    "task type": "regression",
    "add_inverse_edge": "True",
    "split": "scaffold",
}


@pytest.fixture
def no_download(monkeypatch):
    def refuse(self):
        raise AssertionError("download() called although the raw files exist")

    monkeypatch.setattr(OGBMolDataset, "download", refuse)


@pytest.fixture(scope="module")
def hiv_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ogb")
    build_ogb_dataset(pd.DataFrame({"smiles": SMILES, "target": HIV_CLASSES}), "ogbg-molhiv", root)
    return root


def test_loads_built_raw_files_like_ogb(hiv_root, no_download):
    dataset = OGBMolDataset("ogbg-molhiv", hiv_root)
    assert len(dataset) == len(SMILES)
    assert (dataset.num_tasks, dataset.eval_metric, dataset.task_type) == (1, "rocauc", "binary classification")
    for index, smiles in enumerate(SMILES):
        data, expected = dataset[index], smiles2graph(smiles)
        assert data.x.dtype == data.edge_index.dtype == data.edge_attr.dtype == torch.long
        assert torch.equal(data.x, torch.from_numpy(expected["node_feat"]))
        assert torch.equal(data.edge_index, torch.from_numpy(expected["edge_index"]))
        assert torch.equal(data.edge_attr, torch.from_numpy(expected["edge_feat"]))
        assert data.num_nodes == expected["num_nodes"]
        assert data.y.shape == (1, 1) and data.y.dtype == torch.long
        assert data.y.item() == int(HIV_CLASSES[index] != "CI")


def test_processed_file_loads_with_weights_only(hiv_root, no_download):
    dataset = OGBMolDataset("ogbg-molhiv", hiv_root)
    data, slices, data_class = torch.load(dataset.processed_paths[0], weights_only=True)
    assert torch.equal(data["y"], dataset.y)
    assert set(slices) >= {"x", "edge_index", "edge_attr", "y"}


def test_split_from_files(hiv_root, no_download):
    split = OGBMolDataset("ogbg-molhiv", hiv_root).get_idx_split()
    assert all(index.dtype == torch.long for index in split.values())
    assert sorted(torch.cat(list(split.values())).tolist()) == list(range(len(SMILES)))
    with pytest.raises(ValueError, match="split_type"):
        OGBMolDataset("ogbg-molhiv", hiv_root).get_idx_split("random")


def test_ogb_evaluator_scores_labels(hiv_root, no_download):
    dataset = OGBMolDataset("ogbg-molhiv", hiv_root)
    evaluator = dataset.evaluator
    assert type(evaluator) is Evaluator and evaluator.name == "ogbg-molhiv"
    y_true = dataset.y
    assert Evaluator("ogbg-molhiv").eval({"y_true": y_true, "y_pred": y_true.float()}) == {"rocauc": 1.0}
    assert evaluator.eval({"y_true": y_true, "y_pred": -y_true.float()})["rocauc"] == 0.0


def test_pre_transform_and_reload(hiv_root, no_download):
    def mark(data):
        data.marked = torch.ones(1)
        return data

    dataset = OGBMolDataset("ogbg-molhiv", hiv_root, pre_transform=mark, force_reload=True)
    assert dataset[3].marked.tolist() == [1.0]


def test_label_dtypes_follow_ogb(tmp_path, no_download):
    frame = pd.DataFrame(
        {"smiles": SMILES[:6], "value": [0.5, 1.0, 2.0, -1.0, 3.5, 0.0], "active": [1, 0, np.nan, 1, 0, 1]}
    )
    build_ogb_dataset(frame, "reg-set", tmp_path, target_columns=["value"])
    regression = OGBMolDataset("reg-set", tmp_path, meta_info=META)
    assert regression.y.dtype == torch.float32
    assert regression.y.view(-1).tolist() == frame["value"].tolist()

    build_ogb_dataset(frame, "missing-set", tmp_path, target_columns=["active"])
    meta = dict(META, **{"eval metric": "rocauc", "task type": "binary classification"})
    missing = OGBMolDataset("missing-set", tmp_path, meta_info=meta)
    assert missing.y.dtype == torch.float32 and torch.isnan(missing.y).sum() == 1
    assert isinstance(missing.evaluator, OGBStyleEvaluator)


def test_a_set_of_its_own_scores_with_an_ogb_style_evaluator(tmp_path, no_download):
    # The shared clintox.csv has one task where OGB's ogbg-molclintox has two: it builds under its own name
    # (build-ogb refuses OGB's, tests/datasets/test_build_ogb_tasks.py) and scores with OGB's metric.
    frame = pd.DataFrame({"smiles": SMILES[:8], "target": [0, 1, 0, 1, 1, 0, 0, 1]})
    build_ogb_dataset(frame, "clintox", tmp_path, target_columns=["target"])
    meta = dict(META, **{"eval metric": "rocauc", "task type": "binary classification"})
    dataset = OGBMolDataset("clintox", tmp_path, meta_info=meta)
    assert dataset.num_tasks == 1
    evaluator = dataset.evaluator
    assert isinstance(evaluator, OGBStyleEvaluator) and evaluator.eval_metric == "rocauc"
    assert evaluator.eval({"y_true": dataset.y, "y_pred": dataset.y.float()}) == {"rocauc": 1.0}


def test_downloads_ogb_zip_without_prompt(hiv_root, tmp_path):
    # OGB's zips hold one folder named after the download (here "hiv") with the raw layout.
    archive_source = tmp_path / "zip_source"
    shutil.copytree(hiv_root / "ogbg_molhiv", archive_source / "hiv", ignore=shutil.ignore_patterns("processed"))
    archive = shutil.make_archive(str(tmp_path / "hiv"), "zip", archive_source)
    meta = dict(OGBMolDataset._resolve_meta("ogbg-molhiv", None), url=f"file://{archive}")
    dataset = OGBMolDataset("ogbg-molhiv", tmp_path / "downloaded", meta_info=meta)
    assert len(dataset) == len(SMILES)
    assert (tmp_path / "downloaded" / "ogbg_molhiv" / "split" / "scaffold" / "train.csv.gz").exists()
    assert [path.name for path in (tmp_path / "downloaded").iterdir()] == ["ogbg_molhiv"]


def test_missing_raw_without_url_explains_offline_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="build-ogb"):
        OGBMolDataset("custom-set", tmp_path, meta_info=META)


def test_unreachable_url_explains_offline_build(tmp_path):
    meta = dict(META, url=f"file://{tmp_path}/absent.zip", download_name="absent")
    with pytest.raises(RuntimeError, match="build-ogb"):
        OGBMolDataset("custom-set", tmp_path, meta_info=meta)


def test_bad_names(tmp_path):
    with pytest.raises(ValueError, match="name: expected one of OGB's molecular datasets"):
        OGBMolDataset("ogbg-ppa", tmp_path)
    with pytest.raises(TypeError, match="name: expected a str"):
        OGBMolDataset(3, tmp_path)
    with pytest.raises(ValueError, match="meta_info: expected the keys"):
        OGBMolDataset("custom-set", tmp_path, meta_info={"num tasks": 1})
