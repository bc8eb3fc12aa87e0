import numpy as np
import pytest
import torch

from plstm_geometric.datasets import TUGraphDataset, best_validation_accuracy, load_dataset, tu_folds
from plstm_geometric.datasets.tu import is_tu_name, prepare_tu
from plstm_geometric.testing import shared_path


def write_tu_raw(folder, name, num_graphs=40, seed=0):
    """A random dataset in PyG's raw TU text format: paths (class 0) and cycles (class 1)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    edges, indicator, node_labels, graph_labels = [], [], [], []
    offset = 1  # TU files number nodes from 1
    for graph in range(num_graphs):
        label = graph % 2 if graph < 30 else 0  # imbalanced: 25 of class 0, 15 of class 1
        size = int(rng.integers(4, 8))
        pairs = [(i, i + 1) for i in range(size - 1)] + ([(size - 1, 0)] if label else [])
        for a, b in pairs:  # undirected: both directions, as TU files list them
            edges += [(offset + a, offset + b), (offset + b, offset + a)]
        indicator += [graph + 1] * size
        node_labels += rng.integers(0, 3, size).tolist()
        graph_labels.append(label)
        offset += size
    np.savetxt(folder / f"{name}_A.txt", np.array(edges), fmt="%d", delimiter=", ")
    np.savetxt(folder / f"{name}_graph_indicator.txt", np.array(indicator), fmt="%d")
    np.savetxt(folder / f"{name}_graph_labels.txt", np.array(graph_labels), fmt="%d")
    np.savetxt(folder / f"{name}_node_labels.txt", np.array(node_labels), fmt="%d")
    return np.array(graph_labels)


def test_loads_tu_text_format_offline(tmp_path):
    labels = write_tu_raw(tmp_path / "TU" / "TOY" / "raw", "TOY")
    dataset = TUGraphDataset("TOY", tmp_path)
    assert len(dataset) == 40 and dataset.num_classes == 2
    assert dataset.y.tolist() == labels.tolist()
    assert dataset[1].x.shape[1] == 3  # one-hot node labels
    assert (dataset.eval_metric, dataset.task_type, dataset.num_tasks) == ("acc", "multiclass classification", 1)


def test_load_dataset_names_tu_sets(tmp_path):
    write_tu_raw(tmp_path / "TU" / "MUTAG" / "raw", "MUTAG", num_graphs=12)
    dataset = load_dataset("MUTAG", tmp_path)
    assert isinstance(dataset, TUGraphDataset) and len(dataset) == 12


def test_folds_protocol():
    labels = torch.tensor([0] * 25 + [1] * 15)
    folds = tu_folds(labels, num_folds=5, seed=1)
    assert len(folds) == 5
    for fold, split in enumerate(folds):
        parts = [split[part].tolist() for part in ("train", "valid", "test")]
        assert sorted(sum(parts, [])) == list(range(40))  # disjoint and covering
        assert [len(part) for part in parts] == [24, 8, 8]  # 3/1/1 folds
        assert split["valid"].tolist() == folds[(fold + 1) % 5]["test"].tolist()
        # Stratified: each test fold holds 5 of class 0 and 3 of class 1.
        assert torch.bincount(labels[split["test"]]).tolist() == [5, 3]
    tested = torch.cat([split["test"] for split in folds])
    assert sorted(tested.tolist()) == list(range(40))  # every graph tested once
    assert [s["test"].tolist() for s in tu_folds(labels, 5, seed=1)] == [s["test"].tolist() for s in folds]
    assert [s["test"].tolist() for s in tu_folds(labels, 5, seed=2)] != [s["test"].tolist() for s in folds]


def test_dataset_split_is_its_fold(tmp_path):
    write_tu_raw(tmp_path / "TU" / "TOY" / "raw", "TOY")
    dataset = TUGraphDataset("TOY", tmp_path)
    split = dataset.get_idx_split(fold=3)
    expected = tu_folds(dataset.y, num_folds=10, seed=0)[3]
    assert all(torch.equal(split[part], expected[part]) for part in expected)
    assert [len(split[part]) for part in ("train", "valid", "test")] == [32, 4, 4]
    with pytest.raises(ValueError, match="fold"):
        dataset.get_idx_split(fold=10)
    evaluator = dataset.evaluator
    y_true = dataset.y.view(-1, 1)
    assert evaluator.eval({"y_true": y_true, "y_pred": torch.zeros_like(y_true)}) == {"acc": 25 / 40}


def test_bad_fold_arguments():
    with pytest.raises(ValueError, match="num_folds"):
        tu_folds(torch.tensor([0, 1, 0, 1]), num_folds=2)
    with pytest.raises(ValueError, match="num_folds"):
        tu_folds(torch.tensor([0, 1, 0, 1]), num_folds=5)
    with pytest.raises(ValueError, match="labels: expected one dimension"):
        tu_folds(torch.zeros(4, 1, dtype=torch.long))


def test_best_validation_accuracy():
    valid = [
        [0.5, 0.7, 0.7, 0.6],  # best at epoch 1 (first of the tie)
        [0.9, 0.8, 0.8, 0.8],  # best at epoch 0
        [0.1, 0.2, 0.3, 0.4],
    ]  # best at epoch 3
    test = [[0.0, 0.6, 0.9, 1.0], [0.7, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.8]]
    result = best_validation_accuracy(valid, test)
    assert result["best_epoch"].tolist() == [1, 0, 3]
    assert result["per_fold"].tolist() == pytest.approx([0.6, 0.7, 0.8])
    assert result["mean"].item() == pytest.approx(0.7)
    assert result["std"].item() == pytest.approx(np.std([0.6, 0.7, 0.8]))
    with pytest.raises(ValueError, match="test_accuracy"):
        best_validation_accuracy(valid, [[0.0]])
    with pytest.raises(ValueError, match="valid_accuracy"):
        best_validation_accuracy([0.5, 0.6], [0.5, 0.6])


def write_tu_with_attributes(folder, name, num_graphs=12, num_attributes=2):
    labels = write_tu_raw(folder, name, num_graphs=num_graphs)
    num_nodes = len(np.loadtxt(folder / f"{name}_graph_indicator.txt"))
    attributes = np.arange(num_nodes * num_attributes, dtype=float).reshape(num_nodes, num_attributes) / 10
    np.savetxt(folder / f"{name}_node_attributes.txt", attributes, fmt="%.1f", delimiter=", ")
    (folder / "README.txt").write_text("a small TU-format set written by the test\n")
    return labels, attributes


@pytest.mark.parametrize("link", [False, True])
def test_prepare_from_copies_tu_files_then_loads_and_folds(tmp_path, capsys, link):
    from plstm_geometric.datasets.__main__ import main

    source = tmp_path / "elsewhere" / "MYSET"
    labels, attributes = write_tu_with_attributes(source, "MYSET", num_graphs=20)
    root = tmp_path / "root"
    arguments = ["prepare", "MYSET", "--root", str(root), "--from", str(tmp_path / "elsewhere")]
    assert main(arguments + (["--link"] if link else [])) == 0
    assert "task multiclass classification, metric acc" in capsys.readouterr().out
    raw = root / "TU" / "MYSET" / "raw"
    assert sorted(path.name for path in raw.iterdir()) == sorted(path.name for path in source.iterdir())
    assert all((raw / path.name).is_symlink() == link for path in source.iterdir())
    assert is_tu_name("MYSET", root) and not is_tu_name("MYSET") and not is_tu_name("../MYSET", root)

    dataset = TUGraphDataset("MYSET", root)
    assert dataset.y.tolist() == labels.tolist()
    # The set's node features: its 2 attributes, then its 3 node labels one-hot.
    assert dataset.x.shape == (len(attributes), 2 + 3)
    np.testing.assert_allclose(dataset.x[:, :2].numpy(), attributes, rtol=1e-6)
    assert dataset.x[:, 2:].sum(dim=1).tolist() == [1.0] * len(attributes)
    assert TUGraphDataset("MYSET", root, use_node_attr=False, force_reload=True).x.shape[1] == 3
    folds = tu_folds(dataset.y, num_folds=5)
    assert sorted(torch.cat([fold["test"] for fold in folds]).tolist()) == list(range(20))
    assert torch.equal(dataset.get_idx_split(fold=2, num_folds=5)["test"], folds[2]["test"])

    # Preparing again replaces the files and the processed data.
    write_tu_raw(tmp_path / "second", "MYSET", num_graphs=8, seed=1)
    assert main(["prepare", "MYSET", "--root", str(root), "--from", str(tmp_path / "second")]) == 0
    assert len(TUGraphDataset("MYSET", root)) == 8 and TUGraphDataset("MYSET", root).x.shape[1] == 3


def test_prepare_validates_the_source(tmp_path, caplog):
    from plstm_geometric.datasets.__main__ import main

    source = tmp_path / "source"
    write_tu_raw(source, "TOY", num_graphs=6)
    (source / "TOY_graph_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"source: expected the TU files .*TOY_graph_labels\.txt"):
        prepare_tu("TOY", source, tmp_path / "root")
    with pytest.raises(FileNotFoundError, match="source: expected a folder holding OTHER_A.txt"):
        prepare_tu("OTHER", source, tmp_path / "root")
    with pytest.raises(ValueError, match="name: expected a plain dataset name"):
        prepare_tu("..", source, tmp_path / "root")
    assert main(["prepare", "ogbg-molhiv", "--root", str(tmp_path), "--from", str(source)]) == 1
    assert "--from: expected a TU dataset name" in caplog.text
    assert main(["prepare", "MUTAG", "--root", str(tmp_path), "--link"]) == 1
    assert "--link: expected --from PATH" in caplog.text


def test_any_tu_name_and_unknown_names(tmp_path):
    write_tu_raw(tmp_path / "TU" / "ENZYMES_LIKE" / "raw", "ENZYMES_LIKE", num_graphs=6)
    assert len(TUGraphDataset("ENZYMES_LIKE", tmp_path)) == 6
    assert is_tu_name("ENZYMES") and is_tu_name("IMDB-BINARY") and not is_tu_name("NOT_A_SET", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"raw files in .*prepare NOT_A_SET --from PATH"):
        TUGraphDataset("NOT_A_SET", tmp_path)


def test_prepare_reads_the_shared_mutag_files(tmp_path):
    source = shared_path("data", "tu", "MUTAG")
    prepare_tu("MUTAG", source, tmp_path, link=True)
    dataset = TUGraphDataset("MUTAG", tmp_path)
    assert len(dataset) == 188 and dataset.x.shape[1] == 7 and dataset.num_classes == 2
