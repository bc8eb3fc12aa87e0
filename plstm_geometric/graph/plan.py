"""The reusable schedule of a pLSTM sweep: which edges and line edges are processed at which step."""

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..checks import VALIDATION_STAMPS, check_edge_index, check_index, check_node_level, check_range
from .bands import BandLayout, build_band_layout
from .chains import ChainSchedule, build_chain_schedule
from .components import ComponentLayout, build_component_layout
from .dag import inverse_order, level_pointers, node_levels
from .device import dataclass_to
from .opaque import OpaqueBase, register_reference_type


@dataclass(eq=False)
class PLSTMPlan(OpaqueBase):
    r"""Level schedule of a DAG and a line graph, built once and reused across calls.

    Edges are renumbered by topological level (the level of their source node), so each level is a
    contiguous slice and a sweep step reads and writes slices instead of scattered rows. The level of an
    edge is a valid schedule for any line graph whose pairs meet at a node: :math:`\mathrm{dst}(e') =
    \mathrm{src}(e)` implies that the source of :math:`e'` lies strictly below the source of :math:`e`.

    Attributes:
        num_nodes, num_edges, num_line_edges (int): sizes of the graph it was built for.
        edge_order (LongTensor): ``[E]`` original edge ids in schedule order.
        edge_src, edge_dst (LongTensor): ``[E]`` endpoints of the scheduled edges.
        edge_level_ptr (list[int]): scheduled edges of level ``l`` are ``edge_level_ptr[l]:[l+1]``.
        line_order_by_out (LongTensor): ``[L]`` line edge ids sorted by the scheduled id of ``e_out``,
            hence by its level.
        line_in_by_out, line_out_by_out (LongTensor): ``[L]`` scheduled ids of ``e_in``/``e_out`` in
            that order; ``line_out_level_ptr`` slices it per level (forward sweep).
        line_ptr_by_out (LongTensor): ``[E + 1]`` CSR pointers of that order: the line edges into
            scheduled edge ``e`` are ``line_ptr_by_out[e]:line_ptr_by_out[e + 1]``.
        line_order_by_in, line_in_by_in, line_out_by_in, line_in_level_ptr, line_ptr_by_in: the same
            sorted by ``e_in`` (backward sweep).
        line_by_out_for_in (LongTensor): ``[L]`` position in the forward (by-``e_out``) order of each line
            edge of the backward (by-``e_in``) order, to reorder per-line tensors between the sweeps.
        edge_index, line_edge_index, node_level (LongTensor): the structure it was built from.
        layout (ComponentLayout): per-graph padded layout for the parallel form, built on first use.
        chains (ChainSchedule): chain segments for the chain-contracted form, built on first use.
        bands (BandLayout): pieces of consecutive levels for the banded form, built on first use.

    Under ``torch.compile`` a plan is an opaque reference (see :mod:`plstm_geometric.graph.opaque`): a
    compiled :class:`~plstm_geometric.nn.PLSTMConv` hands it to its sweep op without tracing it.
    """

    num_nodes: int
    num_edges: int
    num_line_edges: int
    edge_order: Tensor
    edge_src: Tensor
    edge_dst: Tensor
    edge_level_ptr: list[int]
    line_order_by_out: Tensor
    line_in_by_out: Tensor
    line_out_by_out: Tensor
    line_out_level_ptr: list[int]
    line_ptr_by_out: Tensor
    line_order_by_in: Tensor
    line_in_by_in: Tensor
    line_out_by_in: Tensor
    line_in_level_ptr: list[int]
    line_ptr_by_in: Tensor
    line_by_out_for_in: Tensor
    edge_index: Tensor
    line_edge_index: Tensor
    node_level: Tensor
    cached_layout: ComponentLayout | None = field(default=None, repr=False)
    cached_chains: ChainSchedule | None = field(default=None, repr=False)
    cached_bands: BandLayout | None = field(default=None, repr=False)

    @property
    def layout(self) -> ComponentLayout:
        if self.cached_layout is None:
            self.cached_layout = build_component_layout(
                self.edge_index, self.line_edge_index, self.num_nodes, self.node_level
            )
        return self.cached_layout

    @property
    def chains(self) -> ChainSchedule:
        if self.cached_chains is None:
            self.cached_chains = build_chain_schedule(self.line_edge_index, self.num_edges)
        return self.cached_chains

    @property
    def bands(self) -> BandLayout:
        if self.cached_bands is None:
            self.cached_bands = build_band_layout(
                self.edge_index, self.line_edge_index, self.num_nodes, self.node_level
            )
        return self.cached_bands

    @property
    def num_levels(self) -> int:
        return len(self.edge_level_ptr) - 1

    @property
    def device(self) -> torch.device:
        return self.edge_order.device

    def to(self, device) -> "PLSTMPlan":
        return dataclass_to(self, device)

    def matches(self, num_nodes: int, num_edges: int, num_line_edges: int) -> bool:
        return (self.num_nodes, self.num_edges, self.num_line_edges) == (num_nodes, num_edges, num_line_edges)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
            f"num_line_edges={self.num_line_edges}, num_levels={self.num_levels})"
        )


register_reference_type(PLSTMPlan)


def build_plan(
    edge_index: Tensor,
    line_edge_index: Tensor,
    num_nodes: int,
    node_level: Tensor | None = None,
) -> PLSTMPlan:
    """Builds the :class:`PLSTMPlan` of a DAG ``edge_index`` ``[2, E]`` with line graph ``[2, L]``.

    Validates the structure: indices in range, a DAG (a cycle raises ``ValueError`` naming a node), and
    every line edge ``(e_in, e_out)`` meeting at a node (``dst(e_in) == src(e_out)``). ``node_level``
    (from :func:`node_levels`) may be passed when already known; it is checked in O(N + E) to be exactly
    the longest-path levels (a ``ValueError`` naming ``node_level`` otherwise).
    """
    check_edge_index(edge_index, num_nodes)
    check_index("line_edge_index", line_edge_index)
    if line_edge_index.device != edge_index.device:
        raise ValueError(f"line_edge_index: expected device {edge_index.device}, got {line_edge_index.device}")
    num_edges = edge_index.size(1)
    check_range("line_edge_index", line_edge_index, num_edges, "edge")
    src, dst = edge_index
    e_in, e_out = line_edge_index
    if not VALIDATION_STAMPS.passed("line_edges_meet", edge_index, line_edge_index):
        if not bool((dst[e_in] == src[e_out]).all()):
            bad = int((dst[e_in] != src[e_out]).nonzero()[0])
            raise ValueError(
                f"line_edge_index: column {bad} joins edge {int(e_in[bad])} and edge {int(e_out[bad])}, "
                "which do not meet at a node (expected dst(e_in) == src(e_out))"
            )
        VALIDATION_STAMPS.record("line_edges_meet", edge_index, line_edge_index)
    if node_level is None:
        node_level = node_levels(edge_index, num_nodes)
    else:
        check_node_level(node_level, edge_index, num_nodes)

    edge_level = node_level[src]
    edge_level_sorted, edge_order = torch.sort(edge_level, stable=True)
    num_levels = int(edge_level_sorted[-1]) + 1 if num_edges else 0
    scheduled_id = inverse_order(edge_order)
    line_in, line_out = scheduled_id[e_in], scheduled_id[e_out]

    # Sorting by scheduled id groups the line edges per edge (CSR) and, since scheduled ids grow with the
    # level, per level as well.
    line_out_sorted, line_order_by_out = torch.sort(line_out, stable=True)
    line_in_sorted, line_order_by_in = torch.sort(line_in, stable=True)
    edge_bounds = torch.arange(num_edges + 1, device=edge_index.device)
    return PLSTMPlan(
        num_nodes=num_nodes,
        num_edges=num_edges,
        num_line_edges=line_edge_index.size(1),
        edge_order=edge_order,
        edge_src=src[edge_order],
        edge_dst=dst[edge_order],
        edge_level_ptr=level_pointers(edge_level_sorted, num_levels),
        line_order_by_out=line_order_by_out,
        line_in_by_out=line_in[line_order_by_out],
        line_out_by_out=line_out_sorted,
        line_out_level_ptr=level_pointers(edge_level_sorted[line_out_sorted], num_levels),
        line_ptr_by_out=torch.searchsorted(line_out_sorted, edge_bounds),
        line_order_by_in=line_order_by_in,
        line_in_by_in=line_in_sorted,
        line_out_by_in=line_out[line_order_by_in],
        line_in_level_ptr=level_pointers(edge_level_sorted[line_in_sorted], num_levels),
        line_ptr_by_in=torch.searchsorted(line_in_sorted, edge_bounds),
        line_by_out_for_in=inverse_order(line_order_by_out)[line_order_by_in],
        edge_index=edge_index,
        line_edge_index=line_edge_index,
        node_level=node_level,
    )
