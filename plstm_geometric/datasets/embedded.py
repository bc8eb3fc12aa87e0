"""The embedded default dataset: TPSA regression on RDKit's shipped NCI molecules."""

import os.path as osp

import pandas as pd
from rdkit import RDConfig

from .build_ogb import build_ogb_dataset
from .ogb import OGBMolDataset

NAME = "nci-tpsa"
NCI_DIR = osp.join(RDConfig.RDDataDir, "NCI")
SMILES_FILE = osp.join(NCI_DIR, "first_5K.smi")
TPSA_FILE = osp.join(NCI_DIR, "first_5k.tpsa.csv")

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
    for path in (SMILES_FILE, TPSA_FILE):
        if not osp.isfile(path):
            raise FileNotFoundError(f"{path} is missing from this RDKit installation")
    molecules = pd.read_csv(SMILES_FILE, sep="\t", header=None, names=["smiles", "nci_id"])
    # The first line is a comment; comment="#" cannot be used since "#" is SMILES' triple bond.
    tpsa = pd.read_csv(TPSA_FILE, skiprows=1, header=None, names=["smiles", "tpsa"])
    if len(molecules) != len(tpsa) or not (molecules["smiles"] == tpsa["smiles"]).all():
        raise ValueError(f"{SMILES_FILE} and {TPSA_FILE} do not list the same molecules")
    frame = molecules.assign(tpsa=tpsa["tpsa"])
    frame.attrs["source"] = f"{SMILES_FILE} with {osp.basename(TPSA_FILE)}"
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
