r"""Loading files from a data folder without running code from it.

A data folder may come from someone else, and Python's pickle runs whatever callable a file names.
Every file this package unpickles goes through one of two loaders here:

* :func:`safe_torch_load`: :func:`torch.load` with :obj:`weights_only=True` and nothing else (no retry
  with full unpickling, unlike :func:`torch_geometric.io.fs.torch_load`): tensors, numbers, strings,
  containers and the classes registered with :func:`torch.serialization.add_safe_globals` (PyG
  registers :class:`~torch_geometric.data.Data`).
* :func:`load_index_pickle`: a restricted unpickler for index files such as LRGB's split pickles,
  which accepts plain containers of numpy int64 arrays and nothing else.

Both raise :class:`DatasetFileError`, naming the file and how to rebuild it, for a file they refuse
and for a damaged one (truncated, garbage bytes, wrong structure).
"""

import io
import os
import pickle
from typing import Any

import numpy as np
import torch

REBUILD = "rebuild it with force_reload=True, or delete the dataset folder to build it again"


class DatasetFileError(RuntimeError):
    """A file of a data folder that is damaged, of an unexpected structure, or refused as unsafe."""


def file_error(path, problem: str, fix: str | None = None) -> DatasetFileError:
    """A :class:`DatasetFileError` saying which file is bad, why, and how to rebuild it."""
    return DatasetFileError(f"{os.fspath(path)}: {problem}; {fix or REBUILD}")


def safe_torch_load(path, map_location: Any = "cpu", fix: str | None = None) -> Any:
    r""":func:`torch.load` with :obj:`weights_only=True`, never falling back to full unpickling.

    Args:
        path: the file.
        map_location: as in :func:`torch.load` (default: CPU).
        fix (str, optional): how to rebuild the file, for the error message (default: pass
            :obj:`force_reload=True` or delete the dataset folder).

    Raises:
        DatasetFileError: the file is missing, damaged (truncated, not a torch file) or holds
            objects other than tensors, numbers, strings, containers and registered classes.
    """
    if not os.path.isfile(path):
        raise file_error(path, "expected a file, got nothing at this path", fix)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch names the refused global ("... GLOBAL posix.system ..."); other failures are damage.
        if "global" in str(error).lower():
            problem = (
                "expected tensors, numbers, strings and containers only, got an object a "
                "safe load refuses (the file may try to run code; it was not loaded)"
            )
        else:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()] or ["UnpicklingError"]
            detail = next((line for line in lines if "Unsupported" in line or "load key" in line), lines[0])
            problem = f"damaged file, not a torch file ({detail[:200]})"
        raise file_error(path, problem, fix) from error
    except (
        EOFError,
        OSError,
        RuntimeError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        AssertionError,
        MemoryError,
    ) as error:
        raise file_error(path, f"damaged file ({type(error).__name__}: {_first_line(error)})", fix) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


# numpy pickles an array as numpy.core.multiarray._reconstruct(ndarray, (0,), b'b') followed by
# __setstate__ with (version, shape, dtype(...), fortran, bytes); numpy 2 names the module numpy._core.
_INDEX_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _IndexUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _INDEX_GLOBALS:
            raise pickle.UnpicklingError(
                f"expected numpy arrays and plain containers only, got a reference to {module}.{name}"
            )
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.empty(0))[0]
        return getattr(np, name)

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("expected numpy arrays and plain containers only, got a persistent id")


def load_index_pickle(path, fix: str | None = None):
    r"""Loads a pickle of dicts, lists and tuples of numpy int64 arrays (e.g. LRGB's split files).

    The unpickler resolves numpy's array reconstruction and nothing else, so a crafted file cannot run
    code; the result is then checked to hold only plain containers (keys: str or int) and int64 arrays.

    Args:
        path: the pickle file.
        fix (str, optional): how to rebuild the file, for the error message.

    Raises:
        DatasetFileError: the file is missing, damaged, refers to anything but numpy arrays, or holds
            something other than containers of int64 arrays.
    """
    if not os.path.isfile(path):
        raise file_error(path, "expected a file, got nothing at this path", fix)
    with open(path, "rb") as handle:
        content = handle.read()
    try:
        value = _IndexUnpickler(io.BytesIO(content)).load()
    except pickle.UnpicklingError as error:
        raise file_error(
            path, f"refused or damaged index pickle ({_first_line(error)}; nothing was run)", fix
        ) from error
    except (EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError, MemoryError, OverflowError) as error:
        raise file_error(path, f"damaged index pickle ({type(error).__name__}: {_first_line(error)})", fix) from error
    problem = _index_structure_problem(value)
    if problem is not None:
        raise file_error(path, problem, fix)
    return value


def _index_structure_problem(value, where: str = "the file") -> str | None:
    if isinstance(value, np.ndarray):
        if value.dtype != np.int64:
            return f"{where}: expected a numpy int64 array, got dtype {value.dtype}"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                return f"{where}: expected str or int keys, got {type(key).__name__}"
            problem = _index_structure_problem(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _index_structure_problem(item, f"{where}[{index}]")
            if problem:
                return problem
        return None
    return f"{where}: expected dicts, lists or tuples of numpy int64 arrays, got {type(value).__name__}"
