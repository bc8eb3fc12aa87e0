import pandas as pd
import pytest
from rdkit.Chem.Scaffolds import MurckoScaffold

from plstm_geometric.datasets.molecule import parse_smiles
from plstm_geometric.datasets.scaffold import murcko_scaffold, scaffold_split
from plstm_geometric.testing import shared_path


@pytest.mark.parametrize("smiles", ["Cc1cc(Oc2nccc(CCC)c2)ccc1", "C[C@H]1CC[C@@H](C2CCCC2)CC1", "CCO", "c1ccccc1"])
def test_murcko_scaffold_matches_rdkit_with_chirality(smiles):
    expected = MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=True)
    assert murcko_scaffold(parse_smiles(smiles)[0]) == expected


def test_scaffold_of_hypervalent_molecule():
    mol, relaxed = parse_smiles("O=C1O[Al]23(OC1=O)(OC(=O)C(=O)O2)OC(=O)C(=O)O3")
    assert relaxed
    assert "[Al]" in murcko_scaffold(mol)


def test_groups_largest_first_ties_by_first_index_descending():
    # Groups: a = {0, 4, 7} (3), b = {1, 5} (2), c = {2, 6} (2), d = {3} (1), e = {8}, f = {9}.
    scaffolds = ["a", "b", "c", "d", "a", "b", "c", "a", "e", "f"]
    split = scaffold_split(scaffolds, frac_train=0.5, frac_valid=0.3)
    # Order: a, then the tie b/c broken by first index in reverse (c=2 before b=1), then f, e, d.
    # train cutoff 5: a (3) + c (2) = 5; b (2) would exceed -> valid (cutoff 8: 5 + 2 = 7);
    # f (1) -> valid (8); e, d -> test.
    assert split == {"train": [0, 4, 7, 2, 6], "valid": [1, 5, 9], "test": [8, 3]}


def test_split_is_a_partition():
    scaffolds = [f"s{index % 7}" for index in range(50)] + [f"u{index}" for index in range(30)]
    split = scaffold_split(scaffolds)
    indices = split["train"] + split["valid"] + split["test"]
    assert sorted(indices) == list(range(80))
    assert len(split["train"]) <= 0.8 * 80 and len(split["train"]) + len(split["valid"]) <= 0.9 * 80


@pytest.mark.parametrize("frac_train, frac_valid", [(0.0, 0.1), (1.0, 0.0), (0.8, 0.3), (0.8, -0.1)])
def test_bad_fractions_raise(frac_train, frac_valid):
    with pytest.raises(ValueError, match="frac_"):
        scaffold_split(["a", "b"], frac_train=frac_train, frac_valid=frac_valid)


@pytest.mark.slow
def test_full_hiv_gives_ogb_split_sizes():
    smiles = pd.read_csv(shared_path("data", "moleculenet", "hiv.csv"))["smiles"]
    scaffolds = [murcko_scaffold(parse_smiles(string)[0]) for string in smiles]
    split = scaffold_split(scaffolds)
    assert [len(split[part]) for part in ("train", "valid", "test")] == [32901, 4113, 4113]
