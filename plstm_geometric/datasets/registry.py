"""Datasets by name: the entry point of the training command line."""

import os
import os.path as osp

import numpy as np
import pandas as pd

from .embedded import NAME as EMBEDDED_NAME
from .embedded import EmbeddedMolDataset
from .lrgb import NAME as PEPTIDES_NAME
from .lrgb import PeptidesFunctional
from .ogb import OGBMolDataset, dataset_dir_name, ogb_mol_names
from .safe_dataset import check_dataset_name
from .tu import TU_NAMES, TUGraphDataset, is_tu_name


def dataset_names() -> list:
    """Every name :func:`load_dataset` accepts without a build (datasets built with ``build-ogb``
    under a root are found by name as well, see :func:`built_dataset_names`)."""
    return [EMBEDDED_NAME] + ogb_mol_names() + list(TU_NAMES) + [PEPTIDES_NAME]


def _built_folder(name: str, root) -> str:
    """The folder ``build-ogb --name name --root root`` writes (whether or not it exists)."""
    return osp.join(str(root), dataset_dir_name(name))


def _is_built(folder: str) -> bool:
    return osp.isfile(osp.join(folder, "raw", "graph-label.csv.gz")) and osp.isdir(
        osp.join(folder, "split", "scaffold")
    )


def built_dataset_names(root="datasets") -> list:
    """Folder names under :obj:`root` that hold a dataset written by ``build-ogb`` (OGB's raw layout
    and a scaffold split); each loads by :func:`load_dataset` under its ``--name`` (``-`` and ``_``
    are the same, as in OGB's folder names)."""
    if not osp.isdir(str(root)):
        return []
    return sorted(
        entry for entry in os.listdir(str(root)) if not entry.startswith(".") and _is_built(osp.join(str(root), entry))
    )


def built_meta_info(folder: str) -> dict:
    r"""OGB-style metadata of a dataset built with ``build-ogb`` under another name than OGB's.

    The build records no task type, so it is read off the labels: every known label 0 or 1 means
    binary classification scored by ROC-AUC, anything else regression scored by RMSE (OGB's metrics
    for its molecular sets of those kinds).
    """
    path = osp.join(folder, "raw", "graph-label.csv.gz")
    try:
        labels = pd.read_csv(path, compression="gzip", header=None).to_numpy(dtype=np.float64)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(
            f"{path}: not a readable label file ({error}); rebuild the dataset with "
            f"`python -m plstm_geometric.datasets build-ogb ... --overwrite`"
        ) from error
    known = labels[~np.isnan(labels)]
    binary = known.size > 0 and bool(np.isin(known, (0.0, 1.0)).all())
    return {
        "num tasks": str(labels.shape[1]),
        "eval metric": "rocauc" if binary else "rmse",
        "task type": "binary classification" if binary else "regression",
        "add_inverse_edge": "True",
        "split": "scaffold",
    }


def load_dataset(name: str, root: str = "datasets"):
    r"""The dataset called :obj:`name`, downloaded or built under :obj:`root` on first use.

    * :obj:`"nci-tpsa"`: :class:`EmbeddedMolDataset` (built from files shipped with RDKit);
    * :obj:`"ogbg-mol*"`: :class:`OGBMolDataset` (downloaded unless rebuilt offline);
    * a TU name (:obj:`"MUTAG"`, :obj:`"NCI1"`, :obj:`"PROTEINS"`, :obj:`"ENZYMES"`, ... any name of the TU
      collection, or one whose raw files ``python -m plstm_geometric.datasets prepare NAME --from PATH``
      staged under :obj:`root`): :class:`TUGraphDataset`;
    * :obj:`"peptides-func"`: LRGB's Peptides-func, :class:`~plstm_geometric.datasets.lrgb.PeptidesFunctional`
      (downloaded unless ``python -m plstm_geometric.datasets prepare peptides-func --from PATH`` copied
      the official files under :obj:`root`);
    * any other name that ``python -m plstm_geometric.datasets build-ogb --name NAME --root ROOT``
      has built under :obj:`root`: an :class:`OGBMolDataset` of that folder, its task read off the
      labels (see :func:`built_meta_info`).

    Every one has :obj:`get_idx_split()`, :obj:`eval_metric`, :obj:`task_type`,
    :obj:`num_tasks` and :obj:`evaluator` (with OGB's :obj:`eval(input_dict)`).
    """
    check_dataset_name(name)
    if name == EMBEDDED_NAME:
        return EmbeddedMolDataset(root)
    if name in ogb_mol_names():
        return OGBMolDataset(name, root)
    if name == PEPTIDES_NAME:
        return PeptidesFunctional(root)
    if is_tu_name(name, root):
        return TUGraphDataset(name, root)
    folder = _built_folder(name, root)
    if _is_built(folder):
        return OGBMolDataset(name, root, meta_info=built_meta_info(folder))
    built = built_dataset_names(root)
    raise ValueError(
        f"name: expected one of {dataset_names()}, a TU collection name, or a dataset built "
        f"under {str(root)!r} "
        f"with `python -m plstm_geometric.datasets build-ogb --name NAME --root {root}`"
        f"{' (built there: ' + ', '.join(built) + ')' if built else ''}, got {name!r}"
    )
