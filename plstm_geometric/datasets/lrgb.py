r"""LRGB's Peptides-func (Dwivedi et al. 2022, Long Range Graph Benchmark): 15,535 peptides, 10 functions.

The dataset is built from LRGB's two official files, kept in LRGB's layout under the data root::

    <root>/peptides-functional/raw/peptide_multi_class_dataset.csv.gz   (columns smiles, labels, ...)
    <root>/peptides-functional/splits_random_stratified_peptide.pickle  (dict of train / val / test)

Each peptide's SMILES becomes a graph with OGB's :func:`~ogb.utils.smiles2graph` (9 integer atom and 3
integer bond features, bonds in both directions), as LRGB's loaders do; its label is the row's list of 10
binary functions. The split pickle is read with
:func:`~plstm_geometric.datasets.safe_load.load_index_pickle` only, so a crafted file cannot run code.
Both files are md5-checked against the hashes LRGB's loaders check, when downloaded, when copied in with
:func:`prepare_peptides` and before a build.

The metric is LRGB's: average precision of each task over its labelled graphs (a task whose labels lack
a class is left out), averaged over the tasks (:obj:`eval_metric = "ap"` of
:class:`~plstm_geometric.datasets.OGBStyleEvaluator`).
"""

import hashlib
import json
import os
import os.path as osp
import shutil
import tempfile
from collections.abc import Callable
from urllib.error import URLError

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data, download_url

from .evaluator import OGBStyleEvaluator
from .paths import owned_path
from .safe_dataset import SafeInMemoryDataset
from .safe_load import file_error, load_index_pickle

NAME = "peptides-func"
FOLDER = "peptides-functional"
RAW_FILE = "peptide_multi_class_dataset.csv.gz"
SPLIT_FILE = "splits_random_stratified_peptide.pickle"
# LRGB's official copies and the md5 sums its loaders check.
URLS = {
    RAW_FILE: "https://www.dropbox.com/s/ol2v01usvaxbsr8/peptide_multi_class_dataset.csv.gz?dl=1",
    SPLIT_FILE: "https://www.dropbox.com/s/j4zcnx2eipuo0xz/splits_random_stratified_peptide.pickle?dl=1",
}
MD5 = {RAW_FILE: "701eb743e899f4d793f0e13c8fa5a1b4", SPLIT_FILE: "5a0114bdadc80b94fc7ae974f13ef061"}
NUM_TASKS = 10
# LRGB names the parts train / val / test; this package's datasets say valid.
SPLIT_NAMES = {"train": "train", "valid": "val", "test": "test"}
PREPARE_HINT = f"copy the official files with `python -m plstm_geometric.datasets prepare {NAME} --from PATH`"


def md5sum(path: str | os.PathLike) -> str:
    """The md5 hex digest of a file, read in blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: str | os.PathLike, expected: str) -> None:
    """Raises :class:`~plstm_geometric.datasets.DatasetFileError` unless :obj:`path` has md5 :obj:`expected`."""
    found = md5sum(path)
    if found != expected:
        raise file_error(
            path,
            f"expected LRGB's official file (md5 {expected}), got md5 {found}",
            f"replace it with the official file ({PREPARE_HINT})",
        )


def _peptides_files(folder: str) -> dict[str, str] | None:
    """Where the two files are in :obj:`folder`, in LRGB's layout or side by side (``None``: not there)."""
    for raw, split in (
        (osp.join(folder, "raw", RAW_FILE), osp.join(folder, SPLIT_FILE)),
        (osp.join(folder, RAW_FILE), osp.join(folder, SPLIT_FILE)),
        (osp.join(folder, "raw", RAW_FILE), osp.join(folder, "raw", SPLIT_FILE)),
    ):
        if osp.isfile(raw) and osp.isfile(split):
            return {RAW_FILE: raw, SPLIT_FILE: split}
    return None


def prepare_peptides(
    source: str | os.PathLike, root: str | os.PathLike = "datasets", link: bool = False, check_md5_sums: bool = True
) -> str:
    r"""Copies (or links) LRGB's two Peptides-func files from :obj:`source` into the data root.

    :obj:`source` holds :obj:`raw/peptide_multi_class_dataset.csv.gz` and
    :obj:`splits_random_stratified_peptide.pickle` (LRGB's layout), or both files side by side, or a
    :obj:`peptides-functional/` subfolder of either kind. The files are md5-checked before anything is
    written, then replace :obj:`<root>/peptides-functional/`'s files; its processed files are removed so
    that the next load builds the dataset from the new files. A dataset, :obj:`raw/` or :obj:`processed/`
    folder that a symbolic link leads out of the data root is refused
    (:func:`~plstm_geometric.datasets.paths.owned_path`) before anything is written or deleted.

    Args:
        source: the folder with the files.
        root: the data root.
        link (bool): make symbolic links to the files instead of copies.
        check_md5_sums (bool): refuse files other than LRGB's official ones.

    Returns:
        the dataset folder, :obj:`<root>/peptides-functional`.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source: expected a path, got {type(source).__name__}")
    for argument, value in (("link", link), ("check_md5_sums", check_md5_sums)):
        if not isinstance(value, bool):
            raise TypeError(f"{argument}: expected a bool, got {type(value).__name__}")
    source = os.fspath(source)
    files = _peptides_files(source) or _peptides_files(osp.join(source, FOLDER))
    if files is None:
        raise FileNotFoundError(
            f"source: expected a folder holding {RAW_FILE} (or raw/{RAW_FILE}) and "
            f"{SPLIT_FILE}, or a {FOLDER}/ subfolder with them, got {source!r}"
        )
    if check_md5_sums:
        for name, path in files.items():
            check_md5(path, MD5[name])
    folder = osp.join(os.fspath(root), FOLDER)
    processed = osp.join(folder, "processed")
    for path in (folder, osp.join(folder, "raw"), processed):  # nothing outside the data root is written
        owned_path(path, root)
    source_folder = osp.dirname(files[SPLIT_FILE])
    if osp.basename(source_folder) == "raw":
        source_folder = osp.dirname(source_folder)
    if osp.isdir(folder) and osp.samefile(source_folder, folder):
        raise ValueError(f"source: expected a folder other than the destination {folder!r}, got {source!r}")
    os.makedirs(folder, exist_ok=True)
    # Staged next to the destination and moved into place, so an interrupted copy leaves no partial file.
    staging = tempfile.mkdtemp(prefix=".prepare-", dir=folder)
    try:
        for name, path in files.items():
            target = osp.join(staging, name)
            if link:
                os.symlink(osp.abspath(path), target)
            else:
                shutil.copyfile(path, target)
        if osp.isdir(processed) and not osp.islink(processed):
            shutil.rmtree(processed)
        elif osp.lexists(processed):
            os.remove(processed)
        os.makedirs(osp.join(folder, "raw"), exist_ok=True)
        os.replace(osp.join(staging, RAW_FILE), osp.join(folder, "raw", RAW_FILE))
        os.replace(osp.join(staging, SPLIT_FILE), osp.join(folder, SPLIT_FILE))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def read_peptides_csv(path: str) -> pd.DataFrame:
    r"""The :obj:`smiles` and :obj:`labels` columns of LRGB's CSV, labels parsed into lists of 10 ints; an
    empty or blank SMILES cell, or a label cell other than a list of 10 zeros and ones, raises
    :class:`~plstm_geometric.datasets.DatasetFileError` naming its row."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, EOFError) as error:
        raise file_error(path, f"not a readable CSV ({type(error).__name__}: {error})", PREPARE_HINT) from error
    missing = [column for column in ("smiles", "labels") if column not in frame.columns]
    if missing:
        raise file_error(path, f"expected the columns 'smiles' and 'labels', got {list(frame.columns)}", PREPARE_HINT)
    labels = []
    for row, text in enumerate(frame["labels"]):
        # A JSON list ("[0, 1, ...]"): parsed as data, never evaluated.
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            value = None
        if (
            not isinstance(value, list)
            or len(value) != NUM_TASKS
            or any(isinstance(v, bool) or v not in (0, 1) for v in value)
        ):
            raise file_error(
                path,
                f"expected labels as a list of {NUM_TASKS} zeros and ones, got {text!r} in row {row}",
                PREPARE_HINT,
            )
        labels.append(value)
    for row, smiles in enumerate(frame["smiles"]):
        # An empty cell reads as NaN (a float); a blank one would parse as a molecule without atoms.
        if not isinstance(smiles, str) or not smiles.strip():
            shown = "an empty cell" if not isinstance(smiles, str) or not smiles else repr(smiles)
            raise file_error(path, f"expected a SMILES string in every row, got {shown} in row {row}", PREPARE_HINT)
    return pd.DataFrame({"smiles": frame["smiles"], "labels": labels})


def read_peptides_split(path: str, num_graphs: int) -> dict[str, torch.Tensor]:
    r"""LRGB's split pickle as long index tensors :obj:`"train"`, :obj:`"valid"`, :obj:`"test"`, read with
    :func:`~plstm_geometric.datasets.load_index_pickle` and checked: LRGB's three keys, flat int64 arrays of
    indices in [0, :obj:`num_graphs`), no index twice."""
    content = load_index_pickle(path, PREPARE_HINT)
    if not isinstance(content, dict) or set(content) != set(SPLIT_NAMES.values()):
        found = sorted(map(str, content)) if isinstance(content, dict) else type(content).__name__
        raise file_error(
            path, f"expected a dict with the keys {sorted(SPLIT_NAMES.values())}, got {found}", PREPARE_HINT
        )
    split, seen = {}, np.zeros(num_graphs, dtype=bool)
    for ours, theirs in SPLIT_NAMES.items():
        index = content[theirs]
        if not isinstance(index, np.ndarray) or index.ndim != 1:
            raise file_error(
                path,
                f"{theirs}: expected a flat index array, got {type(index).__name__} of shape "
                f"{getattr(index, 'shape', None)}",
                PREPARE_HINT,
            )
        if index.size and (index.min() < 0 or index.max() >= num_graphs):
            raise file_error(
                path,
                f"{theirs}: expected graph indices in [0, {num_graphs}), got {int(index.min())} to {int(index.max())}",
                PREPARE_HINT,
            )
        if np.unique(index).size != index.size or seen[index].any():
            raise file_error(
                path,
                f"{theirs}: expected indices that no other part (and no other row of its own) holds, got repeated ones",
                PREPARE_HINT,
            )
        seen[index] = True
        split[ours] = torch.from_numpy(index.copy())
    return split


class PeptidesFunctional(SafeInMemoryDataset):
    r"""LRGB's Peptides-func: multi-label classification of 15,535 peptide graphs into 10 functions.

    Graphs have OGB's molecule features (:obj:`x` long [N, 9], :obj:`edge_attr` long [E, 3], bonds in both
    directions) and :obj:`y` float [1, 10] of 0/1. LRGB's stratified split holds 10,873 / 2,331 / 2,331
    graphs; the score is the average precision over the 10 tasks.

    The files live in :obj:`<root>/peptides-functional/` in LRGB's layout (see the module docstring). When
    they are missing they are downloaded from LRGB's copies; :func:`prepare_peptides` (or
    ``python -m plstm_geometric.datasets prepare peptides-func --from PATH``) copies them from a local
    folder instead. Building runs RDKit through OGB (both imported only then) once per peptide.

    Args:
        root (str): the data root.
        transform, pre_transform, pre_filter (callable, optional): PyG transforms and filter.
        force_reload (bool): build the dataset again.
        check_md5_sums (bool): refuse raw files other than LRGB's official ones (checked before a build);
            turn off to build from a CSV and split file of LRGB's format with other content.

    Attributes:
        eval_metric: :obj:`"ap"`; task_type: :obj:`"binary classification"` (10 binary tasks);
        num_tasks: 10.
    """

    name = NAME
    eval_metric = "ap"
    task_type = "binary classification"
    num_tasks = NUM_TASKS

    def __init__(
        self,
        root: str = "datasets",
        transform: Callable | None = None,
        pre_transform: Callable | None = None,
        pre_filter: Callable | None = None,
        force_reload: bool = False,
        check_md5_sums: bool = True,
    ):
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root: expected a path, got {type(root).__name__}")
        for argument, value in (("force_reload", force_reload), ("check_md5_sums", check_md5_sums)):
            if not isinstance(value, bool):
                raise TypeError(f"{argument}: expected a bool, got {type(value).__name__}")
        self.original_root = self.data_root = os.fspath(root)
        self.check_md5_sums = check_md5_sums
        self._split = None
        super().__init__(
            osp.join(self.original_root, FOLDER), transform, pre_transform, pre_filter, force_reload=force_reload
        )
        self.load(self.processed_paths[0])

    @property
    def raw_file_names(self):
        return [RAW_FILE]

    @property
    def raw_paths(self):
        # LRGB keeps the split next to raw/, not in it.
        return [osp.join(self.raw_dir, RAW_FILE), self.split_path]

    @property
    def split_path(self) -> str:
        return osp.join(self.root, SPLIT_FILE)

    @property
    def processed_file_names(self):
        return ["plstm_geometric_data.pt"]

    @property
    def evaluator(self) -> OGBStyleEvaluator:
        """LRGB's average precision: :obj:`y_true` (0/1, NaN where unknown) and :obj:`y_pred` (scores) of
        shape [n, 10]."""
        return OGBStyleEvaluator(self.name, self.num_tasks, self.eval_metric)

    def download(self):
        for name, path in ((RAW_FILE, self.raw_paths[0]), (SPLIT_FILE, self.split_path)):
            if osp.isfile(path):
                continue
            folder = owned_path(osp.dirname(path), self.data_root)
            os.makedirs(folder, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
                try:
                    downloaded = download_url(URLS[name], scratch, filename=name)
                except (URLError, OSError) as error:
                    raise RuntimeError(
                        f"could not download {name} from {URLS[name]} ({error}); without internet, {PREPARE_HINT}"
                    ) from error
                check_md5(downloaded, MD5[name])
                os.replace(downloaded, path)

    def process(self):
        if self.check_md5_sums:
            check_md5(self.raw_paths[0], MD5[RAW_FILE])
            check_md5(self.split_path, MD5[SPLIT_FILE])
        frame = read_peptides_csv(self.raw_paths[0])
        self._read_split(len(frame))  # a bad split file fails before the long build
        from ogb.utils import smiles2graph  # chemistry extra: imported only to build

        data_list = []
        for row, (smiles, labels) in enumerate(zip(frame["smiles"], frame["labels"])):
            try:
                graph = smiles2graph(smiles)
            except Exception as error:  # RDKit returns None for a SMILES it cannot parse; OGB then fails
                raise file_error(
                    self.raw_paths[0],
                    f"expected SMILES RDKit can parse, got {str(smiles)[:80]!r} in row {row} ({type(error).__name__})",
                    PREPARE_HINT,
                ) from error
            data = Data(
                x=torch.from_numpy(graph["node_feat"]).long(),
                edge_index=torch.from_numpy(graph["edge_index"]).long(),
                edge_attr=torch.from_numpy(graph["edge_feat"]).long(),
                y=torch.tensor([labels], dtype=torch.float32),
                num_nodes=int(graph["num_nodes"]),
            )
            if self.pre_filter is not None and not self.pre_filter(data):
                raise ValueError(
                    "pre_filter: expected a filter that keeps every peptide (the split file indexes "
                    f"all {len(frame)} rows), got one that drops row {row}"
                )
            if self.pre_transform is not None:
                data = self.pre_transform(data)
            data_list.append(data)
        self.save(data_list, self.processed_paths[0])

    def _read_split(self, num_graphs: int) -> dict[str, torch.Tensor]:
        return read_peptides_split(self.split_path, num_graphs)

    def get_idx_split(self) -> dict[str, torch.Tensor]:
        """LRGB's stratified split: long index tensors :obj:`"train"`, :obj:`"valid"`, :obj:`"test"` (read from
        the split pickle with :func:`~plstm_geometric.datasets.load_index_pickle`)."""
        if self._split is None:
            self._split = self._read_split(len(self))
        return {name: index.clone() for name, index in self._split.items()}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)})"
