"""Random pLSTM inputs on random DAGs, shared by the tests of the DAG op and its backends."""

import torch

from plstm_geometric.functional import plstm_dag
from plstm_geometric.graph import line_graph

NAMES = ("query", "key", "value", "source", "transition", "mark", "direct")


def random_graph(num_nodes, num_edges, generator):
    a = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    b = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    keep = a != b
    edge_index = torch.stack([torch.minimum(a, b)[keep], torch.maximum(a, b)[keep]])
    # Shuffle node ids so that edges do not all point to larger ids.
    perm = torch.randperm(num_nodes, generator=generator)
    return perm[edge_index]


def random_inputs(num_nodes, edge_index, line_edge_index, heads=2, k=3, v=4, dtype=torch.float64, generator=None):
    def rand(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    def gate(*shape):
        return torch.sigmoid(rand(*shape))

    num_edges, num_line = edge_index.size(1), line_edge_index.size(1)
    return dict(
        query=rand(num_nodes, heads, k),
        key=rand(num_nodes, heads, k),
        value=rand(num_nodes, heads, v),
        source=gate(num_edges, heads),
        transition=rand(num_line, heads) * 0.5,
        mark=gate(num_edges, heads),
        direct=gate(num_nodes, heads),
    )


def random_case(num_nodes=12, num_edges=30, mode="P", seed=0, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    edge_index = random_graph(num_nodes, num_edges, generator)
    line_edge_index = line_graph(edge_index, num_nodes, mode)
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=generator, **kwargs)
    return inputs, edge_index, line_edge_index


def batch_of_graphs(num_graphs, seed, max_nodes=30):
    """A disjoint union of random DAGs: ``(num_nodes, edge_index, generator)``."""
    generator = torch.Generator().manual_seed(seed)
    edges, offset = [], 0
    for _ in range(num_graphs):
        num_nodes = int(torch.randint(1, max_nodes, (1,), generator=generator))
        edges.append(random_graph(num_nodes, 2 * num_nodes, generator) + offset)
        offset += num_nodes
    return offset, torch.cat(edges, 1), generator


def forward_and_grads(
    inputs, edge_index, line_edge_index, backend, out_weight=None, recompute_states=False, device="cpu"
):
    """``plstm_dag`` on copies of ``inputs`` moved to ``device``: the output and the gradients of
    ``(out * out_weight).sum()`` (``out_weight`` defaults to ones) by input name."""
    leaves = {name: t.detach().to(device, copy=True).requires_grad_() for name, t in inputs.items()}
    out = plstm_dag(
        **leaves,
        edge_index=edge_index.to(device),
        line_edge_index=line_edge_index.to(device),
        backend=backend,
        recompute_states=recompute_states,
    )
    weight = torch.ones_like(out) if out_weight is None else out_weight.to(device, out.dtype)
    (out * weight).sum().backward()
    return out, {name: leaves[name].grad for name in NAMES}
