"""The molecule and peptide batches the benchmarks run on, read from the tensor files in ``gpu_data/``.

``nci1024.pt`` holds the first 1,024 NCI molecules and ``peptides64.pt`` the first 64 training peptides of
LRGB Peptides-func, both with OGB's 9 atom and 3 bond features (built by :mod:`benchmarks.make_gpu_data`,
whose docstring gives the file layout). Only tensors, so they load with ``weights_only=True`` and need
neither RDKit nor OGB.
"""

from pathlib import Path

import torch
from torch_geometric.data import Data

DATA = Path(__file__).resolve().parent / "gpu_data"
NAMES = ("nci1024", "peptides64")


def load_graphs(name: str, num_graphs: int | None = None, device="cpu") -> Data:
    """The first ``num_graphs`` graphs (default: all) of ``gpu_data/<name>.pt`` as one batch: ``x``,
    ``edge_index``, ``edge_attr`` (int64), ``batch`` and ``num_graphs``."""
    if name not in NAMES:
        raise ValueError(f"name: expected one of {NAMES}, got {name!r}")
    stored = torch.load(DATA / f"{name}.pt", weights_only=True)
    counts = stored["num_nodes"].long()
    total = counts.numel()
    num_graphs = total if num_graphs is None else num_graphs
    if not 0 < num_graphs <= total:
        raise ValueError(f"num_graphs: expected 1 ... {total} for {name}, got {num_graphs}")
    nodes = int(counts[:num_graphs].sum())
    edges = int(stored["num_edges"][:num_graphs].long().sum())
    data = Data(
        x=stored["x"][:nodes].long(),
        edge_index=stored["edge_index"][:, :edges].long(),
        edge_attr=stored["edge_attr"][:edges].long(),
        batch=torch.repeat_interleave(torch.arange(num_graphs), counts[:num_graphs]),
    )
    data.num_graphs = num_graphs
    return data.to(device)


def graphs_of(name: str, num_graphs: int | None = None) -> list[Data]:
    """The graphs of :func:`load_graphs` one by one, each in its own node numbering (the files store them
    graph after graph, edges grouped by graph)."""
    data = load_graphs(name, num_graphs)
    nodes = torch.bincount(data.batch, minlength=data.num_graphs).tolist()
    edges = torch.bincount(data.batch[data.edge_index[0]], minlength=data.num_graphs).tolist()
    graphs, node_start, edge_start = [], 0, 0
    for n, e in zip(nodes, edges):
        edge_index = data.edge_index[:, edge_start : edge_start + e] - node_start
        x, edge_attr = data.x[node_start : node_start + n], data.edge_attr[edge_start : edge_start + e]
        graphs.append(Data(x=x, edge_index=edge_index, edge_attr=edge_attr))
        node_start, edge_start = node_start + n, edge_start + e
    return graphs
