"""pLSTM and parallel linear recurrences for PyTorch Geometric.

Subpackages: :mod:`.graph` (integer structure), :mod:`.functional` (the ops), :mod:`.nn` (layers),
:mod:`.transforms` (precomputed structure and its batching), :mod:`.models` (complete models). The
molecule datasets (:mod:`.datasets`, which need OGB and RDKit) are imported on demand.
"""

__version__ = "0.1.0"

import importlib

__all__ = ["checks", "graph", "functional", "nn", "transforms", "models", "__version__"]
_SUBPACKAGES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str):
    # Subpackages load on first use (PEP 562): ``import plstm_geometric.nn`` or ``plstm_geometric.nn``
    # work as before, while the command lines' ``--help`` and flag errors never wait for torch's import.
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBPACKAGES)
