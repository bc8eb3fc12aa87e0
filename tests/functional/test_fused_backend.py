"""The fused (Triton) backend against the levels backend.

Without a GPU the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1), a few
milliseconds per program, so the graphs here are small. With a GPU every test runs on CUDA tensors.
"""

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from plstm_geometric.functional import plstm_dag
from plstm_geometric.graph import line_graph
from plstm_geometric.testing import NAMES, batch_of_graphs, forward_and_grads, golden_path, random_case, random_inputs

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
REPO = pathlib.Path(__file__).resolve().parents[2]


def assert_fused_equals_levels(
    inputs, edge_index, line_edge_index, recompute_states=False, out_weight=None, **tolerance
):
    tolerance = tolerance or dict(atol=1e-10, rtol=0)
    expected, expected_grads = forward_and_grads(
        inputs, edge_index, line_edge_index, "levels", out_weight, device=DEVICE
    )
    out, grads = forward_and_grads(
        inputs, edge_index, line_edge_index, "fused", out_weight, recompute_states, device=DEVICE
    )
    assert out.dtype == expected.dtype
    torch.testing.assert_close(out, expected, **tolerance)
    for name in NAMES:
        torch.testing.assert_close(grads[name], expected_grads[name], **tolerance, msg=f"grad of {name}")
    return out, grads


def test_golden_vectors():
    for case in torch.load(golden_path("dag_public.pt"), weights_only=True):
        out, grads = assert_fused_equals_levels(
            {name: case[name] for name in NAMES},
            case["edge_index"],
            case["line_edge_index"],
            out_weight=case["out_weight"],
        )
        torch.testing.assert_close(out.cpu(), case["out"], atol=1e-10, rtol=0, msg=case["name"])
        for name in NAMES:
            torch.testing.assert_close(
                grads[name].cpu(), case["grads"][name], atol=1e-10, rtol=0, msg=f"{case['name']}: grad of {name}"
            )


@pytest.mark.parametrize("recompute_states", [False, True])
@pytest.mark.parametrize("mode", ["P", "D"])
def test_a_batch_of_random_dags(mode, recompute_states):
    num_nodes, edge_index, generator = batch_of_graphs(5, seed=4, max_nodes=12)
    line_edge_index = line_graph(edge_index, num_nodes, mode)
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=generator)
    out_weight = torch.randn(num_nodes, 2, 4, generator=generator, dtype=torch.float64)
    assert_fused_equals_levels(inputs, edge_index, line_edge_index, recompute_states, out_weight)


def test_value_channels_over_several_tiles():
    # K = 70 leaves 4096 // 128 = 32 value columns per tile: V = 40 takes two, the second one ragged.
    inputs, edge_index, line_edge_index = random_case(num_nodes=5, num_edges=7, seed=2, heads=1, k=70, v=40)
    assert_fused_equals_levels(inputs, edge_index, line_edge_index)


@pytest.mark.parametrize("recompute_states", [False, True])
def test_a_chain(recompute_states):
    num_nodes = 12
    edge_index = torch.stack([torch.arange(num_nodes - 1), torch.arange(1, num_nodes)])
    line_edge_index = line_graph(edge_index, num_nodes)
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=torch.Generator().manual_seed(1))
    assert_fused_equals_levels(inputs, edge_index, line_edge_index, recompute_states)


@pytest.mark.parametrize("recompute_states", [False, True])
def test_no_edges_and_no_line_edges(recompute_states):
    empty = torch.empty(2, 0, dtype=torch.long)
    inputs, _, _ = random_case(num_nodes=5, num_edges=0)
    out, grads = assert_fused_equals_levels(inputs, empty, empty, recompute_states)
    assert grads["source"].shape == (0, 2)
    # Edges but an empty line graph: every state is its source term.
    inputs, edge_index, _ = random_case(num_nodes=6, num_edges=8, seed=5)
    inputs["transition"] = inputs["transition"][:0]
    assert edge_index.size(1) > 0
    assert_fused_equals_levels(inputs, edge_index, empty, recompute_states)


def test_float32_within_summation_order():
    # Same operations as the levels backend in another order: agreement to a few float32 ulps of the
    # largest terms (gates below 1, unit normal channels).
    inputs, edge_index, line_edge_index = random_case(num_nodes=10, num_edges=20, seed=6)
    inputs = {name: t.float() for name, t in inputs.items()}
    assert_fused_equals_levels(inputs, edge_index, line_edge_index, atol=1e-5, rtol=1e-5)


def test_bfloat16_inputs_accumulate_in_float32():
    inputs, edge_index, line_edge_index = random_case(num_nodes=10, num_edges=20, seed=7)
    low = {name: t.to(torch.bfloat16) for name, t in inputs.items()}
    # Both backends compute in float32 and round once at the end: at most one bfloat16 step apart.
    out, _ = assert_fused_equals_levels(low, edge_index, line_edge_index, atol=1e-5, rtol=2**-7)
    assert out.dtype == torch.bfloat16
    # Against exact arithmetic on the same (rounded) inputs the only error left is that final rounding.
    exact, _ = forward_and_grads(
        {name: t.double() for name, t in low.items()}, edge_index, line_edge_index, "levels", device=DEVICE
    )
    torch.testing.assert_close(out.double(), exact, atol=1e-5, rtol=2**-8)


def assert_non_finite_values_propagate_like_levels(inputs, edge_index, line_edge_index):
    expected, expected_grads = forward_and_grads(inputs, edge_index, line_edge_index, "levels", device=DEVICE)
    out, grads = forward_and_grads(inputs, edge_index, line_edge_index, "fused", device=DEVICE)
    assert not out.isfinite().all() and out.isfinite().any()
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0, equal_nan=True)
    for name in NAMES:
        torch.testing.assert_close(grads[name], expected_grads[name], atol=1e-10, rtol=0, equal_nan=True, msg=name)


def test_nan_propagates_like_levels():
    inputs, edge_index, line_edge_index = random_case(num_nodes=8, num_edges=16, seed=8)
    inputs["key"][int(edge_index[0, 0])] = float("nan")
    inputs["transition"][0] = float("nan")
    assert_non_finite_values_propagate_like_levels(inputs, edge_index, line_edge_index)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, in the interpreter
def test_infinity_stays_infinite_like_levels():
    # With K = 1 an infinite value gives infinite (not NaN) states and outputs; the kernels' padded K lanes
    # (0 * inf = NaN) must not leak into the readout or the transition gradients.
    inputs, edge_index, line_edge_index = random_case(num_nodes=8, num_edges=16, seed=8, k=1)
    inputs["value"][int(edge_index[0, 0]), 0, 0] = float("inf")
    assert_non_finite_values_propagate_like_levels(inputs, edge_index, line_edge_index)


def test_without_triton_fused_asks_for_it(monkeypatch):
    # None in sys.modules makes `import triton` fail, as if it were not installed.
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.delitem(sys.modules, "plstm_geometric.functional.dag.fused", raising=False)
    inputs, edge_index, line_edge_index = random_case(num_nodes=5, num_edges=8)
    with pytest.raises(ImportError, match="pip install triton"):
        plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend="fused")


def test_package_and_other_backends_work_without_triton():
    script = """
import sys
sys.modules["triton"] = None
import torch
from plstm_geometric.functional import plstm_dag
edge_index = torch.tensor([[0, 1, 0], [1, 2, 2]])
line_edge_index = torch.tensor([[0], [1]])
inputs = dict(query=torch.randn(3, 1, 2), key=torch.randn(3, 1, 2), value=torch.randn(3, 1, 2),
              source=torch.rand(3, 1), transition=torch.rand(1, 1), mark=torch.rand(3, 1), direct=torch.rand(3, 1))
for backend in ("auto", "levels", "parallel", "chains"):
    plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend=backend)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.gpu
def test_cuda_float32_agrees_with_levels():
    num_nodes, edge_index, generator = batch_of_graphs(40, seed=5)
    line_edge_index = line_graph(edge_index, num_nodes, "P")
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, heads=4, k=24, v=24, generator=generator)
    inputs = {name: t.float() for name, t in inputs.items()}
    assert_fused_equals_levels(inputs, edge_index, line_edge_index, atol=1e-4, rtol=1e-4)
    assert_fused_equals_levels(inputs, edge_index, line_edge_index, recompute_states=True, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_cpu_tensors_without_the_interpreter_are_refused():
    from plstm_geometric.functional.dag.fused import INTERPRETED

    if INTERPRETED:
        pytest.skip("TRITON_INTERPRET=1: the kernels run on CPU tensors")
    inputs, edge_index, line_edge_index = random_case(num_nodes=5, num_edges=8)
    with pytest.raises(ValueError, match="need CUDA tensors"):
        plstm_dag(**inputs, edge_index=edge_index, line_edge_index=line_edge_index, backend="fused")
