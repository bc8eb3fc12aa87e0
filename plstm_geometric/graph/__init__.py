from .dag import dagify, node_levels, reverse_dag
from .line_graph import line_graph
from .plan import PLSTMPlan, build_plan

__all__ = ["dagify", "reverse_dag", "node_levels", "line_graph", "PLSTMPlan", "build_plan"]
from .grid import GridChunks, GridDAG, GridWavefronts, grid_chunks, grid_dag, grid_plan, grid_wavefronts
__all__ += ["GridChunks", "GridDAG", "GridWavefronts", "grid_chunks", "grid_dag", "grid_plan", "grid_wavefronts"]
