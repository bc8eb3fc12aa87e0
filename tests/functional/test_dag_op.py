import pytest
import torch

from plstm_geometric.functional import plstm_dag, plstm_dag_naive
from plstm_geometric.graph import build_plan, line_graph
from plstm_geometric.testing import golden_path, random_case, random_graph, random_inputs

NAMES = ("query", "key", "value", "source", "transition", "mark", "direct")


def golden_cases():
    return torch.load(golden_path("dag_public.pt"), weights_only=True)


@pytest.mark.parametrize("recompute_states", [False, True])
def test_golden_forward_and_gradients(recompute_states):
    for case in golden_cases():
        inputs = {name: case[name].clone().requires_grad_() for name in NAMES}
        out = plstm_dag(
            **inputs,
            edge_index=case["edge_index"],
            line_edge_index=case["line_edge_index"],
            recompute_states=recompute_states,
        )
        torch.testing.assert_close(out, case["out"], atol=1e-10, rtol=0, msg=case["name"])
        (out * case["out_weight"]).sum().backward()
        for name in NAMES:
            torch.testing.assert_close(
                inputs[name].grad, case["grads"][name], atol=1e-10, rtol=0, msg=f"{case['name']}: grad of {name}"
            )


def test_golden_matches_the_naive_reference():
    for case in golden_cases():
        out = plstm_dag_naive(
            **{name: case[name] for name in NAMES},
            edge_index=case["edge_index"],
            line_edge_index=case["line_edge_index"],
        )
        torch.testing.assert_close(out, case["out"], atol=1e-10, rtol=0)


@pytest.mark.parametrize("mode", ["P", "D"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_naive_reference_forward_and_backward(mode, seed):
    inputs, edge_index, line_edge_index = random_case(mode=mode, seed=seed)
    leaves = {name: t.clone().requires_grad_() for name, t in inputs.items()}
    reference = {name: t.clone().requires_grad_() for name, t in inputs.items()}
    out = plstm_dag(**leaves, edge_index=edge_index, line_edge_index=line_edge_index)
    expected = plstm_dag_naive(**reference, edge_index=edge_index, line_edge_index=line_edge_index)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    for name in NAMES:
        torch.testing.assert_close(leaves[name].grad, reference[name].grad, atol=1e-10, rtol=0, msg=name)


@pytest.mark.parametrize("recompute_states", [False, True])
def test_gradcheck(recompute_states):
    inputs, edge_index, line_edge_index = random_case(num_nodes=7, num_edges=14, seed=1)
    plan = build_plan(edge_index, line_edge_index, 7)
    leaves = tuple(inputs[name].requires_grad_() for name in NAMES)

    def fn(*args):
        return plstm_dag(
            *args, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, recompute_states=recompute_states
        )

    assert torch.autograd.gradcheck(fn, leaves)


def test_a_batch_of_random_dags_equals_the_per_graph_calls():
    generator = torch.Generator().manual_seed(7)
    graphs, offset_nodes, offset_edges = [], 0, 0
    edges, lines, inputs = [], [], {name: [] for name in NAMES}
    for g in range(60):
        num_nodes = int(torch.randint(1, 25, (1,), generator=generator))
        edge_index = random_graph(num_nodes, 3 * num_nodes, generator)
        line_edge_index = line_graph(edge_index, num_nodes, "PD"[g % 2])
        graph_inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=generator)
        graphs.append((graph_inputs, edge_index, line_edge_index))
        edges.append(edge_index + offset_nodes)
        lines.append(line_edge_index + offset_edges)
        for name in NAMES:
            inputs[name].append(graph_inputs[name])
        offset_nodes += num_nodes
        offset_edges += edge_index.size(1)
    batched = plstm_dag(
        **{name: torch.cat(t) for name, t in inputs.items()},
        edge_index=torch.cat(edges, 1),
        line_edge_index=torch.cat(lines, 1),
    )
    single = torch.cat([plstm_dag(**graph_inputs, edge_index=e, line_edge_index=l) for graph_inputs, e, l in graphs])
    torch.testing.assert_close(batched, single, atol=1e-12, rtol=0)


def test_empty_edge_set_gives_the_direct_term_only():
    inputs, _, _ = random_case(num_nodes=5, num_edges=0)
    empty = torch.empty(2, 0, dtype=torch.long)
    out = plstm_dag(**inputs, edge_index=empty, line_edge_index=empty)
    expected = inputs["direct"][..., None] * (inputs["query"] * inputs["key"]).sum(-1, keepdim=True) * inputs["value"]
    torch.testing.assert_close(out, expected)


def test_empty_graph():
    inputs = random_inputs(0, torch.empty(2, 0, dtype=torch.long), torch.empty(2, 0, dtype=torch.long))
    empty = torch.empty(2, 0, dtype=torch.long)
    assert plstm_dag(**inputs, edge_index=empty, line_edge_index=empty).shape == (0, 2, 4)


def test_nan_propagates_without_crashing():
    inputs, edge_index, line_edge_index = random_case(seed=2)
    inputs["value"][0, 0, 0] = float("nan")
    leaves = {name: t.clone().requires_grad_() for name, t in inputs.items()}
    out = plstm_dag(**leaves, edge_index=edge_index, line_edge_index=line_edge_index)
    assert torch.isnan(out[0, 0, 0])
    out.sum().backward()
    assert torch.isfinite(out[:, 1]).all()


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 5e-2)])
def test_lower_precisions_follow_float64(dtype, atol):
    inputs, edge_index, line_edge_index = random_case(num_nodes=30, num_edges=90, seed=3)
    expected = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index)
    low = {name: t.to(dtype).requires_grad_() for name, t in inputs.items()}
    out = plstm_dag(**low, edge_index=edge_index, line_edge_index=line_edge_index)
    assert out.dtype == dtype
    # bf16 rounds the inputs themselves to 3 significant digits; the states accumulate in float32.
    torch.testing.assert_close(out.double(), expected, atol=atol, rtol=atol)
    out.float().sum().backward()
    assert all(low[name].grad.dtype == dtype for name in NAMES)


def test_plan_reuse_and_checks():
    inputs, edge_index, line_edge_index = random_case(seed=4)
    plan = build_plan(edge_index, line_edge_index, 12)
    out = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan)
    torch.testing.assert_close(out, plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index))
    other = build_plan(edge_index[:, :3], torch.empty(2, 0, dtype=torch.long), 12)
    with pytest.raises(ValueError, match="plan: built for 12 nodes, 3 edges"):
        plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=other)
    with pytest.raises(TypeError, match="plan: expected a PLSTMPlan"):
        plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan="levels")


def bad_input_cases():
    inputs, edge_index, line_edge_index = random_case(seed=5)
    num_edges = edge_index.size(1)

    def with_(**changes):
        args = dict(inputs, edge_index=edge_index, line_edge_index=line_edge_index)
        args.update(changes)
        return args

    return [
        (with_(query=inputs["query"][:, :, :2]), ValueError, "key: expected shape"),
        (with_(value=inputs["value"][:5]), ValueError, r"value: expected shape \[12, 2, V\]"),
        (with_(direct=inputs["direct"][:, :1]), ValueError, r"direct: expected shape \[12, 2\]"),
        (with_(source=inputs["source"][1:]), ValueError, rf"source: expected shape \[{num_edges}, 2\]"),
        (with_(mark=inputs["mark"][:, None]), ValueError, "mark: expected shape"),
        (with_(transition=inputs["transition"][1:]), ValueError, "transition: expected shape"),
        (with_(key=inputs["key"].float()), TypeError, "key: expected dtype torch.float64"),
        (with_(query=inputs["query"].long()), TypeError, "query: expected a floating-point tensor"),
        (with_(source=inputs["source"].tolist()), TypeError, "source: expected a torch.Tensor"),
        (with_(edge_index=edge_index.int()), TypeError, "edge_index: expected dtype torch.long"),
        (with_(line_edge_index=line_edge_index[0]), ValueError, r"line_edge_index: expected shape \[2, \*\]"),
        (
            with_(edge_index=edge_index.clone().index_fill_(1, torch.tensor([0]), 40)),
            ValueError,
            r"edge_index: expected node indices in \[0, 12\)",
        ),
        (with_(line_edge_index=line_edge_index + num_edges), ValueError, "line_edge_index: expected edge indices"),
        (with_(line_edge_index=line_edge_index.flip(0)), ValueError, "line_edge_index: column 0 joins"),
        (
            with_(
                edge_index=edge_index.flip(0),
                line_edge_index=torch.empty(2, 0, dtype=torch.long),
                transition=inputs["transition"][:0],
            ),
            None,
            None,
        ),
        (with_(backend="cuda"), ValueError, "backend: expected one of"),
    ]


@pytest.mark.parametrize("case", range(len(bad_input_cases())))
def test_bad_inputs_name_the_argument(case):
    args, error, match = bad_input_cases()[case]
    if error is None:  # A reversed DAG is still a DAG: no error.
        plstm_dag(**args)
        return
    with pytest.raises(error, match=match):
        plstm_dag(**args)


def test_cycle_raises():
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    line_edge_index = line_graph(torch.tensor([[0, 1], [1, 2]]), 3)
    inputs = random_inputs(3, edge_index, line_edge_index)
    with pytest.raises(ValueError, match="edge_index: the graph has a cycle through node"):
        plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    inputs, edge_index, line_edge_index = random_case(num_nodes=40, num_edges=120, seed=6)
    expected = plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index)
    cuda = {name: t.cuda() for name, t in inputs.items()}
    out = plstm_dag(**cuda, edge_index=edge_index.cuda(), line_edge_index=line_edge_index.cuda())
    torch.testing.assert_close(out.cpu(), expected, atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="edge_index: expected device"):
        plstm_dag(**cuda, edge_index=edge_index, line_edge_index=line_edge_index.cuda())
