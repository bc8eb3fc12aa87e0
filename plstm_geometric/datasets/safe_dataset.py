r"""PyG's in-memory dataset with every load made safe, and the check that a dataset name is a plain name.

PyG's :class:`~torch_geometric.data.Dataset` compares the :obj:`pre_transform` and :obj:`pre_filter` of a
processed folder with :func:`torch.load(weights_only=False)`, and
:meth:`~torch_geometric.data.InMemoryDataset.load` retries a refused safe load with full unpickling:
either runs code from a crafted folder. :class:`SafeInMemoryDataset` does the same work with
:func:`~plstm_geometric.datasets.safe_load.safe_torch_load` only.
"""

import os
import os.path as osp
import re
import warnings
from typing import Any

import torch
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.data.data import BaseData
from torch_geometric.data.dataset import _repr, files_exist

from .paths import owned_path
from .safe_load import file_error, safe_torch_load

PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def check_dataset_name(name, argument: str = "name") -> str:
    r"""Returns :obj:`name` if it is a plain folder name, raises otherwise.

    A plain name has letters, digits, :obj:`_`, :obj:`-` and :obj:`.` only and does not start with
    :obj:`.`: no path separator, no :obj:`"."` or :obj:`".."`, not absolute, not empty, so the dataset's
    folder is always a direct child of the data root (nothing outside it is read, replaced or deleted).
    """
    if not isinstance(name, str):
        raise TypeError(f"{argument}: expected a str, got {type(name).__name__}")
    if not PLAIN_NAME.fullmatch(name):
        raise ValueError(
            f"{argument}: expected a plain dataset name (letters, digits, '_', '-', '.'; not "
            f"starting with '.', no path separators), got {name!r}"
        )
    return name


class SafeInMemoryDataset(InMemoryDataset):
    r"""An :class:`~torch_geometric.data.InMemoryDataset` whose loads never run code from the folder, and
    whose writes never leave the data root.

    :obj:`processed/pre_transform.pt` and :obj:`processed/pre_filter.pt` must hold a string (the repr PyG
    writes); the processed data file must hold what :meth:`InMemoryDataset.save` writes. Anything else,
    and any damaged file, raises :class:`~plstm_geometric.datasets.safe_load.DatasetFileError` naming the
    file and the fix. Before a download into :obj:`raw_dir` or processing into :obj:`processed_dir`, the
    folder is checked to lie inside :attr:`data_root` (:func:`~plstm_geometric.datasets.paths.owned_path`),
    symbolic links resolved.
    """

    @property
    def data_root(self) -> str:
        """The folder this dataset owns (subclasses set the data root they were given); default :obj:`root`."""
        return self.__dict__.get("data_root", self.root)

    @data_root.setter
    def data_root(self, value) -> None:
        self.__dict__["data_root"] = os.fspath(value)

    def _download(self):
        if files_exist(self.raw_paths):
            return
        owned_path(self.raw_dir, self.data_root)
        super()._download()

    def _process(self):
        # PyG's Dataset._process, with safe loads of the stored transform reprs.
        for kind, value in (("pre_transform", self.pre_transform), ("pre_filter", self.pre_filter)):
            path = osp.join(self.processed_dir, f"{kind}.pt")
            if self.force_reload or not osp.exists(path):
                continue
            stored = safe_torch_load(path)
            if not isinstance(stored, str):
                raise file_error(path, f"expected the repr of the {kind} (a str), got {type(stored).__name__}")
            if stored != _repr(value):
                warnings.warn(
                    f"The `{kind}` argument differs from the one used to process {self.processed_dir}; "
                    f"pass force_reload=True to process the dataset again.",
                    stacklevel=2,
                )
        if not self.force_reload and files_exist(self.processed_paths):
            return
        owned_path(self.processed_dir, self.data_root)
        os.makedirs(self.processed_dir, exist_ok=True)
        self.process()
        for kind, value in (("pre_transform", self.pre_transform), ("pre_filter", self.pre_filter)):
            torch.save(_repr(value), osp.join(self.processed_dir, f"{kind}.pt"))

    def load(self, path: str, data_cls: type[BaseData] = Data) -> None:
        """Loads what :meth:`InMemoryDataset.save` wrote, with a safe load and a check of its structure."""
        data, self.slices, data_cls = load_collated(path, 3)[:3]
        self.data = data_cls.from_dict(data)


def load_collated(path: str, length: int) -> tuple[Any, ...]:
    r"""Safely loads a collated dataset file: a tuple of :obj:`length` items, a data dict first, a slices
    dict second and a :class:`~torch_geometric.data.data.BaseData` subclass last."""
    out = safe_torch_load(path)
    if not isinstance(out, tuple) or len(out) != length:
        raise file_error(
            path,
            f"expected a tuple of {length} items (data, slices, ..., class), got "
            f"{type(out).__name__}{f' of {len(out)} items' if isinstance(out, tuple) else ''}",
        )
    data, slices, data_cls = out[0], out[1], out[-1]
    if not isinstance(data, dict) or not isinstance(slices, (dict, type(None))):
        raise file_error(
            path, f"expected a data dict and a slices dict, got {type(data).__name__} and {type(slices).__name__}"
        )
    if not isinstance(data_cls, type) or not issubclass(data_cls, BaseData):
        raise file_error(path, f"expected a PyG data class last, got {data_cls!r}")
    return out
