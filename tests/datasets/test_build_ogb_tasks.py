"""A dataset under one of OGB's names has OGB's tasks: build-ogb refuses another number of label columns (or OGB's
columns in another order), and the loader refuses a folder that has them. A one-task ClinTox builds under a name
of its own, ``clintox``, and loads and scores by that name."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from ogb.graphproppred import Evaluator

from plstm_geometric.datasets import (
    DatasetFileError,
    OGBMolDataset,
    OGBStyleEvaluator,
    build_ogb_dataset,
    load_dataset,
)
from plstm_geometric.datasets.__main__ import main
from plstm_geometric.testing import shared_path

SMILES = ["CCO", "c1ccccc1O", "CC(=O)O", "C1CCCCC1N", "c1ccncc1", "CCN(CC)CC", "c1ccc2ccccc2c1", "OCC(O)CO"]
ONE_TASK = pd.DataFrame({"smiles": SMILES, "target": [0, 1, 0, 1, 1, 0, 0, 1]})
TWO_TASKS = pd.DataFrame(
    {"smiles": SMILES, "FDA_APPROVED": [1, 1, 0, 1, 1, 0, 1, 1], "CT_TOX": [0, 0, 1, 0, 1, 1, 0, 0]}
)


def test_a_one_task_csv_under_ogbs_two_task_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"target_columns: expected OGB's 2 task columns for ogbg-molclintox") as error:
        build_ogb_dataset(ONE_TASK, "ogbg-molclintox", tmp_path, target_columns=["target"])
    message = str(error.value)
    assert "got 1 (['target'])" in message
    assert "--target-columns FDA_APPROVED CT_TOX" in message and "--name clintox" in message
    assert not (tmp_path / "ogbg_molclintox").exists()
    # Without target_columns, ogbg-molclintox reads OGB's two columns, which a one-column CSV lacks.
    with pytest.raises(ValueError, match=r"has no column \['FDA_APPROVED', 'CT_TOX'\].*--name clintox"):
        build_ogb_dataset(ONE_TASK, "ogbg-molclintox", tmp_path)
    assert not (tmp_path / "ogbg_molclintox").exists()


@pytest.mark.parametrize("columns", [[], ["--target-columns", "target"]])
def test_the_command_line_refuses_it_too(tmp_path, caplog, columns):
    csv = shared_path("data", "moleculenet", "clintox.csv")
    assert main(["build-ogb", "--csv", str(csv), "--name", "ogbg-molclintox", "--root", str(tmp_path)] + columns) == 1
    assert "--target-columns" in caplog.text and "--name clintox" in caplog.text
    assert not (tmp_path / "ogbg_molclintox").exists()


def test_ogbs_columns_in_another_order_are_refused(tmp_path):
    with pytest.raises(
        ValueError, match=r"target_columns: expected OGB's column 'CT_TOX' as task 2 .*got it as task 1"
    ):
        build_ogb_dataset(TWO_TASKS, "ogbg-molclintox", tmp_path, target_columns=["CT_TOX", "FDA_APPROVED"])
    assert not (tmp_path / "ogbg_molclintox").exists()


def test_ogbs_two_columns_build_and_score_with_ogbs_evaluator(tmp_path):
    build_ogb_dataset(TWO_TASKS, "ogbg-molclintox", tmp_path, target_columns=["FDA_APPROVED", "CT_TOX"])
    dataset = OGBMolDataset("ogbg-molclintox", tmp_path)
    assert dataset.num_tasks == 2 and dataset.y.shape == (len(SMILES), 2)
    assert torch.equal(dataset.y, torch.tensor(TWO_TASKS[["FDA_APPROVED", "CT_TOX"]].to_numpy()))
    # OGB's own example code: OGB's Evaluator on [n, 2] labels and scores.
    assert type(dataset.evaluator) is Evaluator
    result = Evaluator("ogbg-molclintox").eval({"y_true": dataset.y, "y_pred": dataset.y.float()})
    assert result == {"rocauc": 1.0}


def test_a_folder_with_another_task_count_under_an_ogb_name_is_refused_by_the_loader(tmp_path):
    # A folder written before build-ogb refused it (or by hand): the loader refuses it too, raw or processed.
    build_ogb_dataset(ONE_TASK, "clintox", tmp_path, target_columns=["target"])
    load_dataset("clintox", tmp_path)  # processed there, then copied
    shutil.copytree(tmp_path / "clintox", tmp_path / "ogbg_molclintox")
    for attempt in ("processed", "raw"):
        if attempt == "raw":
            shutil.rmtree(tmp_path / "ogbg_molclintox" / "processed")
        with pytest.raises(DatasetFileError, match=r"graph-label.csv.gz: expected OGB's 2 task columns") as error:
            load_dataset("ogbg-molclintox", tmp_path)
        assert "--name clintox" in str(error.value)


def test_clintox_under_its_own_name_loads_trains_and_scores(tmp_path, capsys):
    """The shared one-column clintox.csv, built as the docs say, loads by its name with the library's loaders."""
    csv = shared_path("data", "moleculenet", "clintox.csv")
    arguments = ["build-ogb", "--csv", str(csv), "--name", "clintox", "--target-columns", "target"]
    assert main(arguments + ["--root", str(tmp_path)]) == 0
    dataset = load_dataset("clintox", tmp_path)
    assert isinstance(dataset, OGBMolDataset) and dataset.name == "clintox"
    assert (dataset.num_tasks, dataset.task_type, dataset.eval_metric) == (1, "binary classification", "rocauc")
    labels = pd.read_csv(csv)["target"]
    assert 1400 < len(dataset) <= len(labels) and set(dataset.y.view(-1).tolist()) == {0, 1}
    split = dataset.get_idx_split()
    assert sorted(torch.cat(list(split.values())).tolist()) == list(range(len(dataset)))
    evaluator = dataset.evaluator
    assert isinstance(evaluator, OGBStyleEvaluator) and evaluator.eval_metric == "rocauc"
    y_true = dataset.y[split["test"]]
    score = evaluator.eval({"y_true": y_true, "y_pred": y_true.float()})["rocauc"]
    assert np.isclose(score, 1.0)
    capsys.readouterr()
    assert main(["prepare", "clintox", "--root", str(tmp_path)]) == 0
    assert "task binary classification, metric rocauc, 1 task(s)" in capsys.readouterr().out
