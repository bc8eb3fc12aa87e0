"""Precomputing pLSTM structures for a dataset: :class:`~plstm_geometric.transforms.PreparePLSTM` graph by
graph against ``PreparePLSTM.prepare_many`` (mini-batches of ``--chunk-size`` graphs cut apart again).

    python -m benchmarks.prepare [--graphs 512] [--chunk-size 1024] [--threads 1]

Graphs: NCI molecules (``gpu_data/nci1024.pt``) and LRGB peptides (``gpu_data/peptides64.pt``), both
directions and both line-graph modes, as the training CLI prepares them. Both ways give equal fields
(checked here, and in ``tests/transforms/test_prepare.py``). Each way runs once, timed by a stopwatch: what
is measured is a dataset's one-time preparation, warm-up included.
"""

import argparse
import time

import torch

from plstm_geometric.transforms import PreparePLSTM

from .data import graphs_of
from .harness import torch_threads


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=512, help="molecules (at most 1024)")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    with torch_threads(args.threads):
        run(args.graphs, args.chunk_size)


def run(num_graphs: int, chunk_size: int) -> None:
    transform = PreparePLSTM()
    print("| graphs | one by one ms / graph | prepare_many ms / graph | speed-up |")
    print("|---|---|---|---|")
    for name, count in (("nci1024", num_graphs), ("peptides64", None)):
        graphs = graphs_of(name, count)
        start = time.perf_counter()
        alone = [transform(graph) for graph in graphs]
        one_by_one = (time.perf_counter() - start) / len(graphs)
        start = time.perf_counter()
        many = transform.prepare_many(graphs, chunk_size=chunk_size)
        batched = (time.perf_counter() - start) / len(graphs)
        for a, b in zip(alone, many):
            for key in a.keys():
                if isinstance(a[key], torch.Tensor) and not torch.equal(a[key], b[key]):
                    raise AssertionError(f"{name}: prepare_many differs from one by one in {key}")
        label = f"{len(graphs)} {'NCI molecules' if name == 'nci1024' else 'LRGB peptides'}"
        print(f"| {label} | {one_by_one * 1e3:.2f} | {batched * 1e3:.2f} | {one_by_one / batched:.1f}x |")


if __name__ == "__main__":
    main()
