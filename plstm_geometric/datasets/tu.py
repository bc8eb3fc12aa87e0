r"""TU graph classification datasets and their 10-fold cross-validation protocol.

Protocol (stratified 10-fold cross-validation with an 8/1/1 train/valid/test partition per
fold): the graphs are cut into 10 stratified folds (shuffled with a fixed seed); run :math:`i`
tests on fold :math:`i`, validates on fold :math:`(i + 1) \bmod 10` and trains on the other 8.
Each run keeps the epoch with the best validation accuracy (the earliest on ties) and reports
its test accuracy; the result is the mean and standard deviation over the 10 runs
(:func:`best_validation_accuracy`).
"""

import os
import os.path as osp
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from torch_geometric.data import InMemoryDataset
from torch_geometric.datasets import TUDataset
from torch_geometric.io import fs, read_tu_data

from .evaluator import OGBStyleEvaluator
from .paths import owned_path
from .safe_dataset import PLAIN_NAME, SafeInMemoryDataset, check_dataset_name, load_collated
from .safe_load import file_error
from .tu_raw import check_tu_raw

# The sets of the pLSTM paper's TU table.
TU_NAMES = ("MUTAG", "NCI1", "PROTEINS", "PTC_FM")
# Sets of the TU Dortmund collection (https://chrsmrrs.github.io/datasets/) that PyG can download by name;
# any other name works when its raw files are under the data root (see :func:`prepare_tu`).
KNOWN_TU_NAMES = TU_NAMES + (
    "AIDS",
    "BZR",
    "BZR_MD",
    "COX2",
    "COX2_MD",
    "DHFR",
    "DHFR_MD",
    "ER_MD",
    "FRANKENSTEIN",
    "Mutagenicity",
    "NCI109",
    "PTC_FR",
    "PTC_MM",
    "PTC_MR",
    "DD",
    "ENZYMES",
    "KKI",
    "OHSU",
    "Peking_1",
    "PROTEINS_full",
    "COLLAB",
    "IMDB-BINARY",
    "IMDB-MULTI",
    "REDDIT-BINARY",
    "REDDIT-MULTI-5K",
    "REDDIT-MULTI-12K",
    "COLORS-3",
    "SYNTHETIC",
    "SYNTHETICnew",
    "Synthie",
    "TRIANGLES",
    "MSRC_9",
    "MSRC_21",
    "MSRC_21C",
    "Letter-high",
    "Letter-low",
    "Letter-med",
    "Fingerprint",
    "Cuneiform",
    "COIL-DEL",
    "COIL-RAG",
)
# Files a TU set must have; node labels, node attributes, edge labels etc. are optional.
TU_REQUIRED = ("A", "graph_indicator", "graph_labels")


def tu_raw_dir(name: str, root: str | os.PathLike = "datasets") -> str:
    """The folder :class:`TUGraphDataset` reads the raw text files of :obj:`name` from: :obj:`root/TU/<name>/raw`."""
    return osp.join(os.fspath(root), "TU", check_dataset_name(name), "raw")


def is_tu_name(name, root: str | os.PathLike | None = None) -> bool:
    r"""Whether :class:`TUGraphDataset` can load :obj:`name`: a known TU set (:obj:`KNOWN_TU_NAMES`,
    downloadable), or any plain name whose raw files (:obj:`<name>_A.txt`, ...) are in
    :func:`tu_raw_dir` of :obj:`root`. Never raises."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        return False
    if name in KNOWN_TU_NAMES:
        return True
    if root is None:
        return False
    raw = tu_raw_dir(name, root)
    return all(osp.isfile(osp.join(raw, f"{name}_{part}.txt")) for part in TU_REQUIRED)


def prepare_tu(name: str, source: str | os.PathLike, root: str | os.PathLike = "datasets", link: bool = False) -> str:
    r"""Copies (or links) the raw TU text files of :obj:`name` from :obj:`source` into the data root.

    :obj:`source` is the folder holding :obj:`<name>_A.txt`, :obj:`<name>_graph_indicator.txt`,
    :obj:`<name>_graph_labels.txt` and the optional files (node labels, node attributes, edge labels, ...),
    or a folder with a :obj:`<name>/` (or :obj:`<name>/raw/`) subfolder holding them. Every
    :obj:`<name>_*.txt` file (and a :obj:`README.txt`) goes to :func:`tu_raw_dir`, replacing what was there;
    the processed files of :obj:`name` are removed so that the next load processes the new files. The files
    are checked first (:func:`~plstm_geometric.datasets.tu_raw.check_tu_raw`): a damaged one raises a
    :class:`~plstm_geometric.datasets.safe_load.DatasetFileError` and nothing is copied or removed. A dataset,
    :obj:`raw/` or :obj:`processed/` folder that a symbolic link leads out of the data root is refused
    (:func:`~plstm_geometric.datasets.paths.owned_path`) before anything is written or deleted.

    Args:
        name (str): the set's name, a plain name (e.g. :obj:`"MUTAG"`).
        source: the folder with the files.
        root: the data root.
        link (bool): make symbolic links to the files instead of copies.

    Returns:
        the raw folder.

    Raises:
        DatasetFileError: a file of :obj:`source` is damaged or disagrees with the others (see
            :func:`~plstm_geometric.datasets.tu_raw.check_tu_raw`).
    """
    check_dataset_name(name)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source: expected a path, got {type(source).__name__}")
    source = os.fspath(source)
    candidates = [source, osp.join(source, name), osp.join(source, name, "raw")]
    found = [folder for folder in candidates if osp.isfile(osp.join(folder, f"{name}_A.txt"))]
    if not found:
        raise FileNotFoundError(
            f"source: expected a folder holding {name}_A.txt (or a {name}/ subfolder with it), got {source!r}"
        )
    folder = found[0]
    missing = [f"{name}_{part}.txt" for part in TU_REQUIRED if not osp.isfile(osp.join(folder, f"{name}_{part}.txt"))]
    if missing:
        raise FileNotFoundError(
            f"source: expected the TU files {[f'{name}_{p}.txt' for p in TU_REQUIRED]} in "
            f"{folder!r}, got a folder without {missing}"
        )
    # Checked before anything is replaced: a damaged source leaves the files already in place untouched.
    check_tu_raw(folder, name)
    files = sorted(
        entry
        for entry in os.listdir(folder)
        if (entry.startswith(f"{name}_") and entry.endswith(".txt")) or entry == "README.txt"
    )
    raw = tu_raw_dir(name, root)
    dataset_dir = osp.dirname(raw)
    processed = osp.join(dataset_dir, "processed")
    for path in (dataset_dir, raw, processed):  # nothing outside the data root is replaced or deleted
        owned_path(path, root)
    if osp.isdir(raw) and osp.samefile(raw, folder):
        raise ValueError(f"source: expected a folder other than the destination {raw!r}, got {source!r}")
    os.makedirs(dataset_dir, exist_ok=True)
    # Staged next to the destination and moved into place, so an interrupted copy leaves no partial raw/.
    staging = tempfile.mkdtemp(prefix=".raw-", dir=dataset_dir)
    try:
        for entry in files:
            path = osp.join(folder, entry)
            if link:
                os.symlink(osp.abspath(path), osp.join(staging, entry))
            else:
                shutil.copyfile(path, osp.join(staging, entry))
        for owned in (raw, processed):
            if osp.isdir(owned) and not osp.islink(owned):
                shutil.rmtree(owned)
            elif osp.lexists(owned):
                os.remove(owned)
        os.replace(staging, raw)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return raw


def tu_folds(labels: torch.Tensor | Sequence[int], num_folds: int = 10, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    r"""Stratified cross-validation folds with a validation fold (see the module docstring).

    Args:
        labels: one class label per graph, shape [num_graphs].
        num_folds (int): number of folds (at least 3: one test, one valid, one train fold).
        seed (int): seed of the stratified shuffle.

    Returns:
        :obj:`num_folds` dicts with sorted long index tensors :obj:`"train"`, :obj:`"valid"`,
        :obj:`"test"`; run :obj:`i` tests on fold :obj:`i` and validates on fold
        :obj:`(i + 1) % num_folds`, so every graph is tested exactly once.
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 1:
        raise ValueError(f"labels: expected one dimension [num_graphs], got shape {tuple(labels.shape)}")
    if isinstance(num_folds, bool) or not isinstance(num_folds, int):
        raise TypeError(f"num_folds: expected an int, got {type(num_folds).__name__}")
    if not 3 <= num_folds <= labels.numel():
        raise ValueError(f"num_folds: expected an int in [3, num_graphs={labels.numel()}], got {num_folds!r}")
    splitter = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    folds = [test for _, test in splitter.split(np.zeros(labels.numel()), labels.numpy())]
    runs = []
    for fold in range(num_folds):
        valid_fold = (fold + 1) % num_folds
        train = np.concatenate([folds[other] for other in range(num_folds) if other not in (fold, valid_fold)])
        runs.append(
            {
                "train": torch.from_numpy(np.sort(train)).long(),
                "valid": torch.from_numpy(np.sort(folds[valid_fold])).long(),
                "test": torch.from_numpy(np.sort(folds[fold])).long(),
            }
        )
    return runs


def best_validation_accuracy(valid_accuracy, test_accuracy) -> dict[str, torch.Tensor]:
    r"""Aggregates a cross-validation: test accuracy at each run's best validation epoch.

    Args:
        valid_accuracy: validation accuracy per run and epoch, shape [num_folds, num_epochs].
        test_accuracy: test accuracy per run and epoch, same shape.

    Returns:
        a dict with :obj:`"mean"` and :obj:`"std"` (population standard deviation, ddof=0) of
        the selected test accuracies (0-dim float64 tensors), :obj:`"per_fold"` (the selected
        test accuracy per run) and :obj:`"best_epoch"` (the earliest epoch with the highest
        validation accuracy per run).
    """
    valid_accuracy = torch.as_tensor(valid_accuracy, dtype=torch.float64)
    test_accuracy = torch.as_tensor(test_accuracy, dtype=torch.float64)
    if valid_accuracy.dim() != 2 or valid_accuracy.numel() == 0:
        raise ValueError(f"valid_accuracy: expected shape [num_folds, num_epochs], got {tuple(valid_accuracy.shape)}")
    if test_accuracy.shape != valid_accuracy.shape:
        raise ValueError(
            f"test_accuracy: expected the shape of valid_accuracy "
            f"{tuple(valid_accuracy.shape)}, got {tuple(test_accuracy.shape)}"
        )
    # argmax of (value == max) picks the first maximal epoch, whatever torch.argmax does on ties.
    best_epoch = (valid_accuracy == valid_accuracy.max(dim=1, keepdim=True).values).long().argmax(dim=1)
    per_fold = test_accuracy.gather(1, best_epoch.view(-1, 1)).view(-1)
    return {
        "mean": per_fold.mean(),
        "std": per_fold.std(unbiased=False),
        "per_fold": per_fold,
        "best_epoch": best_epoch,
    }


class TUGraphDataset(SafeInMemoryDataset, TUDataset):
    r"""A TU dataset (PyG's :class:`TUDataset`) with the OGB-like interface of this package.

    Files live in :obj:`root/TU/<name>/raw/` (PyG's raw text format; PyG downloads a known set when
    they are missing, and :func:`prepare_tu` copies them from another folder). Node features are the
    ones the set has: its continuous node attributes (where present, :obj:`use_node_attr=True`)
    followed by its one-hot node labels; a set with neither has no :obj:`x`. :obj:`edge_attr` holds the
    one-hot edge labels where present. :obj:`y` is the class index, long [1] per graph. The raw files are
    checked before PyG's reader reads them (:func:`~plstm_geometric.datasets.tu_raw.check_tu_raw`: counts,
    node numbers, sorted graph numbers, finite attributes, bounded labels); a damaged one raises a
    :class:`~plstm_geometric.datasets.safe_load.DatasetFileError` naming the file, the line and the fix.
    Graphs without edges at the end of a set stay graphs of their own (PyG's reader alone merges them into
    the last graph with an edge). Every file loads with :obj:`torch.load(weights_only=True)` only (see
    :mod:`~plstm_geometric.datasets.safe_load`).

    Args:
        name (str): a TU dataset name, e.g. :obj:`"MUTAG"` (:obj:`TU_NAMES` holds the paper's four,
            :obj:`KNOWN_TU_NAMES` the downloadable ones); any plain name works when its raw files are
            under :obj:`root` (see :func:`is_tu_name`).
        root (str): the data root.
        transform, pre_transform, pre_filter (callable, optional): PyG transforms and filter.
        use_node_attr (bool): keep the continuous node attributes in :obj:`x` (PyG's default drops them).
        use_edge_attr (bool): keep the continuous edge attributes in :obj:`edge_attr`.
        force_reload (bool): process the raw files again.

    Attributes:
        eval_metric: :obj:`"acc"`; task_type: :obj:`"multiclass classification"`;
        num_tasks: 1.
    """

    eval_metric = "acc"
    task_type = "multiclass classification"
    num_tasks = 1

    def __init__(
        self,
        name: str,
        root: str = "datasets",
        transform=None,
        pre_transform=None,
        pre_filter=None,
        use_node_attr: bool = True,
        use_edge_attr: bool = False,
        force_reload: bool = False,
    ):
        check_dataset_name(name)
        for argument, value in (
            ("use_node_attr", use_node_attr),
            ("use_edge_attr", use_edge_attr),
            ("force_reload", force_reload),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"{argument}: expected a bool, got {type(value).__name__}")
        self.name, self.cleaned, self.data_root = name, False, root
        # TUDataset.__init__ would load the processed file with a fallback to full unpickling: the
        # download and processing steps are PyG's, the load is ours.
        InMemoryDataset.__init__(
            self, osp.join(os.fspath(root), "TU"), transform, pre_transform, pre_filter, force_reload=force_reload
        )
        path = self.processed_paths[0]
        data, self.slices, self.sizes, data_cls = load_collated(path, 4)
        keys = ("num_node_labels", "num_node_attributes", "num_edge_labels", "num_edge_attributes")
        if not isinstance(self.sizes, dict) or not all(isinstance(self.sizes.get(key), int) for key in keys):
            raise file_error(path, f"expected a sizes dict with int {list(keys)}, got {self.sizes!r}")
        self.data = data_cls.from_dict(data)
        if self._data.x is not None and not use_node_attr:
            self._data.x = self._data.x[:, self.num_node_attributes :]
        if self._data.edge_attr is not None and not use_edge_attr:
            self._data.edge_attr = self._data.edge_attr[:, self.num_edge_attributes :]

    def download(self):
        if self.name not in KNOWN_TU_NAMES:
            raise FileNotFoundError(
                f"name: expected a known TU set {KNOWN_TU_NAMES} or raw files in {self.raw_dir}, got "
                f"{self.name!r}; copy them there with `python -m plstm_geometric.datasets prepare {self.name} "
                f"--from PATH`"
            )
        try:
            super().download()
        except OSError as error:
            raise RuntimeError(
                f"could not download {self.name} ({error}); without internet, copy its raw files with "
                f"`python -m plstm_geometric.datasets prepare {self.name} --from PATH`"
            ) from error

    def process(self):
        # TUDataset.process, with the raw files checked first and the edge slices of trailing graphs without
        # edges restored.
        check_tu_raw(self.raw_dir, self.name)
        data, slices, sizes = read_tu_data(self.raw_dir, self.name)
        # PyG's reader ends the edge slices at the last graph with an edge (a bincount over the edges'
        # graphs), so graphs after it would merge into it; they get empty edge slices. y has one entry
        # per graph (graph_labels is required).
        num_graphs = slices["y"].numel() - 1
        for key, value in slices.items():
            if value.numel() < num_graphs + 1:
                slices[key] = torch.cat([value, value[-1:].expand(num_graphs + 1 - value.numel())])
        self.data, self.slices = data, slices
        if self.pre_filter is not None or self.pre_transform is not None:
            data_list = [self.get(index) for index in range(len(self))]
            if self.pre_filter is not None:
                data_list = [data for data in data_list if self.pre_filter(data)]
            if self.pre_transform is not None:
                data_list = [self.pre_transform(data) for data in data_list]
            self.data, self.slices = self.collate(data_list)
            self._data_list = None
        fs.torch_save((self._data.to_dict(), self.slices, sizes, self._data.__class__), self.processed_paths[0])

    def get_idx_split(self, fold: int = 0, num_folds: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
        """The train/valid/test indices of cross-validation run :obj:`fold` (see :func:`tu_folds`)."""
        if isinstance(fold, bool) or not isinstance(fold, int):
            raise TypeError(f"fold: expected an int, got {type(fold).__name__}")
        if not 0 <= fold < num_folds:
            raise ValueError(f"fold: expected an int in [0, {num_folds}), got {fold!r}")
        return tu_folds(self._data.y, num_folds=num_folds, seed=seed)[fold]

    @property
    def evaluator(self) -> OGBStyleEvaluator:
        """Accuracy the OGB way: :obj:`y_true`, :obj:`y_pred` (class indices) of shape [n, 1]."""
        return OGBStyleEvaluator(self.name, 1, "acc")
