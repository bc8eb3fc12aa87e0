"""Size estimates made before a structure is allocated, so that a huge request fails early and clearly."""

import torch
from torch import Tensor

__all__ = [
    "MAX_LINE_EDGES",
    "line_graph_size",
    "check_line_graph_size",
    "available_memory",
    "level_sweep_memory",
    "check_level_sweep_memory",
    "check_hub_sweep_memory",
]

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


# Below this many bytes the sweep's memory is not compared with what is available (reading it costs more
# than such a sweep risks).
SWEEP_MEMORY_CHECK_BYTES = 2**28


def available_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on ``device``: CUDA's free memory, or Linux's ``MemAvailable``
    for the CPU; ``None`` where it cannot be told (the check is then skipped)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sweep_bytes(widest: int, num_edges: int, heads: int, key_dim: int, value_dim: int, itemsize: int) -> int:
    # the widest level's gathered states and their product, beside four per-edge [E, H, K, V] tensors
    state = heads * key_dim * value_dim * itemsize
    return 2 * widest * state + 4 * num_edges * state


def level_sweep_memory(plan, heads: int, key_dim: int, value_dim: int, itemsize: int) -> tuple[int, int]:
    r"""``(bytes, widest)``: what the level sweep holds at once, and the line edges of its widest level.

    Per level it gathers the states of that level's line edges and forms their product with the
    transitions (two ``[widest, H, K, V]`` tensors, forward or backward), beside the states, their
    gradients and two more per-edge ``[E, H, K, V]`` tensors of the readout and the backward. A hub that
    meets ``a`` in-edges with ``b`` out-edges puts ``a * b`` line edges in one level.
    """
    widths = [hi - lo for ptr in (plan.line_out_level_ptr, plan.line_in_level_ptr) for lo, hi in zip(ptr, ptr[1:])]
    widest = max(widths, default=0)
    return _sweep_bytes(widest, plan.num_edges, heads, key_dim, value_dim, itemsize), widest


def _bytes(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _refuse_beyond_available(need: int, device, message) -> None:
    """Raises ``ValueError(message(free))`` when ``need`` bytes exceed what ``device`` has available; small
    sweeps are not compared (reading the available memory costs more than they risk)."""
    if need < SWEEP_MEMORY_CHECK_BYTES:
        return
    free = available_memory(torch.device(device))
    if free is not None and need > free:
        raise ValueError(message(free))


_ADVICE = (
    "a high-degree node meets every in-edge with every out-edge in one level. Use mode 'D' (far fewer line "
    "edges), split or drop the hub's edges, or use fewer heads or smaller states"
)


def check_level_sweep_memory(plan, heads: int, key_dim: int, value_dim: int, itemsize: int, device) -> None:
    """Raises a ``ValueError`` naming ``line_edge_index``, with the figures, when the level sweep would need
    more memory than ``device`` has available: refused before anything is allocated, instead of minutes of
    work ending in an out-of-memory error."""
    need, widest = level_sweep_memory(plan, heads, key_dim, value_dim, itemsize)
    _refuse_beyond_available(
        need,
        device,
        lambda free: (
            f"line_edge_index: the level sweep needs about {_bytes(need)} at once ({widest:,} line "
            f"edges in its widest level x {heads} heads x {key_dim}x{value_dim} states), more than the "
            f"{_bytes(free)} available on {device}: {_ADVICE}"
        ),
    )


def check_hub_sweep_memory(
    edge_index: Tensor, num_nodes: int, heads: int, key_dim: int, value_dim: int, device, itemsize: int = 4
) -> None:
    r"""The check of :func:`check_level_sweep_memory` from the degrees of a DAG alone, before its P-mode line
    graph is built: the :math:`\deg^-(n) \deg^+(n)` line edges through node :math:`n` all lie in the
    level of :math:`n`'s out-edges, so the widest level holds at least the largest such product."""
    if edge_index.numel() == 0:
        return
    src, dst = edge_index
    widest = int((torch.bincount(dst, minlength=num_nodes) * torch.bincount(src, minlength=num_nodes)).max())
    need = _sweep_bytes(widest, edge_index.size(1), heads, key_dim, value_dim, itemsize)
    _refuse_beyond_available(
        need,
        device,
        lambda free: (
            f"edge_index: the level sweep would need about {_bytes(need)} at once ({widest:,} line "
            f"edges through one node, all in one level, x {heads} heads x {key_dim}x{value_dim} states), more "
            f"than the {_bytes(free)} available on {device}: {_ADVICE}"
        ),
    )
