"""One canonical name per dataset: folder names, case variants and '_' against '-' resolve to it, an unknown name is a
ValueError listing the known ones, and load_dataset loads a spelling as the dataset of its canonical name."""

import pandas as pd
import pytest
from ogb.graphproppred import Evaluator

from plstm_geometric.datasets import OGBMolDataset, build_ogb_dataset, load_dataset, resolve_dataset_name
from plstm_geometric.datasets.registry import _canonical_names, _spelling
from tests.datasets.test_tu_raw import TINY, write_tu

SMILES = ["CCO", "c1ccccc1O", "CC(=O)O", "C1CCCCC1N", "c1ccncc1", "CCN(CC)CC", "c1ccc2ccccc2c1", "OCC(O)CO"]


@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("nci-tpsa", "nci-tpsa"),
        ("nci_tpsa", "nci-tpsa"),  # its folder
        ("NCI-TPSA", "nci-tpsa"),
        ("ogbg-molhiv", "ogbg-molhiv"),
        ("ogbg_molhiv", "ogbg-molhiv"),  # OGB's folder
        ("OGBG-MOLHIV", "ogbg-molhiv"),
        ("ogbg_molclintox", "ogbg-molclintox"),
        ("MUTAG", "MUTAG"),
        ("mutag", "MUTAG"),
        ("ptc-fm", "PTC_FM"),
        ("PTC_FM", "PTC_FM"),
        ("imdb_binary", "IMDB-BINARY"),
        ("proteins", "PROTEINS"),
        ("proteins-full", "PROTEINS_full"),
        ("peptides-func", "peptides-func"),
        ("peptides-functional", "peptides-func"),  # LRGB's folder
        ("Peptides_Func", "peptides-func"),
    ],
)
def test_spellings_resolve_to_the_canonical_name(spelling, canonical):
    assert resolve_dataset_name(spelling, root=None) == canonical


def test_no_two_built_in_names_are_spellings_of_each_other():
    owners = {}
    for canonical, others in _canonical_names(None).items():
        for spelling in {canonical} | others:
            owners.setdefault(_spelling(spelling), set()).add(canonical)
    assert {key: names for key, names in owners.items() if len(names) > 1} == {}


def test_unknown_names_list_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"name: expected one of \[.*'nci-tpsa'.*'ogbg-molhiv'.*'MUTAG'.*build-ogb"):
        resolve_dataset_name("cifar10", tmp_path)
    with pytest.raises(ValueError, match="name: expected a plain dataset name"):
        resolve_dataset_name("../MUTAG", tmp_path)
    with pytest.raises(TypeError, match="name: expected a str"):
        resolve_dataset_name(3, tmp_path)


def test_datasets_under_the_root_resolve_by_their_names(tmp_path):
    build_ogb_dataset(pd.DataFrame({"smiles": SMILES, "y": range(8)}), "my-set", tmp_path, target_columns=["y"])
    write_tu(tmp_path / "TU" / "TINY_SET" / "raw", TINY, name="TINY_SET")
    for spelling in ("my-set", "my_set", "MY-SET"):
        assert resolve_dataset_name(spelling, tmp_path) == "my-set"
    for spelling in ("TINY_SET", "tiny-set"):
        assert resolve_dataset_name(spelling, tmp_path) == "TINY_SET"
    with pytest.raises(ValueError, match=r"\(there: TINY_SET, my-set\)") as error:
        resolve_dataset_name("other-set", tmp_path)
    assert "my_set" not in str(error.value)
    with pytest.raises(ValueError, match="name: expected one of"):  # without a root, only the built-in names
        resolve_dataset_name("my-set", None)


def test_two_datasets_with_one_spelling_are_ambiguous(tmp_path):
    write_tu(tmp_path / "TU" / "toy" / "raw", TINY, name="toy")
    write_tu(tmp_path / "TU" / "TOY" / "raw", TINY, name="TOY")
    assert resolve_dataset_name("toy", tmp_path) == "toy" and resolve_dataset_name("TOY", tmp_path) == "TOY"
    with pytest.raises(ValueError, match=r"got 'Toy', which could mean any of \['TOY', 'toy'\]"):
        resolve_dataset_name("Toy", tmp_path)


def test_load_dataset_loads_a_spelling_as_its_canonical_dataset(tmp_path):
    # OGB's folder name used to load the same files as a second dataset, 'ogbg_molhiv', with its task read off
    # the labels and a stand-in evaluator; it is ogbg-molhiv, with OGB's metadata and OGB's Evaluator.
    classes = ["CI", "CM", "CI", "CA", "CI", "CI", "CM", "CI"]
    build_ogb_dataset(pd.DataFrame({"smiles": SMILES, "target": classes}), "ogbg-molhiv", tmp_path)
    canonical = load_dataset("ogbg-molhiv", tmp_path)
    for spelling in ("ogbg_molhiv", "OGBG-MOLHIV"):
        dataset = load_dataset(spelling, tmp_path)
        assert isinstance(dataset, OGBMolDataset) and dataset.name == "ogbg-molhiv"
        assert dataset.meta_info == canonical.meta_info and type(dataset.evaluator) is Evaluator
    build_ogb_dataset(pd.DataFrame({"smiles": SMILES, "y": range(8)}), "my-set", tmp_path, target_columns=["y"])
    assert load_dataset("MY_SET", tmp_path).name == "my-set"
