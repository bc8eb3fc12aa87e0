"""pLSTM and parallel linear recurrences for PyTorch Geometric.

Subpackages: :mod:`.graph` (integer structure), :mod:`.functional` (the ops), :mod:`.nn` (layers),
:mod:`.transforms` (precomputed structure and its batching), :mod:`.models` (complete models). The
molecule datasets (:mod:`.datasets`, which need OGB and RDKit) are imported on demand.
"""

__version__ = "0.1.0"

from . import checks, functional, graph, models, nn, transforms

__all__ = ["checks", "graph", "functional", "nn", "transforms", "models", "__version__"]
