"""Pure ops without parameters, one folder per op: :mod:`.dag` (pLSTM on DAGs), :mod:`.grid` (pLSTM on 2D
grids) and :mod:`.scan` (parallel linear recurrences), and :mod:`.norm` (the per-head RMS norm of the
layers); :mod:`.common` holds what they share. The Triton kernels are imported on first use."""

from .dag import plstm_dag, plstm_dag_naive
from .grid import (
    GATE_NAMES,
    GRID_ORIENTATIONS,
    GridGates,
    flip_grid,
    plstm_grid,
    plstm_grid_naive,
    plstm_grid_orientations,
    plstm_grid_oriented,
)
from .norm import multi_head_rms_norm
from .scan import linear_recurrence
from .scan.naive import linear_recurrence_naive

#: The former name of :func:`plstm_dag_naive`.
plstm_dag_reference = plstm_dag_naive

__all__ = [
    "plstm_dag",
    "plstm_dag_naive",
    "plstm_dag_reference",
    "plstm_grid",
    "plstm_grid_oriented",
    "plstm_grid_orientations",
    "plstm_grid_naive",
    "GridGates",
    "GATE_NAMES",
    "GRID_ORIENTATIONS",
    "flip_grid",
    "linear_recurrence",
    "linear_recurrence_naive",
    "multi_head_rms_norm",
]
