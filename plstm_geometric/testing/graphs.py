"""Small DAG factories: a chain, a grid DAG and a random DAG with long paths and many of them."""

import torch
from torch import Tensor


def chain_dag(num_nodes: int) -> Tensor:
    """``0 -> 1 -> ... -> num_nodes - 1``."""
    nodes = torch.arange(num_nodes)
    return torch.stack([nodes[:-1], nodes[1:]])


def grid_dag(rows: int, cols: int) -> Tensor:
    """Grid with edges right ``(r, c) -> (r, c + 1)`` and down ``(r, c) -> (r + 1, c)``; node ``r * cols + c``."""
    node = torch.arange(rows * cols).view(rows, cols)
    right = torch.stack([node[:, :-1].reshape(-1), node[:, 1:].reshape(-1)])
    down = torch.stack([node[:-1, :].reshape(-1), node[1:, :].reshape(-1)])
    return torch.cat([right, down], dim=1)


def random_dag(num_nodes: int, parents: int = 3, window: int = 1000, seed: int = 0) -> Tensor:
    """Every node ``i > 0`` gets ``parents`` edges from nodes drawn uniformly among the ``window`` before it
    (duplicates dropped): long paths and many of them, as in large sparse DAGs."""
    generator = torch.Generator().manual_seed(seed)
    child = torch.arange(1, num_nodes).repeat_interleave(parents)
    span = torch.clamp(child, max=window)
    parent = child - 1 - (torch.rand(child.numel(), generator=generator) * span).long()
    edge_index = torch.unique(torch.stack([parent, child]), dim=1)
    return edge_index


def random_ordered_dag(num_nodes: int, num_edges: int, seed: int = 0) -> Tensor:
    """``num_edges`` random node pairs (self-loops dropped), each oriented from the smaller to the larger id."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    b = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    keep = a != b
    return torch.stack([torch.minimum(a, b)[keep], torch.maximum(a, b)[keep]])
