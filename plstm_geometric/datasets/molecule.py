"""SMILES parsing and OGB molecular graph features.

``mol_to_graph`` is :func:`ogb.utils.smiles2graph` split at the parsing step, so that a molecule is
parsed once and the same RDKit object serves for the features and for the Murcko scaffold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .chemistry import require

if TYPE_CHECKING:
    from rdkit import Chem

# OGB's bond features: bond type, bond stereo, is_conjugated.
NUM_BOND_FEATURES = 3


def parse_smiles(smiles, relaxed_valence: bool = True) -> tuple[Chem.Mol | None, bool]:
    r"""Parses a SMILES string into an RDKit molecule.

    Recent RDKit releases reject some hypervalent metal and metalloid complexes (e.g. six-fold
    coordinated Al, four-fold B, Ge in MoleculeNet's HIV set) that the RDKit used to build OGB
    accepted. With :obj:`relaxed_valence=True` such a molecule is parsed again with every
    sanitisation step except the valence check, so that OGB's datasets can be rebuilt with
    their original number of molecules.

    Args:
        smiles: the SMILES string; anything else (e.g. a missing CSV cell) is invalid.
        relaxed_valence (bool): retry without the valence check when the strict parse fails.

    Returns:
        :obj:`(mol, relaxed)`: the molecule (:obj:`None` if the string is invalid or has no
        atom) and whether it needed the relaxed parse.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        return None, False
    Chem = require("rdkit.Chem", "parsing SMILES")  # noqa: N806 (RDKit's module name)
    # RDKit reports every rejected string on stderr; callers count and log rejections instead.
    with require("rdkit.rdBase", "parsing SMILES").BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
        relaxed = False
        if mol is None and relaxed_valence:
            mol = _parse_without_valence_check(smiles)
            relaxed = mol is not None
    if mol is None or mol.GetNumAtoms() == 0:
        return None, False
    return mol, relaxed


def _parse_without_valence_check(smiles: str) -> Chem.Mol | None:
    Chem = require("rdkit.Chem", "parsing SMILES")  # noqa: N806 (RDKit's module name)
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:  # a syntax error, not a valence problem
        return None
    mol.UpdatePropertyCache(strict=False)
    flags = Chem.SanitizeFlags.SANITIZE_ALL ^ Chem.SanitizeFlags.SANITIZE_PROPERTIES
    if Chem.SanitizeMol(mol, flags, catchErrors=True) != Chem.SanitizeFlags.SANITIZE_NONE:
        return None
    return mol


def mol_to_graph(mol: Chem.Mol) -> dict:
    r"""OGB's graph of a molecule, identical to :func:`ogb.utils.smiles2graph` of its SMILES.

    Returns:
        a dict with :obj:`node_feat` (int64 [N, 9]), :obj:`edge_index` (int64 [2, 2B], each bond
        as (begin, end) followed by (end, begin)), :obj:`edge_feat` (int64 [2B, 3]) and
        :obj:`num_nodes` (N), for N atoms and B bonds.
    """
    features = require("ogb.utils.features", "OGB's molecular graph features")
    atom_to_feature_vector, bond_to_feature_vector = features.atom_to_feature_vector, features.bond_to_feature_vector
    node_feat = np.array([atom_to_feature_vector(atom) for atom in mol.GetAtoms()], dtype=np.int64)
    edges, edge_features = [], []
    for bond in mol.GetBonds():
        begin, end = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        feature = bond_to_feature_vector(bond)
        edges += [(begin, end), (end, begin)]
        edge_features += [feature, feature]
    if edges:
        edge_index = np.array(edges, dtype=np.int64).T
        edge_feat = np.array(edge_features, dtype=np.int64)
    else:
        edge_index = np.empty((2, 0), dtype=np.int64)
        edge_feat = np.empty((0, NUM_BOND_FEATURES), dtype=np.int64)
    return {
        "edge_index": edge_index,
        "edge_feat": edge_feat,
        "node_feat": node_feat,
        "num_nodes": len(node_feat),
    }
