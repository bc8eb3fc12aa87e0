"""Checks shared by the structure functions; they raise at the public boundary with the argument's name."""
import torch
from torch import Tensor


def check_index(name: str, index: Tensor, rows: int = 2) -> None:
    if not isinstance(index, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(index).__name__}")
    if index.dtype != torch.long:
        raise TypeError(f"{name}: expected dtype torch.long, got {index.dtype}")
    if index.dim() != 2 or index.size(0) != rows:
        raise ValueError(f"{name}: expected shape [{rows}, *], got {tuple(index.shape)}")


def check_range(name: str, index: Tensor, upper: int, what: str) -> None:
    if index.numel() == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= upper:
        raise ValueError(f"{name}: {what} indices must lie in [0, {upper}), found values in [{low}, {high}]")


def check_edge_index(edge_index: Tensor, num_nodes: int, name: str = "edge_index") -> None:
    check_index(name, edge_index)
    if not isinstance(num_nodes, int) or num_nodes < 0:
        raise ValueError(f"num_nodes: expected a non-negative int, got {num_nodes!r}")
    check_range(name, edge_index, num_nodes, "node")
