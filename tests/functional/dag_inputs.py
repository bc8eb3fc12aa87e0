"""Random pLSTM inputs on random DAGs, shared by the op tests."""
import torch

from plstm_geometric.graph import line_graph


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
    return dict(query=rand(num_nodes, heads, k), key=rand(num_nodes, heads, k), value=rand(num_nodes, heads, v),
                source=gate(num_edges, heads), transition=rand(num_line, heads) * 0.5,
                mark=gate(num_edges, heads), direct=gate(num_nodes, heads))


def random_case(num_nodes=12, num_edges=30, mode="P", seed=0, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    edge_index = random_graph(num_nodes, num_edges, generator)
    line_edge_index = line_graph(edge_index, num_nodes, mode)
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=generator, **kwargs)
    return inputs, edge_index, line_edge_index
