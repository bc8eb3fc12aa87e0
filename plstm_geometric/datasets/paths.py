r"""The one check every write and delete of this package passes: the path stays inside the data root.

A dataset name is a plain name (:func:`~plstm_geometric.datasets.safe_dataset.check_dataset_name`), so a
dataset's folder is a child of the data root by its spelling; a symbolic link can still lead it, or its
:obj:`raw/` or :obj:`processed/` folder, somewhere else. Before a folder is created, written into,
replaced or deleted, :func:`owned_path` resolves it (every link along it, the last one included) and
refuses it unless it lies inside the resolved data root. A link that is itself removed or replaced (a
file :obj:`prepare --link` made) is checked without following it: removing a link never touches what it
points to. A data root that is itself a link is fine: paths are compared after resolving both.
"""

import os
import os.path as osp

__all__ = ["owned_path"]


def owned_path(path: str | os.PathLike, root: str | os.PathLike, follow: bool = True) -> str:
    r"""Returns :obj:`path` (as a str) if writing or deleting there stays inside the data root :obj:`root`.

    Args:
        path: the file or folder about to be created, written, replaced or deleted.
        root: the data root the package owns.
        follow (bool): resolve :obj:`path` itself too (a folder written into or deleted); with
            :obj:`False` only its parent is resolved (a link that is removed or replaced, not followed).

    Raises:
        ValueError: :obj:`path` resolves outside :obj:`root` (a symbolic link along it leads out); nothing
            has been written or deleted.
    """
    path, root = os.fspath(path), os.fspath(root)
    real_root = osp.realpath(root)
    if follow:
        real = osp.realpath(path)
    else:
        real = osp.join(osp.realpath(osp.dirname(path) or os.curdir), osp.basename(path))
    if osp.commonpath([real_root, real]) != real_root:
        raise ValueError(
            f"{path}: expected a path inside the data root {root!r} ({real_root}), got one that resolves "
            f"outside the data root, to {real!r}: a symbolic link leads out of the data root, and this package "
            "writes and deletes only inside it (nothing was written or deleted); replace the link by a folder, "
            "or pass the "
            "folder it leads to as the data root"
        )
    return path
