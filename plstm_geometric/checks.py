"""Argument checks of the public boundary, shared by every op, structure function and layer.

One rule everywhere: a :class:`TypeError` for a wrong type or dtype, a :class:`ValueError` for a wrong
shape, value or device, and the message ``"name: expected ..., got ..."`` with the argument's name.
"""

import torch
from torch import Tensor

__all__ = [
    "check_index",
    "check_range",
    "check_edge_index",
    "check_tensor",
    "check_gate",
    "check_bool",
    "check_positive_int",
    "check_node_level",
    "check_edges_of",
    "unused_argument",
]


def check_index(name: str, index: Tensor, rows: int = 2) -> None:
    """A ``torch.long`` index tensor of shape ``[rows, *]``."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(index).__name__}")
    if index.dtype != torch.long:
        raise TypeError(f"{name}: expected dtype torch.long, got {index.dtype}")
    if index.dim() != 2 or index.size(0) != rows:
        raise ValueError(f"{name}: expected shape [{rows}, *], got {tuple(index.shape)}")


def check_range(name: str, index: Tensor, upper: int, what: str) -> None:
    """Every entry of ``index`` lies in ``[0, upper)``; ``what`` says what it indexes (e.g. "node")."""
    if index.numel() == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= upper:
        raise ValueError(f"{name}: expected {what} indices in [0, {upper}), got values in [{low}, {high}]")


def check_edge_index(edge_index: Tensor, num_nodes: int, name: str = "edge_index") -> None:
    """A ``[2, E]`` long tensor of node indices below ``num_nodes``."""
    check_index(name, edge_index)
    if not isinstance(num_nodes, int) or isinstance(num_nodes, bool):
        raise TypeError(f"num_nodes: expected a non-negative int, got {type(num_nodes).__name__} {num_nodes!r}")
    if num_nodes < 0:
        raise ValueError(f"num_nodes: expected a non-negative int, got {num_nodes!r}")
    check_range(name, edge_index, num_nodes, "node")


def check_tensor(name: str, tensor: Tensor, reference: Tensor | None = None, reference_name: str = "query") -> None:
    """A floating-point tensor; with ``reference``, of its dtype and on its device."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {tensor.dtype}")
    if reference is not None:
        if tensor.dtype != reference.dtype:
            raise TypeError(
                f"{name}: expected dtype {reference.dtype} (the dtype of {reference_name}), got {tensor.dtype}"
            )
        if tensor.device != reference.device:
            raise ValueError(
                f"{name}: expected device {reference.device} (the device of {reference_name}), got {tensor.device}"
            )


def check_gate(name: str, gate: Tensor, rows: int, heads: int, query: Tensor) -> None:
    """A ``[rows, heads]`` gate in the dtype and on the device of ``query``."""
    check_tensor(name, gate, query)
    if gate.shape != (rows, heads):
        raise ValueError(f"{name}: expected shape [{rows}, {heads}], got {tuple(gate.shape)}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")


def check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def unused_argument(name: str, value, backend: str, used_by: str) -> None:
    """Refuses an argument that the chosen backend would ignore, instead of dropping it silently."""
    raise ValueError(f"{name}: expected the default with backend={backend!r} (only {used_by} uses it), got {value!r}")


def check_node_level(node_level: Tensor, edge_index: Tensor, num_nodes: int) -> None:
    """``node_level`` ``[N]`` holds the longest-path levels of the DAG ``edge_index``, in O(N + E).

    Schedules rely on every edge going up (``level[dst] > level[src]``) and on the levels being dense
    (sources at 0, every other node one above its highest predecessor). Both hold exactly when
    ``level[n] = max(level[pred] + 1)`` (0 without predecessors), which one scatter-max verifies.
    """
    if not isinstance(node_level, Tensor):
        raise TypeError(f"node_level: expected a torch.Tensor, got {type(node_level).__name__}")
    if node_level.dtype != torch.long:
        raise TypeError(f"node_level: expected dtype torch.long, got {node_level.dtype}")
    if node_level.shape != (num_nodes,):
        raise ValueError(f"node_level: expected shape [{num_nodes}], got {tuple(node_level.shape)}")
    if node_level.device != edge_index.device:
        raise ValueError(
            f"node_level: expected device {edge_index.device} (the device of edge_index), got {node_level.device}"
        )
    src, dst = edge_index
    expected = torch.zeros_like(node_level).scatter_reduce(0, dst, node_level[src] + 1, "amax")
    wrong = expected != node_level
    if bool(wrong.any()):
        node = int(wrong.nonzero()[0])
        raise ValueError(
            f"node_level: expected the longest-path levels of edge_index (from node_levels), got "
            f"level {int(node_level[node])} at node {node} where the edges into it give "
            f"{int(expected[node])}"
        )


def check_edges_of(name: str, edge_index: Tensor, built_from: Tensor, what: str) -> None:
    """``edge_index`` is the index tensor the ``name`` argument was built from (an O(E) comparison)."""
    if edge_index is built_from:
        return
    if edge_index.shape != built_from.shape or not torch.equal(edge_index, built_from):
        raise ValueError(
            f"{name}: expected one built for this {what}, got one built for another graph with the "
            f"same sizes (build it from this graph, or omit it)"
        )
