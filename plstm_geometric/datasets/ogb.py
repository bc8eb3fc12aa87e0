"""OGB molecular property prediction datasets (ogbg-mol*), loadable with torch >= 2.6."""

import logging
import os.path as osp
import shutil
import tempfile
from collections.abc import Callable, Mapping
from urllib.error import URLError

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data, download_url, extract_zip

from .chemistry import require
from .evaluator import OGBStyleEvaluator
from .ogb_raw import RAW_FIX, read_labels, read_ogb_raw, read_table
from .paths import owned_path
from .safe_dataset import SafeInMemoryDataset, check_dataset_name
from .safe_load import file_error

log = logging.getLogger(__name__)

# OGB's raw layout for molecules: headerless gzip CSVs, one row per node / bond / graph.
RAW_FILE_NAMES = [
    "edge.csv.gz",
    "edge-feat.csv.gz",
    "node-feat.csv.gz",
    "num-node-list.csv.gz",
    "num-edge-list.csv.gz",
    "graph-label.csv.gz",
]
SPLITS = ("train", "valid", "test")


def ogb_master_table() -> pd.DataFrame:
    """OGB's table of graph property datasets (one column per dataset), as shipped with ogb."""
    graphproppred = require("ogb.graphproppred", "OGB's dataset table")
    return pd.read_csv(osp.join(osp.dirname(graphproppred.__file__), "master.csv"), index_col=0, keep_default_na=False)


def ogb_mol_names() -> list:
    """Names of OGB's molecular graph property datasets (``ogbg-mol*``)."""
    master = ogb_master_table()
    return [name for name in master.columns if master[name]["data type"] == "mol"]


def dataset_dir_name(name: str) -> str:
    """OGB's folder name for a dataset: ``ogbg-molhiv`` -> ``ogbg_molhiv`` (a plain name, checked)."""
    return check_dataset_name(name).replace("-", "_")


def non_ogb_name(name: str) -> str:
    """A name for labels that are not OGB's tasks of :obj:`name`: ``ogbg-molclintox`` -> ``clintox``."""
    return name.removeprefix("ogbg-mol").removeprefix("ogbg-")


class OGBMolDataset(SafeInMemoryDataset):
    r"""An OGB molecular dataset (e.g. :obj:`"ogbg-molhiv"`) as PyG :class:`Data` objects.

    A drop-in replacement for :class:`ogb.graphproppred.PygGraphPropPredDataset` that works with
    torch >= 2.6 (OGB 1.3.6 calls :func:`torch.load` without :obj:`weights_only`, and asks for
    confirmation on stdin before some downloads). It reads OGB's raw layout under
    :obj:`root/<name with - replaced by _>/` with OGB's own reader; when the raw files are
    missing it downloads OGB's zip (the URL from OGB's :obj:`master.csv`), without any prompt.
    Raw files written by :func:`~plstm_geometric.datasets.build_ogb_dataset` are used as they
    are, so datasets rebuilt offline load exactly as downloaded ones.

    Each graph has :obj:`x` (long [N, 9]), :obj:`edge_index` (long [2, E], both directions of
    every bond), :obj:`edge_attr` (long [E, 3]) and :obj:`y` ([1, num_tasks]: long for
    classification, float32 when a classification set has missing labels (NaN) and for
    regression), as OGB's :class:`PygGraphPropPredDataset`. The processed file is saved with
    :meth:`InMemoryDataset.save`; every file of the folder loads with :obj:`torch.load(weights_only=True)`
    and never with full unpickling (see :mod:`~plstm_geometric.datasets.safe_load`), so a folder from
    someone else cannot run code. The raw files are checked against each other (node and edge counts,
    edge indices, finite labels) and so are the split files (indices in range).

    Args:
        name (str): an ``ogbg-mol*`` name, or any plain name (no path separators, not starting with
            :obj:`.`) when :obj:`meta_info` is given.
        root (str): the data root; the dataset lives in :obj:`root/<dir name>`, and nothing outside that
            folder is read or written.
        transform, pre_transform (callable, optional): PyG transforms.
        meta_info (mapping, optional): OGB-style metadata for datasets that OGB does not list,
            with the keys of OGB's :obj:`master.csv` that matter here: :obj:`"num tasks"`,
            :obj:`"eval metric"`, :obj:`"task type"`, :obj:`"add_inverse_edge"`
            (:obj:`"True"`/:obj:`"False"`), :obj:`"split"`, and optionally :obj:`"url"` and
            :obj:`"download_name"`.
        force_reload (bool): process the raw files again even if a processed file exists.

    Attributes:
        num_tasks (int): label columns, read from the data; under one of OGB's names it must be OGB's
            (a folder with another count raises a
            :class:`~plstm_geometric.datasets.safe_load.DatasetFileError`: build such labels under a name
            of their own).
        eval_metric (str): OGB's metric, e.g. :obj:`"rocauc"`.
        task_type (str): e.g. :obj:`"binary classification"` or :obj:`"regression"`.
    """

    processed_name = "plstm_geometric_data.pt"

    def __init__(
        self,
        name: str,
        root: str = "datasets",
        transform: Callable | None = None,
        pre_transform: Callable | None = None,
        meta_info: Mapping | None = None,
        force_reload: bool = False,
    ):
        check_dataset_name(name)
        self.name = name
        self.meta_info = self._resolve_meta(name, meta_info)
        self.original_root = self.data_root = str(root)
        self.dir_name = dataset_dir_name(name)
        self.eval_metric = self.meta_info["eval metric"]
        self.task_type = self.meta_info["task type"]
        super().__init__(
            osp.join(self.original_root, self.dir_name), transform, pre_transform, force_reload=force_reload
        )
        self.load(self.processed_paths[0])
        self.num_tasks = int(self._data.y.size(1))
        master = ogb_master_table()
        ogb_tasks = int(master[name]["num tasks"]) if name in master else self.num_tasks
        if self.num_tasks != ogb_tasks:
            # A folder that build-ogb now refuses (an older build, or one written by hand): OGB's name
            # promises OGB's tasks to OGB's Evaluator and to every result reported under that name.
            raise file_error(
                osp.join(self.raw_dir, "graph-label.csv.gz"),
                f"expected OGB's {ogb_tasks} task column{'s' if ogb_tasks != 1 else ''} for {name}, got "
                f"{self.num_tasks}",
                f"rebuild it with OGB's task columns (`python -m plstm_geometric.datasets build-ogb ... --name {name} "
                f"--target-columns ... --overwrite`), or under a name that is not OGB's (`build-ogb ... --name "
                f"{non_ogb_name(name)}`) and load it by that name",
            )

    @staticmethod
    def _resolve_meta(name: str, meta_info: Mapping | None) -> dict[str, str]:
        if meta_info is not None:
            required = ("num tasks", "eval metric", "task type", "add_inverse_edge", "split")
            missing = [key for key in required if key not in meta_info]
            if missing:
                raise ValueError(
                    f"meta_info: expected the keys {list(required)}, got {sorted(meta_info)} (missing {missing})"
                )
            meta = {key: str(value) for key, value in meta_info.items()}
        else:
            names = ogb_mol_names()
            if name not in names:
                raise ValueError(
                    f"name: expected one of OGB's molecular datasets {names} (or pass "
                    f"meta_info for another dataset), got {name!r}"
                )
            meta = {key: str(value) for key, value in ogb_master_table()[name].items()}
        if meta.get("url"):  # the zip's folder is moved into place: it must be a plain name too
            check_dataset_name(meta.get("download_name", ""), "meta_info['download_name']")
        return meta

    @property
    def raw_file_names(self):
        return RAW_FILE_NAMES

    @property
    def processed_file_names(self):
        return self.processed_name

    @property
    def evaluator(self):
        """OGB's :class:`Evaluator` for OGB's datasets, an :class:`OGBStyleEvaluator` otherwise."""
        master = ogb_master_table()
        if self.name in master and int(master[self.name]["num tasks"]) == self.num_tasks:
            return require("ogb.graphproppred", "OGB's evaluator").Evaluator(self.name)
        return OGBStyleEvaluator(self.name, self.num_tasks, self.eval_metric)

    def download(self):
        url = self.meta_info.get("url", "")
        owned_path(self.root, self.original_root)  # the download replaces this folder
        if not url:
            raise FileNotFoundError(
                f"{self.raw_dir} lacks OGB's raw files and {self.name!r} has no download URL; "
                f"build them with `python -m plstm_geometric.datasets build-ogb --csv FILE "
                f"--name {self.name} --root {self.original_root}`"
            )
        with tempfile.TemporaryDirectory(dir=self.original_root, prefix=".download-") as scratch:
            try:
                archive = download_url(url, scratch)
            except (URLError, OSError) as error:
                raise RuntimeError(
                    f"could not download {self.name} from {url} ({error}); without internet, "
                    f"rebuild it offline with `python -m plstm_geometric.datasets build-ogb "
                    f"--csv FILE --name {self.name} --root {self.original_root}`"
                ) from error
            extract_zip(archive, scratch)
            # The zip holds one folder named after the download (e.g. hiv/); it replaces the
            # dataset folder, whose raw files are missing anyway.
            owned_path(self.root, self.original_root)
            shutil.rmtree(self.root)
            shutil.move(osp.join(scratch, self.meta_info["download_name"]), self.root)

    def process(self):
        add_inverse_edge = self.meta_info["add_inverse_edge"] == "True"
        graphs = read_ogb_raw(self.raw_dir, add_inverse_edge=add_inverse_edge)
        labels = read_labels(self.raw_dir, len(graphs))
        if labels.shape[1] != int(self.meta_info["num tasks"]):
            # OGB's names are checked after loading (the processed file may predate this code); for other
            # names num_tasks follows the data.
            log.warning(
                "%s: %d label columns where meta_info says %s; num_tasks follows the labels",
                self.raw_dir,
                labels.shape[1],
                self.meta_info["num tasks"],
            )
        # Same label dtypes as OGB: integer classes unless some label is missing.
        if "classification" in self.task_type and not np.isnan(labels).any():
            label_dtype = torch.long
        else:
            label_dtype = torch.float32

        data_list = []
        for graph, label in zip(graphs, labels):
            data = Data(
                x=torch.from_numpy(graph["node_feat"]),
                edge_index=torch.from_numpy(graph["edge_index"]),
                edge_attr=torch.from_numpy(graph["edge_feat"]),
                y=torch.from_numpy(label).view(1, -1).to(label_dtype),
                num_nodes=int(graph["num_nodes"]),
            )
            data_list.append(data)
        if self.pre_transform is not None:
            data_list = [self.pre_transform(data) for data in data_list]
        self.save(data_list, self.processed_paths[0])

    def get_idx_split(self, split_type: str | None = None) -> dict[str, torch.Tensor]:
        """Train/valid/test graph indices (long tensors) from :obj:`split/<split_type>/`.

        Raises:
            DatasetFileError: a split file is damaged or holds an index outside [0, len(dataset)).
        """
        split_type = split_type or self.meta_info["split"]
        check_dataset_name(split_type, "split_type")
        path = osp.join(self.root, "split", split_type)
        if not osp.isdir(path):
            raise ValueError(f"split_type: expected a folder under {osp.join(self.root, 'split')}, got {split_type!r}")
        return {split: _read_indices(osp.join(path, f"{split}.csv.gz"), len(self)) for split in SPLITS}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, {len(self)})"


def _read_indices(path: str, num_graphs: int) -> torch.Tensor:
    table = read_table(path)
    if table.size == 0:  # a tiny dataset can leave a split empty
        return torch.empty(0, dtype=torch.long)
    if table.shape[1] != 1 or not np.issubdtype(table.dtype, np.integer):
        raise file_error(
            path,
            f"expected one column of integer graph indices, got {table.shape[1]} column(s) of dtype {table.dtype}",
            RAW_FIX,
        )
    indices = table[:, 0].astype(np.int64)
    bad = (indices < 0) | (indices >= num_graphs)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise file_error(path, f"expected graph indices in [0, {num_graphs}), got {indices[row]} in row {row}", RAW_FIX)
    return torch.from_numpy(indices)
