"""Second derivatives: every backend either passes gradgradcheck or refuses double backward clearly."""

import pytest
import torch
from torch.autograd import gradgradcheck

from plstm_geometric.functional import linear_recurrence, plstm_dag, plstm_grid
from plstm_geometric.functional.dag import TORCH_BACKENDS
from plstm_geometric.functional.grid import GATE_NAMES, GridGates
from plstm_geometric.graph import line_graph
from plstm_geometric.testing import NAMES


def small_dag():
    # A diamond with a tail: a join, a fork and a chain link.
    edge_index = torch.tensor([[0, 0, 1, 2, 3], [1, 2, 3, 3, 4]])
    line_edge_index = line_graph(edge_index, 5, "P")
    g = torch.Generator().manual_seed(0)
    shapes = dict(
        query=(5, 1, 2),
        key=(5, 1, 2),
        value=(5, 1, 2),
        source=(5, 1),
        transition=(line_edge_index.size(1), 1),
        mark=(5, 1),
        direct=(5, 1),
    )
    inputs = tuple(torch.rand(*shapes[n], generator=g, dtype=torch.float64).requires_grad_() for n in NAMES)
    return inputs, edge_index, line_edge_index


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
@pytest.mark.parametrize("recompute_states", [False, True])
def test_plstm_dag_gradgradcheck(backend, recompute_states):
    inputs, edge_index, line_edge_index = small_dag()
    assert gradgradcheck(
        lambda *a: plstm_dag(*a, edge_index, line_edge_index, backend=backend, recompute_states=recompute_states),
        inputs,
        fast_mode=True,
    )


def test_plstm_dag_fused_refuses_double_backward():
    pytest.importorskip("triton")
    if not torch.cuda.is_available():
        pytest.skip("backend='fused' runs on CUDA")
    inputs, edge_index, line_edge_index = small_dag()
    inputs = tuple(t.detach().float().cuda().requires_grad_() for t in inputs)
    out = plstm_dag(*inputs, edge_index.cuda(), line_edge_index.cuda(), backend="fused")
    with pytest.raises(RuntimeError, match="backend='fused'.*double backward"):
        torch.autograd.grad(out.sum(), inputs, create_graph=True)


def grid_inputs():
    g = torch.Generator().manual_seed(0)
    shape = (1, 2, 3, 1)
    tensors = [torch.randn(*shape, 2, generator=g, dtype=torch.float64) for _ in range(3)]
    tensors += [torch.rand(*shape, generator=g, dtype=torch.float64) for _ in GATE_NAMES]
    return tuple(t.requires_grad_() for t in tensors)


def grid_op(backend):
    return lambda q, k, v, *gates: plstm_grid(q, k, v, GridGates(*gates), backend=backend)


@pytest.mark.parametrize("backend", ["chunkwise", "dag"])
def test_plstm_grid_gradgradcheck(backend):
    assert gradgradcheck(grid_op(backend), grid_inputs(), fast_mode=True)


def test_plstm_grid_wavefront_refuses_double_backward():
    inputs = grid_inputs()
    out = grid_op("wavefront")(*inputs)
    with pytest.raises(RuntimeError, match="backend='wavefront'.*double backward"):
        torch.autograd.grad(out.sum(), inputs, create_graph=True)
    # A plain backward still works.
    torch.autograd.grad(grid_op("wavefront")(*inputs).sum(), inputs)


def scan_backends():
    backends = ["torch"]
    try:
        import triton  # noqa: F401

        if torch.cuda.is_available():
            backends.append("triton")
    except ImportError:
        pass
    return backends


@pytest.mark.parametrize("backend", scan_backends())
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 3, 20])
def test_linear_recurrence_gradgradcheck(backend, reverse, length):
    device = "cuda" if backend == "triton" else "cpu"
    g = torch.Generator().manual_seed(length)
    decay, impulse = (
        torch.randn(2, length, 3, generator=g, dtype=torch.float64).to(device).requires_grad_() for _ in range(2)
    )
    state = torch.randn(2, 3, generator=g, dtype=torch.float64).to(device).requires_grad_()
    assert gradgradcheck(
        lambda a, b, h: linear_recurrence(a, b, h, reverse=reverse, backend=backend),
        (decay, impulse, state),
        fast_mode=True,
    )
    assert gradgradcheck(
        lambda a, b: linear_recurrence(a, b, reverse=reverse, backend=backend), (decay, impulse), fast_mode=True
    )


def test_linear_recurrence_gradient_has_a_graph_under_create_graph():
    decay = torch.rand(1, 5, 2, dtype=torch.float64, requires_grad=True)
    impulse = torch.rand(1, 5, 2, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(linear_recurrence(decay, impulse).sum(), decay, create_graph=True)
    assert grad.requires_grad
    (hessian_row,) = torch.autograd.grad(grad.sum(), impulse)
    assert hessian_row.abs().sum() > 0
