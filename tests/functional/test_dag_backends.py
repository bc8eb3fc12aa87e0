"""Every backend against the levels backend (which is itself checked against golden vectors and the naive loop)."""

import pytest
import torch

from plstm_geometric.functional import linear_recurrence, plstm_dag
from plstm_geometric.functional.dag import BACKENDS, choose_backend
from plstm_geometric.graph import build_plan, line_graph
from plstm_geometric.testing import (
    NAMES,
    batch_of_graphs,
    forward_and_grads,
    golden_path,
    random_case,
    random_graph,
    random_inputs,
)

# The fused backend needs CUDA tensors, or off GPU Triton's interpreter, too slow for these sizes:
# test_fused_backend.py checks it on small graphs, on the device its kernels run on.
FAST_BACKENDS = [b for b in BACKENDS if b not in ("auto", "levels", "fused")]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_golden(backend):
    for case in torch.load(golden_path("dag_public.pt"), weights_only=True):
        out, grads = forward_and_grads(
            {n: case[n] for n in NAMES}, case["edge_index"], case["line_edge_index"], backend, case["out_weight"]
        )
        torch.testing.assert_close(out, case["out"], atol=1e-10, rtol=0, msg=case["name"])
        for name in NAMES:
            torch.testing.assert_close(grads[name], case["grads"][name], atol=1e-10, rtol=0, msg=name)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("mode", ["P", "D"])
def test_agrees_with_levels_on_a_batch(backend, mode):
    num_nodes, edge_index, generator = batch_of_graphs(40, seed=11)
    line_edge_index = line_graph(edge_index, num_nodes, mode)
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=generator)
    expected, expected_grads = forward_and_grads(inputs, edge_index, line_edge_index, "levels")
    out, grads = forward_and_grads(inputs, edge_index, line_edge_index, backend)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    for name in NAMES:
        torch.testing.assert_close(grads[name], expected_grads[name], atol=1e-10, rtol=0, msg=name)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_gradcheck(backend):
    inputs, edge_index, line_edge_index = random_case(num_nodes=7, num_edges=14, seed=3)
    leaves = tuple(inputs[name].requires_grad_() for name in NAMES)
    plan = build_plan(edge_index, line_edge_index, 7)

    def fn(*args):
        return plstm_dag(*args, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend=backend)

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_empty_and_isolated_nodes(backend):
    inputs, _, _ = random_case(num_nodes=5, num_edges=0)
    empty = torch.empty(2, 0, dtype=torch.long)
    torch.testing.assert_close(
        plstm_dag(**inputs, edge_index=empty, line_edge_index=empty, backend=backend),
        plstm_dag(**inputs, edge_index=empty, line_edge_index=empty, backend="levels"),
    )


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_bfloat16_close_to_float64(backend):
    inputs, edge_index, line_edge_index = random_case(num_nodes=30, num_edges=90, seed=3)
    expected = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend="levels")
    low = {name: t.to(torch.bfloat16) for name, t in inputs.items()}
    out = plstm_dag(**low, edge_index=edge_index, line_edge_index=line_edge_index, backend=backend)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), expected, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("backend", ["auto", "levels"] + FAST_BACKENDS)
def test_autocast_does_not_change_the_precision_of_the_op(backend):
    inputs, edge_index, line_edge_index = random_case(num_nodes=30, num_edges=90, seed=4)
    inputs = {name: t.float() for name, t in inputs.items()}
    expected = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend=backend)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend=backend)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)


def test_auto_picks_by_graph_statistics():
    num_nodes, edge_index, _ = batch_of_graphs(20, seed=2)
    small = build_plan(edge_index, line_graph(edge_index, num_nodes), num_nodes)
    assert choose_backend(small) == "parallel"
    chain = torch.stack([torch.arange(999), torch.arange(1, 1000)])
    assert choose_backend(build_plan(chain, line_graph(chain, 1000), 1000)) == "chains"
    # A wide random DAG: components too large for the dense form, no long chains.
    wide = random_graph(3000, 9000, torch.Generator().manual_seed(0))
    assert choose_backend(build_plan(wide, line_graph(wide, 3000), 3000)) == "levels"


def chain_inputs(num_nodes, generator):
    edge_index = torch.stack([torch.arange(num_nodes - 1), torch.arange(1, num_nodes)])
    line_edge_index = line_graph(edge_index, num_nodes)
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, heads=1, k=1, v=1, generator=generator)
    inputs["transition"] = torch.rand(num_nodes - 2, 1, generator=generator, dtype=torch.float64) * 2 - 1
    return inputs, edge_index, line_edge_index


def test_chain_dag_equals_the_linear_recurrence():
    inputs, edge_index, line_edge_index = chain_inputs(500, torch.Generator().manual_seed(1))
    inputs.update(
        query=torch.ones_like(inputs["query"]),
        key=torch.ones_like(inputs["key"]),
        mark=torch.ones_like(inputs["mark"]),
        direct=torch.zeros_like(inputs["direct"]),
    )
    out = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend="chains")
    # Node t + 1 reads the state of edge t: h_t = T_{t-1} h_{t-1} + S_t v_t.
    decay = torch.cat([torch.zeros(1, 1, dtype=torch.float64), inputs["transition"]]).view(1, -1, 1)
    impulse = (inputs["source"] * inputs["value"][:-1, :, 0]).view(1, -1, 1)
    expected = linear_recurrence(decay, impulse).view(-1)
    torch.testing.assert_close(out[1:].view(-1), expected, atol=1e-10, rtol=0)


def test_hundred_thousand_node_chain_runs_in_one_step_and_equals_levels():
    inputs, edge_index, line_edge_index = chain_inputs(100_000, torch.Generator().manual_seed(2))
    plan = build_plan(edge_index, line_edge_index, 100_000)
    assert plan.num_levels == 99_999
    assert plan.chains.num_levels == 1
    chains = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend="chains")
    levels = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend="levels")
    torch.testing.assert_close(chains, levels, atol=1e-10, rtol=0)


def test_chains_inside_a_branching_dag():
    # Two long chains that split from a common root and merge again, plus a side branch.
    left = torch.stack([torch.arange(0, 30), torch.arange(1, 31)])
    right = torch.stack([torch.cat([torch.tensor([0]), torch.arange(31, 60)]), torch.arange(31, 61)])
    merge = torch.tensor([[30, 60, 61, 15], [61, 61, 62, 63]])
    edge_index = torch.cat([left, right, merge], 1)
    line_edge_index = line_graph(edge_index, 64)
    plan = build_plan(edge_index, line_edge_index, 64)
    assert plan.chains.num_levels < plan.num_levels / 4
    inputs = random_inputs(64, edge_index, line_edge_index, generator=torch.Generator().manual_seed(3))
    expected, expected_grads = forward_and_grads(inputs, edge_index, line_edge_index, "levels")
    out, grads = forward_and_grads(inputs, edge_index, line_edge_index, "chains")
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    for name in NAMES:
        torch.testing.assert_close(grads[name], expected_grads[name], atol=1e-10, rtol=0, msg=name)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_cuda_float32_agrees_with_float64(backend):
    num_nodes, edge_index, generator = batch_of_graphs(40, seed=5)
    line_edge_index = line_graph(edge_index, num_nodes, "P")
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=generator)
    expected = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend="levels")
    cuda = {name: t.float().cuda() for name, t in inputs.items()}
    out = plstm_dag(**cuda, edge_index=edge_index.cuda(), line_edge_index=line_edge_index.cuda(), backend=backend)
    torch.testing.assert_close(out.double().cpu(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ["parallel", "chains"])
def test_recompute_states_is_honoured_by_the_autograd_backends(backend, monkeypatch):
    import plstm_geometric.functional.dag as dag_op

    inputs, edge_index, line_edge_index = random_case(seed=4)
    expected = forward_and_grads(inputs, edge_index, line_edge_index, backend)
    calls = []

    def spy(function, *args, **kwargs):
        calls.append(function.__name__)
        return torch.utils.checkpoint.checkpoint(function, *args, **kwargs)

    monkeypatch.setattr(dag_op, "checkpoint", spy)
    out, grads = forward_and_grads(inputs, edge_index, line_edge_index, backend, recompute_states=True)
    assert calls == [f"plstm_dag_{backend}"]
    torch.testing.assert_close(out, expected[0], atol=1e-12, rtol=0)
    for name in NAMES:
        torch.testing.assert_close(grads[name], expected[1][name], atol=1e-12, rtol=0, msg=name)


def test_recompute_states_must_be_a_bool():
    inputs, edge_index, line_edge_index = random_case()
    with pytest.raises(TypeError, match="recompute_states: expected a bool"):
        plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, recompute_states="yes")


def test_parallel_form_saves_its_dense_intermediates_through_saved_tensor_hooks():
    # Activation checkpointing (recompute_states=True) and offloading act through these hooks: a tensor
    # kept outside them would stay alive between forward and backward.
    inputs, edge_index, line_edge_index = random_case(seed=4)
    inputs = {name: tensor.detach().requires_grad_() for name, tensor in inputs.items()}
    plan = build_plan(edge_index, line_edge_index, inputs["query"].size(0))
    shapes = []

    def pack(tensor):
        shapes.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend="parallel")
    heads = inputs["query"].size(1)
    for bucket in plan.layout.buckets:
        reach = (heads * bucket.num_graphs, bucket.max_edges, bucket.max_nodes)
        assert reach in shapes


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "fused"])
def test_zero_heads_give_an_empty_output_on_every_backend(backend):
    # A layer with no heads is degenerate but valid: every backend returns [N, 0, V], as the level sweep does.
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    line_edge_index = line_graph(edge_index, 4)
    num_nodes, heads, k, v = 4, 0, 2, 3
    query, key = torch.randn(num_nodes, heads, k, requires_grad=True), torch.randn(num_nodes, heads, k)
    value = torch.randn(num_nodes, heads, v)
    out = plstm_dag(
        query,
        key,
        value,
        torch.rand(3, heads),
        torch.rand(2, heads),
        torch.rand(3, heads),
        torch.rand(num_nodes, heads),
        edge_index,
        line_edge_index,
        backend=backend,
    )
    assert out.shape == (num_nodes, 0, v)
