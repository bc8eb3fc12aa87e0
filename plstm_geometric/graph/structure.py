"""The graph structure one pLSTM sweep needs: oriented DAG, line graph and schedule, bundled together."""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.utils import is_undirected

from ..checks import check_edge_index
from .dag import dagify, node_levels, reverse_dag
from .line_graph import line_graph
from .plan import PLSTMPlan, build_plan

__all__ = ["PLSTMStructure", "plstm_structure", "orient_edges", "line_graph_mode_of", "ORIENTATIONS",
           "LINE_GRAPH_MODES", "LAYER_MODES"]

ORIENTATIONS = ("auto", "dag", "undirected")
LINE_GRAPH_MODES = ("P", "D")
LAYER_MODES = ("P", "D", "unconstrained")


def line_graph_mode_of(mode: str) -> str:
    """The line graph a layer mode sweeps: the multitree for ``"D"``, the full line graph otherwise."""
    if mode not in LAYER_MODES:
        raise ValueError(f"mode: expected one of {LAYER_MODES}, got {mode!r}")
    return "D" if mode == "D" else "P"


@dataclass
class PLSTMStructure:
    r"""Everything a :class:`~plstm_geometric.nn.PLSTMConv` needs to know about the graph of one sweep.

    Attributes:
        edge_index (LongTensor): ``[2, E']`` DAG edges, pointing in the sweep direction.
        edge_id (LongTensor): ``[E']`` column of the input ``edge_index`` (and row of ``edge_attr``) each
            DAG edge was taken from.
        line_edge_index (LongTensor): ``[2, L]`` pairs ``(e_in, e_out)`` of DAG edge ids meeting at a node.
        plan (PLSTMPlan): the level schedule of ``edge_index`` and ``line_edge_index``.
        line_graph_mode (str): ``"P"`` (full line graph) or ``"D"`` (multitree-pruned).
        reverse (bool): whether ``edge_index`` is the reversed DAG.
    """

    edge_index: Tensor
    edge_id: Tensor
    line_edge_index: Tensor
    plan: PLSTMPlan
    line_graph_mode: str
    reverse: bool

    @property
    def num_nodes(self) -> int:
        return self.plan.num_nodes

    def to(self, device) -> "PLSTMStructure":
        return PLSTMStructure(self.edge_index.to(device), self.edge_id.to(device), self.line_edge_index.to(device),
                              self.plan.to(device), self.line_graph_mode, self.reverse)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_nodes={self.num_nodes}, num_edges={self.edge_index.size(1)}, "
                f"num_line_edges={self.line_edge_index.size(1)}, line_graph_mode={self.line_graph_mode}, "
                f"reverse={self.reverse})")


def orient_edges(
    edge_index: Tensor,
    num_nodes: int,
    orientation: str = "auto",
    order: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    r"""Turns the input graph into the DAG that a pLSTM sweeps over.

    * ``orientation="undirected"``: every edge is taken as undirected (PyG stores both directions) and
      oriented by :func:`~plstm_geometric.graph.dagify`: from lower to higher rank, the rank being
      ``order`` (ties broken by node index) or the node index itself.
    * ``orientation="dag"``: the edges are used as given; they must form a DAG.
    * ``orientation="auto"``: ``"undirected"`` when every edge's reverse is present
      (:func:`torch_geometric.utils.is_undirected`), ``"dag"`` otherwise.

    Returns:
        ``(dag_edge_index [2, E'], edge_id [E'])``, ``edge_id`` being the input column of every DAG edge.

    Raises:
        ValueError: a directed input with a cycle (the message names a node on it), or ``order`` given
            for an input used as a DAG, which it would not affect.
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation: expected one of {ORIENTATIONS}, got {orientation!r}")
    check_edge_index(edge_index, num_nodes)  # before PyG's is_undirected, whose errors name nothing
    if orientation == "auto":
        orientation = "undirected" if is_undirected(edge_index, num_nodes=num_nodes) else "dag"
    if orientation == "undirected":
        return dagify(edge_index, num_nodes, order=order, return_edge_id=True)
    if order is not None:
        raise ValueError("order: only used to orient undirected graphs, but the input is used as a DAG "
                         "(a directed graph, or orientation='dag')")
    # node_levels raises ValueError naming a node on a cycle; checked here so that the error names the input.
    node_levels(edge_index, num_nodes)
    return edge_index, torch.arange(edge_index.size(1), device=edge_index.device)


def plstm_structure(
    dag_edge_index: Tensor,
    edge_id: Tensor,
    num_nodes: int,
    line_graph_mode: str = "P",
    reverse: bool = False,
    line_edge_index: Optional[Tensor] = None,
) -> PLSTMStructure:
    r"""Builds the :class:`PLSTMStructure` of one sweep over a DAG from :func:`orient_edges`.

    With ``reverse=True`` the sweep runs against the DAG's edges
    (:func:`~plstm_geometric.graph.reverse_dag`, which keeps edge ids, so ``edge_id`` stays valid). The
    line graph of the swept DAG is computed unless ``line_edge_index`` is given (e.g. precomputed by
    :class:`~plstm_geometric.transforms.PreparePLSTM`); the plan is always built here, because plans of
    single graphs cannot be batched while index tensors can.
    """
    if line_graph_mode not in LINE_GRAPH_MODES:
        raise ValueError(f"line_graph_mode: expected one of {LINE_GRAPH_MODES}, got {line_graph_mode!r}")
    if edge_id.shape != (dag_edge_index.size(1),):
        raise ValueError(f"edge_id: expected shape [{dag_edge_index.size(1)}] (one id per DAG edge), "
                         f"got {tuple(edge_id.shape)}")
    edge_index = reverse_dag(dag_edge_index) if reverse else dag_edge_index
    levels = node_levels(edge_index, num_nodes)
    if line_edge_index is None:
        line_edge_index = line_graph(edge_index, num_nodes, mode=line_graph_mode, node_level=levels)
    plan = build_plan(edge_index, line_edge_index, num_nodes, node_level=levels)
    return PLSTMStructure(edge_index, edge_id, line_edge_index, plan, line_graph_mode, bool(reverse))
