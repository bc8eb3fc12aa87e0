"""Level bands of a DAG batch: the integer structure behind the banded pLSTM form.

Every weakly connected component (one graph of a mini-batch) is cut into *pieces*: the edges whose source
lies in ``band_levels`` consecutive topological levels. Inside a piece the recurrence is solved densely
(:mod:`plstm_geometric.functional.dag.bands`); between pieces only the states of the edges that feed a
later piece (the *exports*) are carried, one band at a time.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from .components import size_buckets, slots
from .dag import inverse_order, weak_components
from .device import dataclass_to

# Levels per band. The dense work of a piece grows with the square of its edge count and the number of
# sequential steps falls with the band width; on deep, thin graphs (peptides: a few edges per level)
# 8 levels balanced the two on a batch of 64 peptides on CPU (PLSTMConv fwd+bwd: 4 levels 1.3x, 16
# levels 1.25x the time of 8).
BAND_LEVELS = 8


@dataclass
class BandBucket:
    """Pieces of similar size, padded to ``[pieces, max_edges]`` / ``[pieces, max_nodes]``. Its rows of the
    layout's gathers (``node_map``, ``edge_id``, ``line_id``, ``rhs_id``) follow those of the buckets before it.

    Attributes:
        num_pieces, max_nodes, max_edges, max_inputs (int): padded sizes; the inputs of a piece are the
            edges of earlier pieces with a line edge into it.
        num_edges, num_line_edges, num_rhs (int): its edges, its line edges inside a piece and its nonzero
            right-hand side entries.
        edge_row, dst_row (LongTensor): flat padded position ``piece * max_edges + slot`` of each of its
            edges (in the layout's ``edge_id`` order) and that of its destination ``piece * max_nodes + slot``;
            edges are numbered by level within a piece.
        line_entry (LongTensor): flat position ``(piece * max_edges + out_slot) * max_edges + in_slot`` of each
            line edge inside a piece in ``[pieces, max_edges, max_edges]``.
        rhs_entry (LongTensor): flat position in the right-hand side ``[pieces, max_edges, max_nodes +
            max_inputs]`` of a piece's solve: a source gate at its edge's source node column, a crossing line
            edge's transition at the column of its input.
        input_map (LongTensor): ``[pieces * max_inputs]`` the export feeding every input position, or the
            number of exports (a zero row) where it is padding.
        export_row (LongTensor): flat padded edge position of each export in this bucket (in the layout's
            ``export_order``).
    """

    num_pieces: int
    max_nodes: int
    max_edges: int
    max_inputs: int
    num_edges: int
    num_line_edges: int
    num_rhs: int
    edge_row: Tensor
    dst_row: Tensor
    line_entry: Tensor
    rhs_entry: Tensor
    input_map: Tensor
    export_row: Tensor

    def to(self, device) -> "BandBucket":
        return dataclass_to(self, device)


@dataclass
class BandLayout:
    """A batch cut into pieces of ``band_levels`` levels, grouped into size buckets.

    Attributes:
        band_levels (int): levels per band.
        num_exports (int): edges with a line edge into a later piece; their states are carried.
        export_band_ptr (list[int]): exports are numbered by band; band ``j`` holds ``ptr[j]:ptr[j + 1]``.
        link_src, link_dst, link_weight (LongTensor): one *link* per export and input of its piece: the
            input's export, the export it feeds and the flat position ``export * max_inputs + input_slot``
            of its weight (a column of :math:`R_B`) in ``[X, max_inputs]``; sorted by ``link_dst``, so by
            band, and ``link_band_ptr`` (list[int]) slices them per band.
        max_inputs (int): the most inputs of any piece.
        buckets (list[BandBucket]): the pieces, grouped by size (see
            :func:`~plstm_geometric.graph.components.size_buckets`).
        node_map (LongTensor): the node at every padded node position of every bucket, bucket after
            bucket, or the batch's node count (a zero row the op appends) where the position is padding.
        node_id, node_row (LongTensor): every (piece, node) slot: its node and its row in ``node_map``.
        edge_id, line_id, rhs_id (LongTensor): the edges, the line edges inside pieces and the gates of
            the right-hand sides (indices into ``cat([source, transition])``), bucket after bucket.
        export_order (LongTensor): ``[X]`` the position of every export (numbered by band) among the
            exports listed bucket after bucket.
    """

    band_levels: int
    num_exports: int
    export_band_ptr: list[int]
    link_src: Tensor
    link_dst: Tensor
    link_weight: Tensor
    link_band_ptr: list[int]
    max_inputs: int
    buckets: list[BandBucket]
    node_map: Tensor
    node_id: Tensor
    node_row: Tensor
    edge_id: Tensor
    line_id: Tensor
    rhs_id: Tensor
    export_order: Tensor

    @property
    def num_bands(self) -> int:
        return len(self.export_band_ptr) - 1

    def to(self, device) -> "BandLayout":
        return dataclass_to(self, device)


def unique_pairs(group: Tensor, item: Tensor, size: int):
    """The distinct ``(group, item)`` pairs (``item < size``), sorted, and the pair of every input row."""
    pairs, inverse = torch.unique(group * size + item, return_inverse=True)
    return pairs // size, pairs % size, inverse


def build_band_layout(
    edge_index: Tensor,
    line_edge_index: Tensor,
    num_nodes: int,
    node_level: Tensor,
    band_levels: int = BAND_LEVELS,
) -> BandLayout:
    device = edge_index.device
    num_edges = edge_index.size(1)
    src, dst = edge_index
    e_in, e_out = line_edge_index
    _, node_component = torch.unique(weak_components(edge_index, num_nodes), return_inverse=True)
    edge_level = node_level[src]
    num_bands = int(edge_level.max()) // band_levels + 1 if num_edges else 0
    edge_band = edge_level // band_levels
    _, edge_piece = torch.unique(node_component[src] * max(num_bands, 1) + edge_band, return_inverse=True)
    num_pieces = int(edge_piece.max()) + 1 if num_edges else 0
    edge_slot = slots(edge_piece, edge_level, num_pieces)

    # Node slots: the sources and destinations of a piece's edges.
    pair_piece, pair_node, pair_of = unique_pairs(edge_piece.repeat(2), torch.cat([src, dst]), max(num_nodes, 1))
    node_slot = slots(pair_piece, pair_node, num_pieces)
    src_slot, dst_slot = node_slot[pair_of[:num_edges]], node_slot[pair_of[num_edges:]]

    # Line edges inside a piece (a strictly lower triangle: slots follow levels) and crossing into one.
    inside = edge_piece[e_in] == edge_piece[e_out]
    cross_id = (~inside).nonzero().view(-1)
    cross_in, cross_out = e_in[cross_id], e_out[cross_id]
    input_piece, input_edge, input_of = unique_pairs(edge_piece[cross_out], cross_in, max(num_edges, 1))
    input_slot = slots(input_piece, input_edge, num_pieces)

    # Exports, numbered by band so that one band's exports are a contiguous slice written after the bands
    # they read from.
    exported = torch.unique(cross_in)
    export_key, order = torch.sort(edge_band[exported] * max(num_edges, 1) + exported)
    exported = exported[order]
    num_exports = exported.numel()
    export_of_edge = torch.full((num_edges,), -1, dtype=torch.long, device=device)
    export_of_edge[exported] = torch.arange(num_exports, device=device)
    input_export = export_of_edge[input_edge]

    edges_per = torch.bincount(edge_piece, minlength=num_pieces)
    nodes_per = torch.bincount(pair_piece, minlength=num_pieces)
    inputs_per = torch.bincount(input_piece, minlength=num_pieces)
    max_inputs = int(inputs_per.max()) if num_pieces else 0
    bucket_of = size_buckets(torch.maximum(edges_per, nodes_per + inputs_per).clamp(min=1))
    export_inputs = torch.full((num_exports, max_inputs), num_exports, dtype=torch.long, device=device)
    export_inputs_flat = export_inputs.view(-1)
    buckets, node_offset = [], 0
    gathers = {name: [] for name in ("map", "node", "row", "edge", "line", "rhs", "export")}
    for bucket in torch.unique(bucket_of).tolist():
        members = (bucket_of == bucket).nonzero().view(-1)
        local = torch.full((num_pieces,), -1, dtype=torch.long, device=device)
        local[members] = torch.arange(members.numel(), device=device)
        n, e, b = (int(count[members].max()) for count in (nodes_per, edges_per, inputs_per))
        pair_id = (local[pair_piece] >= 0).nonzero().view(-1)
        node_row = local[pair_piece[pair_id]] * n + node_slot[pair_id]
        node_map = torch.full((members.numel() * n,), num_nodes, dtype=torch.long, device=device)
        node_map[node_row] = pair_node[pair_id]
        edge_id = (local[edge_piece] >= 0).nonzero().view(-1)
        edge_row = torch.full((num_edges,), -1, dtype=torch.long, device=device)
        edge_row[edge_id] = local[edge_piece[edge_id]] * e + edge_slot[edge_id]
        line_id = (inside & (local[edge_piece[e_out]] >= 0)).nonzero().view(-1)
        cross = (local[edge_piece[cross_out]] >= 0).nonzero().view(-1)
        rhs_entry = torch.cat(
            [
                edge_row[edge_id] * (n + b) + src_slot[edge_id],
                edge_row[cross_out[cross]] * (n + b) + n + input_slot[input_of[cross]],
            ]
        )
        in_bucket = (local[input_piece] >= 0).nonzero().view(-1)
        input_map = torch.full((members.numel() * b,), num_exports, dtype=torch.long, device=device)
        input_map[local[input_piece[in_bucket]] * b + input_slot[in_bucket]] = input_export[in_bucket]
        export_id = (local[edge_piece[exported]] >= 0).nonzero().view(-1)
        export_piece = local[edge_piece[exported[export_id]]]
        if b:
            # Every export's row of inputs is its piece's (the columns n : n + b of its row of R).
            rows = export_id[:, None] * max_inputs + torch.arange(b, device=device)
            export_inputs_flat[rows.view(-1)] = input_map.view(-1, b)[export_piece].view(-1)
        gathers["map"].append(node_map)
        gathers["node"].append(pair_node[pair_id])
        gathers["row"].append(node_row + node_offset)
        gathers["edge"].append(edge_id)
        gathers["line"].append(line_id)
        gathers["rhs"].append(torch.cat([edge_id, num_edges + cross_id[cross]]))
        gathers["export"].append(export_id)
        node_offset += node_map.numel()
        buckets.append(
            BandBucket(
                num_pieces=members.numel(),
                max_nodes=n,
                max_edges=e,
                max_inputs=b,
                num_edges=edge_id.numel(),
                num_line_edges=line_id.numel(),
                num_rhs=rhs_entry.numel(),
                edge_row=edge_row[edge_id],
                dst_row=local[edge_piece[edge_id]] * n + dst_slot[edge_id],
                line_entry=edge_row[e_out[line_id]] * e + edge_slot[e_in[line_id]],
                rhs_entry=rhs_entry,
                input_map=input_map,
                export_row=edge_row[exported[export_id]],
            )
        )
    gathered = {name: torch.cat(parts) if parts else edge_index.new_zeros(0) for name, parts in gathers.items()}
    band_bounds = torch.arange(num_bands + 1, device=device) * max(num_edges, 1)
    export_band_ptr = torch.searchsorted(export_key, band_bounds)
    link_weight = (export_inputs_flat < num_exports).nonzero().view(-1)
    link_dst = link_weight // max(max_inputs, 1)
    return BandLayout(
        band_levels=band_levels,
        num_exports=num_exports,
        export_band_ptr=export_band_ptr.tolist(),
        link_src=export_inputs_flat[link_weight],
        link_dst=link_dst,
        link_weight=link_weight,
        link_band_ptr=torch.searchsorted(link_dst, export_band_ptr).tolist(),
        max_inputs=max_inputs,
        buckets=buckets,
        node_map=gathered["map"],
        node_id=gathered["node"],
        node_row=gathered["row"],
        edge_id=gathered["edge"],
        line_id=gathered["line"],
        rhs_id=gathered["rhs"],
        export_order=inverse_order(gathered["export"]),
    )
