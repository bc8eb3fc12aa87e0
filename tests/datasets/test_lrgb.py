"""LRGB's Peptides-func, built from tiny files in the official format that the tests write themselves."""

import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from ogb.utils import smiles2graph
from sklearn.metrics import average_precision_score

from plstm_geometric.datasets import DatasetFileError, OGBStyleEvaluator, PeptidesFunctional, load_dataset, lrgb
from plstm_geometric.datasets import __main__ as datasets_cli
from plstm_geometric.datasets.lrgb import MD5, RAW_FILE, SPLIT_FILE, md5sum, prepare_peptides
from plstm_geometric.testing import shared_path

# small peptides and molecules; LRGB's rows are peptides of ~150 atoms
SMILES = [
    "NCC(=O)NCC(=O)O",
    "C[C@H](N)C(=O)NCC(=O)O",
    "CC(C)[C@H](N)C(=O)N[C@@H](C)C(=O)O",
    "N[C@@H](Cc1ccccc1)C(=O)NCC(=O)O",
    "NCCCC[C@H](N)C(=O)O",
    "OC(=O)CC[C@H](N)C(=O)O",
    "N[C@@H](CO)C(=O)N[C@@H](CS)C(=O)O",
    "c1ccc2[nH]ccc2c1",
]
LABELS = np.array(
    [
        [1, 0, 0, 0, 1, 0, 0, 0, 0, 1],
        [0, 1, 0, 0, 0, 0, 0, 1, 0, 0],
        [1, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0, 0, 1, 0],
        [0, 1, 1, 0, 0, 0, 0, 0, 0, 1],
        [1, 0, 0, 1, 0, 1, 0, 1, 0, 0],
    ]
)
# valid and test hold both classes of some task, so that their average precision is defined
SPLIT = {
    "train": np.array([0, 2, 3, 5], dtype=np.int64),
    "val": np.array([1, 6], dtype=np.int64),
    "test": np.array([4, 7], dtype=np.int64),
}


def write_official_files(folder, split=SPLIT):
    """LRGB's layout: raw/<csv.gz> with an index column, smiles, peptide_seq, labels, identifier; the split
    pickle (a dict of numpy int64 arrays, as LRGB's own file) next to raw/."""
    os.makedirs(folder / "raw", exist_ok=True)
    frame = pd.DataFrame(
        {
            "smiles": SMILES,
            "peptide_seq": ["G" * (i + 1) for i in range(len(SMILES))],
            "labels": [str(list(map(int, row))) for row in LABELS],
            "identifier": range(len(SMILES)),
        }
    )
    frame.to_csv(folder / "raw" / RAW_FILE, compression="gzip")
    with open(folder / SPLIT_FILE, "wb") as handle:
        pickle.dump(split, handle)
    return folder


@pytest.fixture
def source(tmp_path):
    return write_official_files(tmp_path / "source" / "peptides-functional")


@pytest.fixture
def tiny_md5(monkeypatch, source):
    """Makes the tiny files the 'official' ones, for the paths that always check md5 sums."""
    monkeypatch.setitem(MD5, RAW_FILE, md5sum(source / "raw" / RAW_FILE))
    monkeypatch.setitem(MD5, SPLIT_FILE, md5sum(source / SPLIT_FILE))


def test_builds_graphs_labels_and_split_from_the_official_format(source, tmp_path):
    root = tmp_path / "root"
    folder = prepare_peptides(source.parent, root, check_md5_sums=False)
    assert os.path.isfile(os.path.join(folder, "raw", RAW_FILE)) and os.path.isfile(os.path.join(folder, SPLIT_FILE))
    dataset = PeptidesFunctional(str(root), check_md5_sums=False)
    assert len(dataset) == len(SMILES)
    assert (dataset.eval_metric, dataset.task_type, dataset.num_tasks) == ("ap", "binary classification", 10)
    for i in (0, 3, 7):
        graph = smiles2graph(SMILES[i])
        data = dataset[i]
        assert data.x.dtype == torch.long and data.x.shape == (graph["num_nodes"], 9)
        assert torch.equal(data.x, torch.from_numpy(graph["node_feat"]))
        assert torch.equal(data.edge_index, torch.from_numpy(graph["edge_index"]))
        assert torch.equal(data.edge_attr, torch.from_numpy(graph["edge_feat"]))
        assert data.y.shape == (1, 10) and torch.equal(data.y, torch.tensor(LABELS[i : i + 1], dtype=torch.float32))
    split = dataset.get_idx_split()
    assert sorted(split) == ["test", "train", "valid"]
    for ours, theirs in (("train", "train"), ("valid", "val"), ("test", "test")):
        assert split[ours].dtype == torch.long and split[ours].tolist() == SPLIT[theirs].tolist()
    # processed once: a second load reads the processed file (the raw CSV may go)
    os.remove(os.path.join(folder, "raw", RAW_FILE))
    os.symlink(os.devnull, os.path.join(folder, "raw", RAW_FILE))
    assert len(PeptidesFunctional(str(root), check_md5_sums=False)) == len(SMILES)


def test_ap_metric_is_lrgbs_mean_over_tasks_with_both_classes():
    y_true = np.array([[1, 0, 1], [0, 0, 0], [1, 0, np.nan], [0, 0, 1]], dtype=float)
    y_pred = np.array([[0.9, 0.1, 0.2], [0.8, 0.4, 0.3], [0.3, 0.2, 0.9], [0.1, 0.3, 0.6]])
    y_true = np.concatenate([y_true, np.zeros((4, 7))], axis=1)  # tasks with one class only are left out
    y_pred = np.concatenate([y_pred, np.random.default_rng(0).random((4, 7))], axis=1)
    score = OGBStyleEvaluator("peptides-func", 10, "ap").eval({"y_true": y_true, "y_pred": y_pred})["ap"]
    # task 0 by hand: ranks 1 (positive), 2, 3 (positive): AP = (1/1 + 2/3) / 2; task 1 has no positive;
    # task 2 over its labelled rows [1, 0, 1] with scores [0.2, 0.3, 0.6]: ranks 1 (+), 2, 3 (+): (1 + 2/3) / 2
    assert score == pytest.approx(((1 + 2 / 3) / 2 + (1 + 2 / 3) / 2) / 2)
    labelled = ~np.isnan(y_true[:, 2])
    reference = np.mean(
        [
            average_precision_score(y_true[:, 0], y_pred[:, 0]),
            average_precision_score(y_true[labelled, 2], y_pred[labelled, 2]),
        ]
    )
    assert score == pytest.approx(reference)


def test_md5_mismatch_is_refused_before_anything_is_copied_or_built(source, tmp_path):
    root = tmp_path / "root"
    with pytest.raises(DatasetFileError, match=f"md5 {MD5[RAW_FILE]}"):
        prepare_peptides(source, root)
    assert not (root / "peptides-functional").exists()
    prepare_peptides(source, root, check_md5_sums=False)
    with pytest.raises(DatasetFileError, match="md5"):
        PeptidesFunctional(str(root))
    assert not any((root / "peptides-functional" / "processed").glob("*data*.pt"))
    with pytest.raises(DatasetFileError, match="md5"):  # load_dataset reaches the same dataset
        load_dataset("peptides-func", str(root))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_split_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    source = write_official_files(
        tmp_path / "source", split={"train": _RunsCode(marker), "val": SPLIT["val"], "test": SPLIT["test"]}
    )
    root = tmp_path / "root"
    prepare_peptides(source, root, check_md5_sums=False)
    with pytest.raises(DatasetFileError, match="nothing was run"):
        PeptidesFunctional(str(root), check_md5_sums=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "split, problem",
    [
        ({"train": SPLIT["train"], "test": SPLIT["test"]}, "keys"),
        ({**SPLIT, "val": np.array([1, 8], dtype=np.int64)}, r"in \[0, 8\)"),
        ({**SPLIT, "val": np.array([1, 0], dtype=np.int64)}, "repeated"),
        ({**SPLIT, "test": SPLIT["test"].astype(np.int32)}, "int64"),
    ],
)
def test_a_wrong_split_file_is_a_clear_error(tmp_path, split, problem):
    source = write_official_files(tmp_path / "source", split=split)
    prepare_peptides(source, tmp_path / "root", check_md5_sums=False)
    with pytest.raises(DatasetFileError, match=problem):
        PeptidesFunctional(str(tmp_path / "root"), check_md5_sums=False)


def test_bad_labels_are_a_clear_error(tmp_path):
    source = write_official_files(tmp_path / "source")
    frame = pd.read_csv(source / "raw" / RAW_FILE, index_col=0)
    frame.loc[2, "labels"] = "__import__('os').system('true')"
    frame.to_csv(source / "raw" / RAW_FILE, compression="gzip")
    prepare_peptides(source, tmp_path / "root", check_md5_sums=False)
    with pytest.raises(DatasetFileError, match="row 2"):
        PeptidesFunctional(str(tmp_path / "root"), check_md5_sums=False)


@pytest.mark.parametrize("smiles", [np.nan, "   "])
def test_an_empty_or_non_text_smiles_cell_is_a_clear_error(tmp_path, smiles):
    source = write_official_files(tmp_path / "source")
    frame = pd.read_csv(source / "raw" / RAW_FILE, index_col=0)
    frame["smiles"] = frame["smiles"].astype(object)
    frame.loc[3, "smiles"] = smiles
    frame.to_csv(source / "raw" / RAW_FILE, compression="gzip")
    prepare_peptides(source, tmp_path / "root", check_md5_sums=False)
    with pytest.raises(DatasetFileError, match=f"{RAW_FILE}: expected a SMILES string in every row, got .* in row 3;"):
        PeptidesFunctional(str(tmp_path / "root"), check_md5_sums=False)


def test_prepare_finds_the_files_side_by_side_and_refuses_a_folder_without_them(tmp_path):
    flat = tmp_path / "flat"
    write_official_files(flat)
    os.replace(flat / "raw" / RAW_FILE, flat / RAW_FILE)
    folder = prepare_peptides(flat, tmp_path / "root", link=True, check_md5_sums=False)
    assert os.path.islink(os.path.join(folder, "raw", RAW_FILE))
    with pytest.raises(FileNotFoundError, match="source"):
        prepare_peptides(tmp_path / "nothing", tmp_path / "root")
    with pytest.raises(ValueError, match="destination"):
        prepare_peptides(tmp_path / "root", tmp_path / "root", check_md5_sums=False)


def test_cli_prepares_and_trains_one_epoch(source, tmp_path, tiny_md5, capsys):
    from plstm_geometric.train.graph import run

    root = tmp_path / "root"
    assert datasets_cli.main(["prepare", "peptides-func", "--from", str(source.parent), "--root", str(root)]) == 0
    assert "metric ap, 10 task(s)" in capsys.readouterr().out
    results = run(
        [
            "--dataset",
            "peptides-func",
            "--root",
            str(root),
            "--out",
            str(tmp_path / "run"),
            "--model",
            "gine",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--layers",
            "2",
            "--batch-size",
            "4",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    assert results["metric"] == "ap" and not results["lower_is_better"] and results["finished"]
    assert 0.0 <= results["metrics"]["test"] <= 1.0


def test_cli_prepare_refuses_a_wrong_md5(source, tmp_path):
    assert datasets_cli.main(["prepare", "peptides-func", "--from", str(source), "--root", str(tmp_path)]) == 1
    assert not (tmp_path / "peptides-functional").exists()


def test_shared_official_files_have_lrgbs_md5_and_sizes():
    folder = shared_path("data", "lrgb", "peptides-functional")
    assert md5sum(folder / "raw" / RAW_FILE) == MD5[RAW_FILE]
    assert md5sum(folder / SPLIT_FILE) == MD5[SPLIT_FILE]
    frame = lrgb.read_peptides_csv(str(folder / "raw" / RAW_FILE))  # the CSV alone, no graphs built
    assert len(frame) == 15535
    split = lrgb.read_peptides_split(str(folder / SPLIT_FILE), len(frame))
    assert [len(split[name]) for name in ("train", "valid", "test")] == [10873, 2331, 2331]


def test_download_checks_md5_and_leaves_no_file_on_a_mismatch(source, tmp_path, monkeypatch):
    fetched = []

    def fake_download(url, folder, log=True, filename=None):
        # serves the tiny files: right for the split (its md5 is patched below), wrong for the CSV
        fetched.append(url)
        local = source / "raw" / RAW_FILE if filename == RAW_FILE else source / SPLIT_FILE
        path = os.path.join(folder, filename)
        with open(local, "rb") as origin, open(path, "wb") as target:
            target.write(origin.read())
        return path

    monkeypatch.setattr(lrgb, "download_url", fake_download)
    monkeypatch.setitem(MD5, SPLIT_FILE, md5sum(source / SPLIT_FILE))
    root = tmp_path / "root"
    with pytest.raises(DatasetFileError, match="md5"):
        PeptidesFunctional(str(root))
    assert fetched == [lrgb.URLS[RAW_FILE]]
    assert not (root / "peptides-functional" / "raw" / RAW_FILE).exists()
    monkeypatch.setitem(MD5, RAW_FILE, md5sum(source / "raw" / RAW_FILE))
    dataset = PeptidesFunctional(str(root))
    assert fetched == [lrgb.URLS[RAW_FILE], lrgb.URLS[RAW_FILE], lrgb.URLS[SPLIT_FILE]]
    assert len(dataset) == len(SMILES) and len(dataset.get_idx_split()["test"]) == 2
