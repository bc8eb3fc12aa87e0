"""Precomputing pLSTM structures for a dataset: :class:`~plstm_geometric.transforms.PreparePLSTM` graph by
graph against ``PreparePLSTM.prepare_many`` (mini-batches of ``--chunk-size`` graphs cut apart again).

    python -m benchmarks.prepare [--graphs 512] [--chunk-size 1024] [--threads 1]

Graphs: NCI molecules (``gpu_data/nci1024.pt``) and LRGB peptides (``gpu_data/peptides64.pt``), both
directions and both line-graph modes, as the training CLI prepares them. Both ways give equal fields
(checked here, and in ``tests/transforms/test_prepare.py``).
"""

import argparse
import time

import torch
from torch_geometric.data import Data

from benchmarks.gpu_check import load_graphs
from plstm_geometric.transforms import PreparePLSTM


def graphs_of(name: str, count: int | None) -> list[Data]:
    """The graphs of a stored batch, each in its own numbering (the batch stores them graph after graph)."""
    data = load_graphs(name, count)
    nodes = torch.bincount(data.batch, minlength=data.num_graphs).tolist()
    edges = torch.bincount(data.batch[data.edge_index[0]], minlength=data.num_graphs).tolist()
    graphs, node_start, edge_start = [], 0, 0
    for n, e in zip(nodes, edges):
        edge_index = data.edge_index[:, edge_start : edge_start + e] - node_start
        x, edge_attr = data.x[node_start : node_start + n], data.edge_attr[edge_start : edge_start + e]
        graphs.append(Data(x=x, edge_index=edge_index, edge_attr=edge_attr))
        node_start, edge_start = node_start + n, edge_start + e
    return graphs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=512, help="molecules (at most 1024)")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    transform = PreparePLSTM()
    print("| graphs | one by one ms / graph | prepare_many ms / graph | speed-up |")
    print("|---|---|---|---|")
    for name, count in (("nci1024", args.graphs), ("peptides64", None)):
        graphs = graphs_of(name, count)
        start = time.perf_counter()
        alone = [transform(graph) for graph in graphs]
        one_by_one = (time.perf_counter() - start) / len(graphs)
        start = time.perf_counter()
        many = transform.prepare_many(graphs, chunk_size=args.chunk_size)
        batched = (time.perf_counter() - start) / len(graphs)
        for a, b in zip(alone, many):
            for key in a.keys():
                if isinstance(a[key], torch.Tensor) and not torch.equal(a[key], b[key]):
                    raise AssertionError(f"{name}: prepare_many differs from one by one in {key}")
        label = f"{len(graphs)} {'NCI molecules' if name == 'nci1024' else 'LRGB peptides'}"
        print(f"| {label} | {one_by_one * 1e3:.2f} | {batched * 1e3:.2f} | {one_by_one / batched:.1f}x |")


if __name__ == "__main__":
    main()
