"""Size estimates made before a structure is allocated, so that a huge request fails early and clearly."""

import torch
from torch import Tensor

__all__ = ["MAX_LINE_EDGES", "line_graph_size", "check_line_graph_size"]

#: The most line edges :func:`~plstm_geometric.graph.line_graph` builds (``2**28``: about 4 GiB for the
#: ``[2, L]`` long tensor, more for its intermediates). Raise it (``plstm_geometric.graph.size.MAX_LINE_EDGES
#: = ...``) on a machine that can hold more.
MAX_LINE_EDGES = 2**28


def line_graph_size(edge_index: Tensor, num_nodes: int) -> int:
    r"""Number of line edges of the full (P-mode) line graph: :math:`\sum_n \deg^-(n) \deg^+(n)`, O(N + E)."""
    src, dst = edge_index
    in_degree = torch.bincount(dst, minlength=num_nodes)
    out_degree = torch.bincount(src, minlength=num_nodes)
    return int((in_degree * out_degree).sum())


def check_line_graph_size(edge_index: Tensor, num_nodes: int) -> None:
    """Raises a ``ValueError`` naming ``edge_index`` when its line graph exceeds :data:`MAX_LINE_EDGES`."""
    size = line_graph_size(edge_index, num_nodes)
    if size > MAX_LINE_EDGES:
        raise ValueError(
            f"edge_index: its line graph would have {size:,} line edges (about {16 * size / 2**30:.1f} "
            f"GiB), above MAX_LINE_EDGES = {MAX_LINE_EDGES:,}: high-degree nodes meet every in-edge "
            "with every out-edge. Mode 'D' keeps far fewer pairs but is pruned from this same set, so split "
            "or drop the hub's edges, or raise plstm_geometric.graph.size.MAX_LINE_EDGES if memory allows"
        )
