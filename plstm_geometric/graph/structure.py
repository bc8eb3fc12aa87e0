"""The graph structure one pLSTM sweep needs: oriented DAG, line graph and schedule, bundled together."""

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.utils import is_undirected

from ..checks import VALIDATION_STAMPS, check_edge_index, check_node_level, value_range
from .dag import dagify, node_levels, reverse_dag, weak_components
from .line_graph import line_graph
from .plan import PLSTMPlan, build_plan

__all__ = [
    "PLSTMStructure",
    "plstm_structure",
    "orient_edges",
    "check_stored_dag",
    "line_graph_mode_of",
    "ORIENTATIONS",
    "LINE_GRAPH_MODES",
    "LAYER_MODES",
]

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
        return PLSTMStructure(
            self.edge_index.to(device),
            self.edge_id.to(device),
            self.line_edge_index.to(device),
            self.plan.to(device),
            self.line_graph_mode,
            self.reverse,
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_nodes={self.num_nodes}, num_edges={self.edge_index.size(1)}, "
            f"num_line_edges={self.line_edge_index.size(1)}, line_graph_mode={self.line_graph_mode}, "
            f"reverse={self.reverse})"
        )


def orient_edges(
    edge_index: Tensor,
    num_nodes: int,
    orientation: str = "auto",
    order: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Turns the input graph into the DAG that a pLSTM sweeps over.

    * ``orientation="undirected"``: every edge is taken as undirected (PyG stores both directions) and
      oriented by :func:`~plstm_geometric.graph.dagify`: from lower to higher rank, the rank being
      ``order`` (ties broken by node index) or the node index itself.
    * ``orientation="dag"``: the edges are used as given; they must form a DAG.
    * ``orientation="auto"``: decided per weakly connected component (per graph of a mini-batch):
      ``"undirected"`` for a component in which every edge's reverse is present, ``"dag"`` for any
      other. A batch mixing molecules and directed graphs is oriented as each graph alone would be.

    Every DAG edge ``u -> v`` carries the input column stored in its own direction when there is one
    (see :func:`~plstm_geometric.graph.dagify`), so direction-dependent edge attributes follow their
    direction and the result does not depend on the order of the columns.

    Returns:
        ``(dag_edge_index [2, E'], edge_id [E'])``, ``edge_id`` being the input column of every DAG edge.

    Raises:
        ValueError: a directed input with a cycle (the message names a node on it, and suggests
            ``orientation="undirected"`` for an undirected graph stored with one direction per edge, such
            as a sampled subgraph), or ``order`` given for an input used entirely as a DAG, which it
            would not affect.
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation: expected one of {ORIENTATIONS}, got {orientation!r}")
    check_edge_index(edge_index, num_nodes)  # before PyG's is_undirected, whose errors name nothing
    if orientation == "auto":
        if is_undirected(edge_index, num_nodes=num_nodes):
            orientation = "undirected"
        else:
            undirected_edge = undirected_components(edge_index, num_nodes)
            if bool(undirected_edge.any()):
                return orient_mixed(edge_index, num_nodes, undirected_edge, order)
            orientation = "dag"
    if orientation == "undirected":
        return dagify(edge_index, num_nodes, order=order, return_edge_id=True)
    if order is not None:
        raise ValueError(
            "order: only used to orient undirected graphs, but the input is used as a DAG "
            "(a directed graph, or orientation='dag')"
        )
    check_acyclic(edge_index, num_nodes)
    return edge_index, torch.arange(edge_index.size(1), device=edge_index.device)


def check_acyclic(edge_index: Tensor, num_nodes: int) -> None:
    # node_levels raises ValueError naming a node on a cycle; checked here so that the error names the input.
    try:
        node_levels(edge_index, num_nodes)
    except ValueError as error:
        raise ValueError(
            f"{error}. If the graph is undirected but stores only some edges in both directions "
            "(e.g. a sampled subgraph), pass orientation='undirected'"
        ) from None


def undirected_components(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``[E]`` bool: whether each edge lies in a weakly connected component whose every edge has its
    reverse in ``edge_index`` (self-loops count as their own reverse)."""
    src, dst = edge_index
    key = src * num_nodes + dst
    has_reverse = torch.isin(dst * num_nodes + src, key)
    component = weak_components(edge_index, num_nodes)
    directed = torch.zeros(num_nodes, dtype=torch.bool, device=edge_index.device)
    directed[component[src[~has_reverse]]] = True
    return ~directed[component[src]]


def orient_mixed(
    edge_index: Tensor, num_nodes: int, undirected_edge: Tensor, order: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Orients the undirected components with :func:`dagify` and keeps the others as given (they must be
    acyclic). The oriented edges come first, in :func:`dagify`'s order, then the others in input order:
    within every component the edges keep the order they have when the component is oriented alone,
    which the D-mode line graph depends on."""
    undirected_id = undirected_edge.nonzero().view(-1)
    directed_id = (~undirected_edge).nonzero().view(-1)
    directed_edges = edge_index[:, directed_id]
    check_acyclic(directed_edges, num_nodes)
    oriented, oriented_id = dagify(edge_index[:, undirected_id], num_nodes, order=order, return_edge_id=True)
    return torch.cat([oriented, directed_edges], dim=1), torch.cat([undirected_id[oriented_id], directed_id])


def plstm_structure(
    dag_edge_index: Tensor,
    edge_id: Tensor,
    num_nodes: int,
    line_graph_mode: str = "P",
    reverse: bool = False,
    line_edge_index: Tensor | None = None,
    node_level: Tensor | None = None,
) -> PLSTMStructure:
    r"""Builds the :class:`PLSTMStructure` of one sweep over a DAG from :func:`orient_edges`.

    With ``reverse=True`` the sweep runs against the DAG's edges
    (:func:`~plstm_geometric.graph.reverse_dag`, which keeps edge ids, so ``edge_id`` stays valid). The
    line graph of the swept DAG is computed unless ``line_edge_index`` is given (e.g. precomputed by
    :class:`~plstm_geometric.transforms.PreparePLSTM`); the plan is always built here, because plans of
    single graphs cannot be batched while index tensors can. ``node_level`` (the levels of the swept DAG,
    e.g. stored by :class:`~plstm_geometric.transforms.PreparePLSTM`; they batch without offsets) skips
    their computation; it is verified in O(N + E) (see :func:`~plstm_geometric.graph.build_plan`).
    """
    if line_graph_mode not in LINE_GRAPH_MODES:
        raise ValueError(f"line_graph_mode: expected one of {LINE_GRAPH_MODES}, got {line_graph_mode!r}")
    if edge_id.shape != (dag_edge_index.size(1),):
        raise ValueError(
            f"edge_id: expected shape [{dag_edge_index.size(1)}] (one id per DAG edge), got {tuple(edge_id.shape)}"
        )
    edge_index = reverse_dag(dag_edge_index) if reverse else dag_edge_index
    if node_level is None:
        levels = node_levels(edge_index, num_nodes)
    else:
        check_node_level(node_level, edge_index, num_nodes)
        levels = node_level
    if line_edge_index is None:
        line_edge_index = line_graph(edge_index, num_nodes, mode=line_graph_mode, node_level=levels)
    plan = build_plan(edge_index, line_edge_index, num_nodes, node_level=levels)
    return PLSTMStructure(edge_index, edge_id, line_edge_index, plan, line_graph_mode, bool(reverse))


def check_stored_dag(edge_index: Tensor, num_nodes: int, dag_edge_index: Tensor, edge_id: Tensor) -> None:
    r"""Checks that a stored DAG (e.g. from :class:`~plstm_geometric.transforms.PreparePLSTM`) still
    describes ``edge_index``: every DAG edge points at a column holding it (in its own direction, or
    reversed when its own direction is not stored), and every edge of ``edge_index`` other than a
    self-loop is a DAG edge in one direction or the other. Costs a few sorts of ``E``-sized keys.

    Raises:
        ValueError: the structure is stale, typically because a transform that reorders, adds or drops
            edges ran after the structure was computed.
    """
    hint = (
        "a transform changed edge_index after the pLSTM structure was computed; apply PreparePLSTM "
        "last, after every transform that reorders, adds or drops edges (e.g. ToUndirected, "
        "sort_edge_index, subgraph, dropout_edge)"
    )
    num_edges = edge_index.size(1)
    if edge_id.shape != (dag_edge_index.size(1),):
        raise ValueError(f"dag_edge_id: expected shape [{dag_edge_index.size(1)}], got {tuple(edge_id.shape)}")
    # Once per set of tensors: every layer of a model asks again for the same batch (see checks.py).
    if VALIDATION_STAMPS.passed("stored_dag", edge_index, dag_edge_index, edge_id, num_nodes):
        return
    first, last = value_range(edge_id) if edge_id.numel() else (0, -1)
    if first < 0 or last >= num_edges:
        raise ValueError(
            f"dag_edge_id: expected columns of edge_index in [0, {num_edges}), got values in [{first}, {last}]; {hint}"
        )
    columns = edge_index[:, edge_id]
    same = (columns == dag_edge_index).all(0)
    flipped = (columns.flip(0) == dag_edge_index).all(0) & ~same
    if not bool((same | flipped).all()):
        bad = int((~(same | flipped)).nonzero()[0])
        raise ValueError(
            f"dag_edge_id: DAG edge {bad} ({int(dag_edge_index[0, bad])} -> "
            f"{int(dag_edge_index[1, bad])}) points at column {int(edge_id[bad])} of edge_index, "
            f"which holds {int(columns[0, bad])} -> {int(columns[1, bad])}; {hint}"
        )
    src, dst = edge_index
    if bool(flipped.any()):
        own = dag_edge_index[:, flipped]
        stored = torch.isin(own[0] * num_nodes + own[1], src * num_nodes + dst)
        if bool(stored.any()):
            raise ValueError(
                f"dag_edge_id: a DAG edge takes the column of its reverse although its own direction is stored; {hint}"
            )
    not_loop = src != dst
    low, high = torch.minimum(src, dst)[not_loop], torch.maximum(src, dst)[not_loop]
    dag_low, dag_high = dag_edge_index.min(0).values, dag_edge_index.max(0).values
    covered = torch.isin(low * num_nodes + high, dag_low * num_nodes + dag_high)
    if not bool(covered.all()):
        raise ValueError(f"edge_index: {int((~covered).sum())} edges are not part of the stored DAG; {hint}")
    VALIDATION_STAMPS.record("stored_dag", edge_index, dag_edge_index, edge_id, num_nodes)
