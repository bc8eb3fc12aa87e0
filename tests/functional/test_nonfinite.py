"""Non-finite inputs: every backend gives the level sweep's NaN/inf pattern (causal, graph-local)."""

import pytest
import torch

from plstm_geometric.functional import plstm_dag, plstm_grid
from plstm_geometric.functional.dag import TORCH_BACKENDS
from plstm_geometric.functional.grid import GATE_NAMES, GridGates
from plstm_geometric.graph import line_graph

DAG_BACKENDS = TORCH_BACKENDS  # levels first: the reference the others are compared with
GRID_BACKENDS = ("wavefront", "chunkwise", "dag")


def chains(*lengths):
    parts, offset = [], 0
    for n in lengths:
        parts.append(torch.stack([torch.arange(n - 1), torch.arange(1, n)]) + offset)
        offset += n
    return offset, torch.cat(parts, 1)


def dag_inputs(num_nodes, num_edges, num_line, seed=0, k=3, v=2):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    gate = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return dict(
        query=rand(num_nodes, 2, k),
        key=rand(num_nodes, 2, k),
        value=rand(num_nodes, 2, v),
        source=gate(num_edges, 2),
        transition=gate(num_line, 2),
        mark=gate(num_edges, 2),
        direct=gate(num_nodes, 2),
    )


def pattern(out):
    return out.isnan(), out.isinf()


@pytest.mark.parametrize(
    "name,row",
    [("value", 150), ("key", 150), ("query", 10), ("value", 399), ("source", 100), ("transition", 50), ("mark", 3)],
)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("channels", [(3, 2), (8, 8), (3, 70)], ids=lambda c: f"k{c[0]}v{c[1]}")
def test_dag_backends_match_levels_on_nonfinite_input(name, row, bad, channels):
    # Two 200-node chains in one batch: a bad entry in the first must never reach the second, nor any
    # node upstream of it. The compiled backend holds rows of values as padded vectors up to a width (V = 70
    # is past it).
    num_nodes, edge_index = chains(200, 200)
    line_edge_index = line_graph(edge_index, num_nodes, "P")
    k, v = channels
    inputs = dag_inputs(num_nodes, edge_index.size(1), line_edge_index.size(1), k=k, v=v)
    inputs[name][row] = bad
    expected = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend="levels")
    assert not (~torch.isfinite(expected[200:])).any() or row >= 199
    for backend in DAG_BACKENDS[1:]:
        out = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend=backend)
        for got, want in zip(pattern(out), pattern(expected)):
            assert torch.equal(got, want), backend
        finite = torch.isfinite(expected)
        torch.testing.assert_close(out[finite], expected[finite])


@pytest.mark.parametrize("backend", DAG_BACKENDS)
def test_nan_at_the_last_node_stays_there(backend):
    num_nodes, edge_index = chains(5)
    line_edge_index = line_graph(edge_index, num_nodes, "P")
    inputs = dag_inputs(num_nodes, 4, 3)
    inputs["value"][4] = float("nan")
    out = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend=backend)
    assert out.isnan().flatten(1).any(1).tolist() == [False] * 4 + [True]


def grid_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    B, X, Y, H = 2, 3, 4, 1
    q, k = (torch.randn(B, X, Y, H, 2, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, X, Y, H, 2, generator=g, dtype=torch.float64)
    gates = [torch.rand(B, X, Y, H, generator=g, dtype=torch.float64) for _ in GATE_NAMES]
    return q, k, v, gates


@pytest.mark.parametrize("where", ["query", "key", "value", "gate"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_grid_backends_match_on_nonfinite_input(where, bad):
    q, k, v, gates = grid_inputs()
    target = {"query": q, "key": k, "value": v, "gate": gates[0]}[where]
    target[0, 2, 3] = bad  # the last cell of the first grid: only it may become non-finite
    outs = {b: plstm_grid(q, k, v, GridGates(*gates), backend=b) for b in GRID_BACKENDS}
    reference = outs["wavefront"]
    assert torch.isfinite(reference[1]).all() and torch.isfinite(reference[0, :2]).all()
    for backend, out in outs.items():
        for got, want in zip(pattern(out), pattern(reference)):
            assert torch.equal(got, want), backend
    # An interior cell: the pattern downstream of it is the same on every backend.
    q, k, v, gates = grid_inputs(1)
    k[0, 1, 1] = bad
    outs = {b: plstm_grid(q, k, v, GridGates(*gates), backend=b) for b in GRID_BACKENDS}
    for backend, out in outs.items():
        assert torch.equal(torch.isfinite(out), torch.isfinite(outs["wavefront"])), backend
        assert torch.isfinite(out[1]).all() and torch.isfinite(out[0, 0]).all()
