"""The embedded default dataset: TPSA regression on RDKit's shipped NCI molecules."""

import os.path as osp

import pandas as pd

from .build_ogb import build_ogb_dataset
from .chemistry import require
from .ogb import OGBMolDataset

NAME = "nci-tpsa"
SMILES_NAME, TPSA_NAME = "first_5K.smi", "first_5k.tpsa.csv"


def nci_files() -> tuple[str, str]:
    """The paths of RDKit's NCI SMILES file and of its TPSA table."""
    folder = osp.join(require("rdkit.RDConfig", "the embedded nci-tpsa set").RDDataDir, "NCI")
    return osp.join(folder, SMILES_NAME), osp.join(folder, TPSA_NAME)


# OGB-style metadata (the keys of OGB's master.csv that OGBMolDataset reads).
META_INFO = {
    "num tasks": "1",
    "eval metric": "rmse",
    "task type": "regression",
    "add_inverse_edge": "True",
    "split": "scaffold",
}


def nci_tpsa_frame() -> pd.DataFrame:
    r"""RDKit's first 4,999 NCI molecules with their topological polar surface area.

    Columns :obj:`smiles`, :obj:`nci_id` (from :obj:`first_5K.smi`) and :obj:`tpsa` (in
    Å², from :obj:`first_5k.tpsa.csv`, computed by the RDKit authors with Daylight tools and
    Ertl's tpsa.c), both files shipped in RDKit's :obj:`RDConfig.RDDataDir/NCI`.
    """
    smiles_file, tpsa_file = nci_files()
    for path in (smiles_file, tpsa_file):
        if not osp.isfile(path):
            raise FileNotFoundError(f"{path} is missing from this RDKit installation")
    molecules = pd.read_csv(smiles_file, sep="\t", header=None, names=["smiles", "nci_id"])
    # The first line is a comment; comment="#" cannot be used since "#" is SMILES' triple bond.
    tpsa = pd.read_csv(tpsa_file, skiprows=1, header=None, names=["smiles", "tpsa"])
    if len(molecules) != len(tpsa) or not (molecules["smiles"] == tpsa["smiles"]).all():
        raise ValueError(f"{smiles_file} and {tpsa_file} do not list the same molecules")
    frame = molecules.assign(tpsa=tpsa["tpsa"])
    frame.attrs["source"] = f"{smiles_file} with {TPSA_NAME}"
    return frame


class EmbeddedMolDataset(OGBMolDataset):
    r"""The embedded default dataset :obj:`"nci-tpsa"`: needs no download.

    4,999 NCI molecules shipped with RDKit, each labelled with its topological polar surface area
    (TPSA, Å², raw values: normalising is the training script's job). OGB features, OGB's
    scaffold split (80/10/10), regression with one task, scored by RMSE as OGB's regression
    sets (:obj:`evaluator` is an :class:`OGBStyleEvaluator`, which works offline).

    On first use it writes OGB's raw layout under :obj:`root/nci_tpsa/` with
    :func:`~plstm_geometric.datasets.build_ogb_dataset`, then loads it like any
    :class:`OGBMolDataset`.

    Args:
        root (str): the data root.
        transform, pre_transform (callable, optional): PyG transforms.
        force_reload (bool): process the raw files again.
    """

    def __init__(self, root: str = "datasets", transform=None, pre_transform=None, force_reload: bool = False):
        super().__init__(NAME, root, transform, pre_transform, meta_info=META_INFO, force_reload=force_reload)

    def download(self):
        # The dataset folder may hold a stale or partial build (PyG has just created raw/).
        build_ogb_dataset(
            nci_tpsa_frame(), NAME, self.original_root, target_columns=["tpsa"], id_column="nci_id", overwrite=True
        )
