r"""Synthetic DAG tasks whose answer needs information from ``depth`` levels away.

Every graph is undirected in PyG's sense (both directions of every edge stored) and its nodes are
numbered in a topological order of the intended DAG, so that the default orientation of
:class:`~plstm_geometric.nn.PLSTMConv` (lower to higher node index) recovers that DAG. Node features
are float ``[bit, is_start, is_query]``: every node carries a random bit (the distractors), one node is
marked as the start and one as the query, ``depth`` levels below the start on a path of ``depth``
edges. ``data.readout_mask`` marks the query node, so
a node-level readout pools that node alone; the graph-level readout pools all nodes.

Tasks (the label ``y`` is 0 or 1):

* ``copy``: the start node's bit.
* ``combine``: the start node's bit XOR the query node's own bit, so the far information must be combined
  with local information, not just carried.

Families of graphs:

* ``path``: a path ``start -> ... -> query`` of ``depth`` edges; about half of its nodes have a side leaf
  that feeds into them (a distractor source whose bit must not be confused with the start's).
* ``tree``: an out-tree rooted at the start: a spine of ``depth`` edges to the query with small subtrees
  hanging off the spine, so every spine node splits its state among several successors.
* ``layered``: a random layered DAG of ``width`` nodes per level, every node with one or two parents in the
  level above; the start is one node of level 0 (the others are distractor sources), the query a node of
  the last level that descends from it.

A message-passing GNN of ``L`` layers sees ``L`` hops around the query, so beyond ``depth > L`` it is at
chance; a model that carries state along the DAG is not limited by depth.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import Data

TASKS = ("copy", "combine")
FAMILIES = ("path", "tree", "layered")
NUM_FEATURES = 3  # bit, is_start, is_query


@dataclass(frozen=True)
class TaskSpec:
    """One long-range task: what is predicted, on which graphs, how far apart start and query are."""

    task: str
    family: str
    depth: int
    width: int = 3  # nodes per level of the layered family

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task: expected one of {TASKS}, got {self.task!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"family: expected one of {FAMILIES}, got {self.family!r}")
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or self.depth < 1:
            raise ValueError(f"depth: expected a positive int, got {self.depth!r}")
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 1:
            raise ValueError(f"width: expected a positive int, got {self.width!r}")


def _path(depth: int, rng: np.random.Generator) -> tuple[list[tuple[int, int]], int, int, int]:
    """Edges of a path with side leaves feeding into it; nodes numbered leaf-before-its-path-node."""
    edges, num_nodes, previous = [], 1, 0
    for _ in range(depth):
        node = num_nodes
        if rng.random() < 0.5:  # a side leaf numbered just before its path node, so it is a DAG source
            edges.append((node, node + 1))
            node += 1
        edges.append((previous, node))
        num_nodes, previous = node + 1, node
    return edges, num_nodes, 0, previous


def _tree(depth: int, rng: np.random.Generator) -> tuple[list[tuple[int, int]], int, int, int]:
    """Edges of an out-tree: a spine of ``depth`` edges, side subtrees of 1-3 nodes numbered after their
    spine node (so that every edge points away from the root)."""
    edges, num_nodes, previous = [], 1, 0
    for _ in range(depth):
        # hang a side chain of 0-2 nodes off the current spine node, then step along the spine
        length = int(rng.integers(0, 3))
        parent = previous
        for _ in range(length):
            edges.append((parent, num_nodes))
            parent, num_nodes = num_nodes, num_nodes + 1
        edges.append((previous, num_nodes))
        previous, num_nodes = num_nodes, num_nodes + 1
    return edges, num_nodes, 0, previous


def _layered(depth: int, width: int, rng: np.random.Generator) -> tuple[list[tuple[int, int]], int, int, int]:
    """Edges of a random layered DAG; level ``i`` holds nodes ``i * width`` to ``(i + 1) * width - 1``."""
    edges = []
    start = int(rng.integers(width))
    on_path = start
    for level in range(1, depth + 1):
        base, above = level * width, (level - 1) * width
        path_child = int(rng.integers(width))
        for j in range(width):
            parents = set(rng.choice(width, size=int(rng.integers(1, 3)), replace=True).tolist())
            if j == path_child:
                parents.add(on_path)
            edges.extend((above + p, base + j) for p in sorted(parents))
        on_path = path_child
    return edges, (depth + 1) * width, start, depth * width + on_path


def make_graph(spec: TaskSpec, rng: np.random.Generator) -> Data:
    """One graph of ``spec`` drawn with ``rng``."""
    if spec.family == "path":
        edges, num_nodes, start, query = _path(spec.depth, rng)
    elif spec.family == "tree":
        edges, num_nodes, start, query = _tree(spec.depth, rng)
    else:
        edges, num_nodes, start, query = _layered(spec.depth, spec.width, rng)
    pairs = torch.tensor(edges, dtype=torch.long).t()
    edge_index = torch.cat([pairs, pairs.flip(0)], dim=1)
    bits = torch.from_numpy(rng.integers(0, 2, size=num_nodes)).float()
    x = torch.zeros(num_nodes, NUM_FEATURES)
    x[:, 0] = bits
    x[start, 1] = 1.0
    x[query, 2] = 1.0
    label = int(bits[start])
    if spec.task == "combine":
        label ^= int(bits[query])
    readout_mask = torch.zeros(num_nodes, dtype=torch.bool)
    readout_mask[query] = True
    return Data(
        x=x,
        edge_index=edge_index,
        # a constant edge feature, for the baselines whose convolutions need one (GINE, GatedGCN)
        edge_attr=torch.ones(edge_index.size(1), 1),
        y=torch.tensor([label], dtype=torch.long),
        readout_mask=readout_mask,
        num_nodes=num_nodes,
    )


def make_dataset(spec: TaskSpec, num_graphs: int, seed: int) -> list[Data]:
    """``num_graphs`` graphs of ``spec``; labels balanced in expectation. Seeds of different splits must
    differ (e.g. train 0, validation 1, test 2)."""
    rng = np.random.default_rng([seed, TASKS.index(spec.task), FAMILIES.index(spec.family), spec.depth])
    return [make_graph(spec, rng) for _ in range(num_graphs)]
