import math

import numpy as np
import pytest
from ogb.utils import smiles2graph

from plstm_geometric.datasets.molecule import mol_to_graph, parse_smiles

# A hexacoordinated Al complex from MoleculeNet's HIV set that recent RDKit rejects on valence.
HYPERVALENT_AL = "O=C1O[Al]23(OC1=O)(OC(=O)C(=O)O2)OC(=O)C(=O)O3"


@pytest.mark.parametrize(
    "smiles",
    [
        "CC(=O)Oc1ccccc1C(=O)O",  # aromatic ring, branches
        "C[C@H](N)C(=O)O",  # chirality
        "F/C=C/F",  # bond stereo
        "C",  # a single atom, no bond
        "[Na+].[Cl-]",  # two fragments, no bond
        "O=[N+]([O-])c1ccc2ccccc2c1",  # charges, fused rings
    ],
)
def test_mol_to_graph_equals_smiles2graph(smiles):
    mol, relaxed = parse_smiles(smiles)
    assert not relaxed
    graph, expected = mol_to_graph(mol), smiles2graph(smiles)
    assert graph["num_nodes"] == expected["num_nodes"]
    for key in ("node_feat", "edge_index", "edge_feat"):
        assert graph[key].dtype == np.int64
        np.testing.assert_array_equal(graph[key], expected[key])


@pytest.mark.parametrize("smiles", ["C1CC", "not a smiles", "", "   ", math.nan, None])
def test_invalid_smiles_give_none(smiles):
    assert parse_smiles(smiles) == (None, False)


def test_relaxed_valence_parses_hypervalent_complex():
    assert parse_smiles(HYPERVALENT_AL, relaxed_valence=False) == (None, False)
    mol, relaxed = parse_smiles(HYPERVALENT_AL)
    assert relaxed and mol.GetNumAtoms() == 19
    graph = mol_to_graph(mol)
    assert graph["node_feat"].shape == (19, 9)
    assert graph["edge_index"].shape == (2, 2 * mol.GetNumBonds())
