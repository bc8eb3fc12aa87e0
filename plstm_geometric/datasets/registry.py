"""Datasets by name: the entry point of the training command line."""

import os
import os.path as osp

import numpy as np
import pandas as pd

from .embedded import NAME as EMBEDDED_NAME
from .embedded import EmbeddedMolDataset
from .lrgb import FOLDER as PEPTIDES_FOLDER
from .lrgb import NAME as PEPTIDES_NAME
from .lrgb import PeptidesFunctional
from .ogb import OGBMolDataset, dataset_dir_name, ogb_mol_names
from .safe_dataset import check_dataset_name
from .tu import KNOWN_TU_NAMES, TU_NAMES, TUGraphDataset, is_tu_name


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


def _spelling(name: str) -> str:
    # What the spellings of one name share: case, and '-' against '_' (OGB's names against their folders).
    return name.lower().replace("_", "-")


def _canonical_names(root) -> dict[str, set[str]]:
    """Every canonical name :func:`load_dataset` accepts, each with the other names it goes by (its folder)."""
    names = {EMBEDDED_NAME: {dataset_dir_name(EMBEDDED_NAME)}, PEPTIDES_NAME: {PEPTIDES_FOLDER}}
    for name in ogb_mol_names():
        names[name] = {dataset_dir_name(name)}
    for name in KNOWN_TU_NAMES:
        names.setdefault(name, set())
    if root is None or not osp.isdir(str(root)):
        return names
    # Built with build-ogb: the folder is the --name with '-' as '_', so the name with '-' loads it; a folder
    # with a '-' is no build-ogb folder (load_dataset would look for it with '_').
    for folder in built_dataset_names(root):
        if "-" not in folder:
            names.setdefault(folder.replace("_", "-"), set()).add(folder)
    # TU sets whose raw files prepare --from staged under root: their name is the files' prefix, as it is.
    tu = osp.join(str(root), "TU")
    if osp.isdir(tu):
        for entry in sorted(os.listdir(tu)):
            if is_tu_name(entry, root):
                names.setdefault(entry, set())
    return names


def resolve_dataset_name(name: str, root: str | os.PathLike | None = "datasets") -> str:
    r"""The one canonical name of the dataset :obj:`name` stands for.

    A dataset has one name that every part of the package uses (its run folders, its defaults, its
    results): :obj:`"nci-tpsa"`, OGB's :obj:`"ogbg-molhiv"`, the TU collection's :obj:`"MUTAG"` or
    :obj:`"PTC_FM"`, :obj:`"peptides-func"`, or the :obj:`--name` a dataset was built under (with :obj:`-`
    for :obj:`_`). Its other spellings resolve to it: the dataset's folder name (:obj:`"nci_tpsa"`,
    :obj:`"ogbg_molhiv"`, :obj:`"peptides-functional"`), another case (:obj:`"mutag"`), and :obj:`_`
    against :obj:`-` (:obj:`"ptc-fm"`, :obj:`"imdb_binary"`). A canonical name resolves to itself.

    Args:
        name (str): the name or a spelling of it.
        root (str, optional): the data root, whose datasets built with ``build-ogb`` and TU sets staged with
            ``prepare --from`` are known by name too; :obj:`None` for the built-in names only.

    Returns:
        the canonical name (:func:`load_dataset` accepts it).

    Raises:
        TypeError: :obj:`name` is not a str.
        ValueError: :obj:`name` is not a plain name, names no known dataset (the message lists the known
            names), or is a spelling of more than one (say a built :obj:`mutag` next to TU's :obj:`MUTAG`; the
            message lists them).
    """
    check_dataset_name(name)
    names = _canonical_names(root)
    if name in names:
        return name
    matches = sorted(
        canonical
        for canonical, others in names.items()
        if any(_spelling(spelling) == _spelling(name) for spelling in {canonical} | others)
    )
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(
            f"name: expected one dataset, got {name!r}, which could mean any of {matches}; pass one of them"
        )
    built = [canonical for canonical in names if canonical not in dataset_names() and canonical not in KNOWN_TU_NAMES]
    where = f" under {str(root)!r}" if root is not None else ""
    raise ValueError(
        f"name: expected one of {dataset_names()}, a TU collection name, or a dataset built{where} "
        f"with `python -m plstm_geometric.datasets build-ogb --name NAME --root {root if root is not None else 'ROOT'}`"
        f"{' (there: ' + ', '.join(sorted(built)) + ')' if built else ''} (case, '-' or '_', or the dataset's "
        f"folder name are all the same name), got {name!r}"
    )


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
    :obj:`num_tasks` and :obj:`evaluator` (with OGB's :obj:`eval(input_dict)`). Another spelling of a name
    (:obj:`"nci_tpsa"`, :obj:`"ogbg_molhiv"`, :obj:`"mutag"`) loads the dataset of its canonical name
    (:func:`resolve_dataset_name`), never a second copy under another identity.

    Raises:
        ValueError: :obj:`name` names no known dataset (see :func:`resolve_dataset_name`).
    """
    name = resolve_dataset_name(name, root)
    if name == EMBEDDED_NAME:
        return EmbeddedMolDataset(root)
    if name in ogb_mol_names():
        return OGBMolDataset(name, root)
    if name == PEPTIDES_NAME:
        return PeptidesFunctional(root)
    if is_tu_name(name, root):
        return TUGraphDataset(name, root)
    # What is left is a dataset built under root (resolve_dataset_name found its folder).
    return OGBMolDataset(name, root, meta_info=built_meta_info(_built_folder(name, root)))
