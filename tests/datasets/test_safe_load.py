"""Nothing a data folder holds runs code: real payloads that would create a file, and damaged files."""

import builtins
import os
import pickle
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch

from plstm_geometric.datasets import OGBMolDataset, TUGraphDataset, build_ogb_dataset
from plstm_geometric.datasets.safe_load import DatasetFileError, load_index_pickle, safe_torch_load
from plstm_geometric.testing import shared_path

SMILES = ["CCO", "c1ccccc1O", "CC(=O)O", "C1CCCCC1N", "c1ccncc1", "CCN(CC)CC"]
META = {
    "num tasks": 1,
    "eval metric": "rmse",
    "task type": "regression",
    "add_inverse_edge": "True",
    "split": "scaffold",
}


class Payload:
    """Pickles to a call of :obj:`function(*arguments)`: unpickling it runs the call."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def payloads(marker):
    command = f"touch {marker}"
    return {
        "os.system": Payload(os.system, command),
        "subprocess.Popen": Payload(subprocess.Popen, ["touch", str(marker)]),
        "builtins.eval": Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
    }


KINDS = ["os.system", "subprocess.Popen", "builtins.eval", "builtins.exec"]


def assert_not_created(marker):
    time.sleep(0.2)  # a Popen payload would create the file asynchronously
    assert not marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_payloads_are_real(tmp_path, kind):
    # The control: plain unpickling does run each payload, so the refusals below are meaningful.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(payloads(marker)[kind]))
    for _ in range(50):
        if marker.exists():
            break
        time.sleep(0.05)
    assert marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_safe_torch_load_refuses_payloads(tmp_path, kind):
    marker, path = tmp_path / "ran", tmp_path / "file.pt"
    torch.save({"weights": torch.ones(2), "payload": payloads(marker)[kind]}, path)
    with pytest.raises(DatasetFileError, match=r"file\.pt: .*refuses.*force_reload=True"):
        safe_torch_load(path)
    assert_not_created(marker)


@pytest.mark.parametrize("kind", KINDS)
def test_load_index_pickle_refuses_payloads(tmp_path, kind):
    marker, path = tmp_path / "ran", tmp_path / "split.pickle"
    path.write_bytes(pickle.dumps({"train": np.arange(3), "val": payloads(marker)[kind]}))
    with pytest.raises(DatasetFileError, match=r"split\.pickle: refused"):
        load_index_pickle(path)
    assert_not_created(marker)


def test_load_index_pickle_reads_int64_containers_only(tmp_path):
    path = tmp_path / "split.pickle"
    value = {"train": np.arange(5), "val": [np.array([7, 8])], "test": (np.empty(0, dtype=np.int64),)}
    path.write_bytes(pickle.dumps(value))
    loaded = load_index_pickle(path)
    assert loaded["train"].tolist() == [0, 1, 2, 3, 4] and loaded["val"][0].tolist() == [7, 8]
    for bad, message in [
        ({"train": np.arange(3, dtype=np.int32)}, "int64"),
        ({"train": np.arange(3.0)}, "int64"),
        ({"train": "text"}, "got str"),
        ({"train": np.array([object()], dtype=object)}, "refused"),
    ]:
        path.write_bytes(pickle.dumps(bad))
        with pytest.raises(DatasetFileError, match=message):
            load_index_pickle(path)


def test_load_index_pickle_reads_the_lrgb_split_file():
    split = load_index_pickle(
        shared_path("data", "lrgb", "peptides-functional", "splits_random_stratified_peptide.pickle")
    )
    assert [len(split[part]) for part in ("train", "val", "test")] == [10873, 2331, 2331]


@pytest.fixture
def ogb_root(tmp_path):
    build_ogb_dataset(
        pd.DataFrame({"smiles": SMILES, "value": np.arange(6.0)}), "toy-set", tmp_path, target_columns=["value"]
    )
    OGBMolDataset("toy-set", tmp_path, meta_info=META)  # processed once
    return tmp_path


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("file", ["pre_transform.pt", "pre_filter.pt", "plstm_geometric_data.pt"])
def test_ogb_dataset_folder_cannot_run_code(ogb_root, kind, file):
    marker = ogb_root / "ran"
    torch.save(payloads(marker)[kind], ogb_root / "toy_set" / "processed" / file)
    with pytest.raises(DatasetFileError, match=rf"{file}: .*force_reload=True"):
        OGBMolDataset("toy-set", ogb_root, meta_info=META)
    assert_not_created(marker)
    # The fix the message names works.
    assert len(OGBMolDataset("toy-set", ogb_root, meta_info=META, force_reload=True)) == 6


def write_tiny_tu(folder, name="TINY"):
    folder.mkdir(parents=True)
    # Two triangles and two paths of three nodes, classes 0 and 1.
    edges, indicator = [], []
    for graph in range(4):
        base = 3 * graph + 1
        pairs = [(0, 1), (1, 2)] + ([(2, 0)] if graph % 2 else [])
        for a, b in pairs:
            edges += [(base + a, base + b), (base + b, base + a)]
        indicator += [graph + 1] * 3
    np.savetxt(folder / f"{name}_A.txt", np.array(edges), fmt="%d", delimiter=", ")
    np.savetxt(folder / f"{name}_graph_indicator.txt", np.array(indicator), fmt="%d")
    np.savetxt(folder / f"{name}_graph_labels.txt", np.array([0, 1, 0, 1]), fmt="%d")
    np.savetxt(folder / f"{name}_node_labels.txt", np.arange(12) % 2, fmt="%d")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("file", ["pre_transform.pt", "pre_filter.pt", "data.pt"])
def test_tu_dataset_folder_cannot_run_code(tmp_path, kind, file):
    write_tiny_tu(tmp_path / "TU" / "TINY" / "raw")
    assert len(TUGraphDataset("TINY", tmp_path)) == 4
    marker = tmp_path / "ran"
    torch.save(payloads(marker)[kind], tmp_path / "TU" / "TINY" / "processed" / file)
    with pytest.raises(DatasetFileError, match=rf"{file}: .*force_reload=True"):
        TUGraphDataset("TINY", tmp_path)
    assert_not_created(marker)
    assert len(TUGraphDataset("TINY", tmp_path, force_reload=True)) == 4


def damage(path, how):
    content = path.read_bytes()
    if how == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x93garbage bytes, not a torch file" * 4)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "wrong structure":
        torch.save(torch.ones(3), path)
    elif how == "pickle of a str":  # plain pickle, not torch's zip format
        path.write_bytes(pickle.dumps("text"))


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "wrong structure", "pickle of a str"])
def test_damaged_processed_file_gives_one_clear_error(ogb_root, how):
    path = ogb_root / "toy_set" / "processed" / "plstm_geometric_data.pt"
    damage(path, how)
    with pytest.raises(
        DatasetFileError, match=r"plstm_geometric_data\.pt: (damaged|expected a tuple).*force_reload=True"
    ):
        OGBMolDataset("toy-set", ogb_root, meta_info=META)


@pytest.mark.parametrize("how", ["truncated", "garbage", "wrong structure"])
def test_damaged_tu_and_transform_files_give_one_clear_error(tmp_path, how):
    write_tiny_tu(tmp_path / "TU" / "TINY" / "raw")
    TUGraphDataset("TINY", tmp_path)
    for file in ("data.pt", "pre_transform.pt"):
        path = tmp_path / "TU" / "TINY" / "processed" / file
        original = path.read_bytes()
        damage(path, how)
        with pytest.raises(DatasetFileError, match=rf"{file}: .*force_reload=True"):
            TUGraphDataset("TINY", tmp_path)
        path.write_bytes(original)
