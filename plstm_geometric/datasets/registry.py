"""Datasets by name: the entry point of the training command line."""
from .embedded import EmbeddedMolDataset, NAME as EMBEDDED_NAME
from .ogb import OGBMolDataset, ogb_mol_names
from .tu import TU_NAMES, TUGraphDataset


def dataset_names() -> list:
    """Every name :func:`load_dataset` accepts."""
    return [EMBEDDED_NAME] + ogb_mol_names() + list(TU_NAMES)


def load_dataset(name: str, root: str = "datasets"):
    r"""The dataset called :obj:`name`, downloaded or built under :obj:`root` on first use.

    * :obj:`"nci-tpsa"`: :class:`EmbeddedMolDataset` (built from files shipped with RDKit);
    * :obj:`"ogbg-mol*"`: :class:`OGBMolDataset` (downloaded unless rebuilt offline);
    * :obj:`"MUTAG"`, :obj:`"NCI1"`, :obj:`"PROTEINS"`, :obj:`"PTC_FM"`: :class:`TUGraphDataset`.

    Every one has :obj:`get_idx_split()`, :obj:`eval_metric`, :obj:`task_type`,
    :obj:`num_tasks` and :obj:`evaluator` (with OGB's :obj:`eval(input_dict)`).
    """
    if name == EMBEDDED_NAME:
        return EmbeddedMolDataset(root)
    if name in TU_NAMES:
        return TUGraphDataset(name, root)
    if isinstance(name, str) and name.startswith("ogbg-mol"):
        return OGBMolDataset(name, root)
    raise ValueError(f"name must be one of {dataset_names()}, got {name!r}")
