"""OGB's scaffold split (the deterministic Bemis-Murcko split of Hu et al., 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .chemistry import require

if TYPE_CHECKING:
    from rdkit import Chem


def murcko_scaffold(mol: Chem.Mol) -> str:
    r"""The Bemis-Murcko scaffold of :obj:`mol` as a SMILES string, chirality included.

    Equal to :obj:`MurckoScaffold.MurckoScaffoldSmiles(smiles, includeChirality=True)`, which OGB
    uses. Molecules parsed without the valence check (see
    :func:`~plstm_geometric.datasets.molecule.parse_smiles`) get the same computation with a
    non-strict valence update, since RDKit's strict one rejects them. Acyclic molecules share
    the empty scaffold :obj:`""`.
    """
    Chem = require("rdkit.Chem", "Murcko scaffolds")  # noqa: N806 (RDKit's module name)
    MurckoScaffold = require("rdkit.Chem.Scaffolds.MurckoScaffold", "Murcko scaffolds")  # noqa: N806
    try:
        # The strict attempt would print RDKit's valence complaint before we fall back.
        with require("rdkit.rdBase", "Murcko scaffolds").BlockLogs():
            return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True)
    except Chem.AtomValenceException:
        scaffold = Chem.MurckoDecompose(mol)
        scaffold.ClearComputedProps()
        scaffold.UpdatePropertyCache(strict=False)
        Chem.GetSymmSSSR(scaffold)
        return Chem.MolToSmiles(scaffold, True)


def scaffold_split(scaffolds: Sequence[str], frac_train: float = 0.8, frac_valid: float = 0.1) -> dict[str, list[int]]:
    r"""Splits molecules by scaffold the way OGB's molecule datasets were split.

    Molecules are grouped by scaffold; the groups are sorted by size, largest first, ties by
    their smallest index, larger index first (the key :obj:`(len(group), group[0])` sorted in
    reverse, as in the implementation of Hu et al. adapted from DeepChem). Walking through the
    groups in that order, a group goes to train if train stays within
    :math:`\text{frac\_train} \cdot n` molecules, else to valid if train and valid together stay
    within :math:`(\text{frac\_train} + \text{frac\_valid}) \cdot n`, else to test.

    Args:
        scaffolds: one scaffold string per molecule, molecule :obj:`i` at position :obj:`i`.
        frac_train (float): fraction of molecules for training.
        frac_valid (float): fraction of molecules for validation (test gets the rest).

    Returns:
        a dict with :obj:`"train"`, :obj:`"valid"` and :obj:`"test"` lists of molecule indices,
        in the order the groups were assigned (sorted within a group), as OGB's split files.
    """
    if not 0.0 < frac_train < 1.0:
        raise ValueError(f"frac_train: expected a value in (0, 1), got {frac_train}")
    if not 0.0 <= frac_valid <= 1.0 - frac_train:
        raise ValueError(f"frac_valid: expected a value in [0, 1 - frac_train], got {frac_valid}")
    groups: dict[str, list[int]] = {}
    for index, scaffold in enumerate(scaffolds):
        groups.setdefault(scaffold, []).append(index)
    ordered = sorted(groups.values(), key=lambda group: (len(group), group[0]), reverse=True)

    train_cutoff = frac_train * len(scaffolds)
    valid_cutoff = (frac_train + frac_valid) * len(scaffolds)
    split: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for group in ordered:
        if len(split["train"]) + len(group) <= train_cutoff:
            split["train"].extend(group)
        elif len(split["train"]) + len(split["valid"]) + len(group) <= valid_cutoff:
            split["valid"].extend(group)
        else:
            split["test"].extend(group)
    return split
