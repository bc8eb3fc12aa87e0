from collections.abc import Callable, Sequence

from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from ..graph import line_graph, node_levels, reverse_dag
from ..graph.structure import LINE_GRAPH_MODES, ORIENTATIONS, orient_edges
from .data import DIRECTIONS, PLSTMData, line_graph_key, node_level_key


class PreparePLSTM(BaseTransform):
    r"""Precomputes the pLSTM graph structure of a graph once, e.g. as a dataset's ``pre_transform``.

    Orients the graph into a DAG exactly as :class:`~plstm_geometric.nn.PLSTMConv` does (see
    :func:`~plstm_geometric.graph.orient_edges`) and stores it with the requested line
    graphs on a :class:`~plstm_geometric.transforms.PLSTMData`, whose batching offsets every index
    correctly, and the node levels of each sweep. Layers then take ``data.plstm_structure(mode, reverse)``;
    only the level schedule (plan) is rebuilt per mini-batch, from the stored levels. Results equal those
    computed from ``edge_index`` on the fly.

    Args:
        order (str or callable, optional): how to rank nodes when orienting an undirected graph: the name
            of a node-level attribute holding ``[N]`` ranks, or a function ``data -> [N]`` tensor.
            (default: :obj:`None`, node index order)
        modes (sequence of str): line graphs to compute, from ``"P"`` (used by P and unconstrained
            layers) and ``"D"``. (default: :obj:`("P", "D")`)
        directions (sequence of str): sweeps to prepare, from ``"forward"`` and ``"reverse"``.
            (default: :obj:`("forward", "reverse")`)
        orientation (str): ``"auto"``, ``"dag"`` or ``"undirected"``, as in
            :class:`~plstm_geometric.nn.PLSTMConv`. (default: :obj:`"auto"`)
    """

    def __init__(
        self,
        order: str | Callable[[Data], Tensor] | None = None,
        modes: Sequence[str] = ("P", "D"),
        directions: Sequence[str] = ("forward", "reverse"),
        orientation: str = "auto",
    ):
        if order is not None and not (isinstance(order, str) or callable(order)):
            raise TypeError(f"order: expected None, an attribute name or a callable, got {type(order).__name__}")
        if not modes or any(mode not in LINE_GRAPH_MODES for mode in modes):
            raise ValueError(f"modes: expected a non-empty sequence drawn from {LINE_GRAPH_MODES}, got {modes!r}")
        if not directions or any(direction not in DIRECTIONS for direction in directions):
            raise ValueError(f"directions: expected a non-empty sequence drawn from {DIRECTIONS}, got {directions!r}")
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation: expected one of {ORIENTATIONS}, got {orientation!r}")
        self.order = order
        self.modes = tuple(modes)
        self.directions = tuple(directions)
        self.orientation = orientation

    def forward(self, data: Data) -> PLSTMData:
        num_nodes = data.num_nodes
        if isinstance(self.order, str):
            if self.order not in data:
                raise ValueError(
                    f"order: expected the name of a node attribute of the data, got {self.order!r} "
                    f"(the data has {sorted(data.keys())})"
                )
            order = data[self.order]
        elif callable(self.order):
            order = self.order(data)
        else:
            order = None
        dag_edge_index, dag_edge_id = orient_edges(data.edge_index, num_nodes, self.orientation, order)
        out = data if isinstance(data, PLSTMData) else PLSTMData.from_dict(data.to_dict())
        out.dag_edge_index = dag_edge_index
        out.dag_edge_id = dag_edge_id
        for direction in self.directions:
            reverse = direction == "reverse"
            swept = reverse_dag(dag_edge_index) if reverse else dag_edge_index
            levels = node_levels(swept, num_nodes)
            out[node_level_key(reverse)] = levels
            for mode in self.modes:
                out[line_graph_key(mode, reverse)] = line_graph(swept, num_nodes, mode=mode, node_level=levels)
        return out

    def __repr__(self) -> str:
        order = (
            self.order
            if self.order is None or isinstance(self.order, str)
            else getattr(self.order, "__name__", repr(self.order))
        )
        return (
            f"{self.__class__.__name__}(order={order!r}, modes={self.modes}, directions={self.directions}, "
            f"orientation={self.orientation!r})"
        )
