"""Integer structure of pLSTM sweeps: DAG orientation, line graphs, topological levels, the schedule
(:class:`PLSTMPlan`) and the bundle one sweep needs (:class:`PLSTMStructure`); :mod:`.grid` holds the
grid DAG and the schedules of the grid backends. No float tensors are computed here."""

from .dag import dagify, node_levels, reverse_dag
from .grid import grid_dag, grid_plan
from .line_graph import line_graph
from .plan import PLSTMPlan, build_plan
from .structure import PLSTMStructure, orient_edges, plstm_structure

__all__ = [
    "dagify",
    "reverse_dag",
    "node_levels",
    "line_graph",
    "PLSTMPlan",
    "build_plan",
    "PLSTMStructure",
    "orient_edges",
    "plstm_structure",
    "grid_dag",
    "grid_plan",
]
