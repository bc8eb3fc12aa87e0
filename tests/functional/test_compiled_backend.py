"""backend='compiled': the C++ level sweep, its fallback to the torch sweep, and what 'auto' picks."""

import importlib.util

import pytest
import torch

from benchmarks.harness import torch_threads
from plstm_geometric.functional import plstm_dag
from plstm_geometric.functional.dag import compiled, workspace
from plstm_geometric.graph import line_graph
from plstm_geometric.testing import NAMES, batch_of_graphs, forward_and_grads, random_inputs


def batch_case(mode="P", dtype=torch.float64, k=3, v=4, graphs=20):
    num_nodes, edge_index, generator = batch_of_graphs(graphs, seed=2, max_nodes=40)
    line_edge_index = line_graph(edge_index, num_nodes, mode)
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, k=k, v=v, dtype=dtype, generator=generator)
    return inputs, edge_index, line_edge_index


def assert_same(got, expected, atol=1e-10):
    torch.testing.assert_close(got[0], expected[0], atol=atol, rtol=0)
    for name in NAMES:
        torch.testing.assert_close(got[1][name], expected[1][name], atol=atol, rtol=0, msg=name)


needs_build = pytest.mark.skipif(compiled.build_extension() is None, reason="no C++ compiler to build the loops")


@needs_build
@pytest.mark.parametrize("recompute_states", [False, True])
def test_agrees_with_the_torch_sweep(recompute_states):
    case = batch_case()
    expected = forward_and_grads(*case, "levels")
    assert_same(forward_and_grads(*case, "compiled", recompute_states=recompute_states), expected)


def largest(tensor):
    return tensor.abs().max().item() if tensor.numel() else 1.0


# (K, V): rows of one vector, of several, with a padded last vector, K above and below V, and rows too
# wide for the row kernels (the loops for any size)
CHANNELS = [(16, 16), (8, 8), (22, 22), (5, 12), (20, 3), (33, 40), (64, 64), (6, 70), (4, 0), (0, 4)]


@needs_build
@pytest.mark.parametrize("channels", CHANNELS, ids=lambda c: f"k{c[0]}v{c[1]}")
@pytest.mark.parametrize("mode", ["P", "D"])
def test_row_kernels_agree_with_the_torch_sweep(channels, mode):
    # an output weight that differs per entry tells every lane of every gradient apart
    k, v = channels
    case = batch_case(mode, k=k, v=v, graphs=6)
    num_nodes, heads = case[0]["query"].shape[:2]
    weight = torch.randn(num_nodes, heads, v, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = forward_and_grads(*case, "levels", out_weight=weight)
    assert_same(forward_and_grads(*case, "compiled", out_weight=weight), expected)
    as_float = {name: t.float() for name, t in case[0].items()}
    got = forward_and_grads(as_float, *case[1:], "compiled", out_weight=weight)
    scale = largest(expected[0])
    torch.testing.assert_close(got[0].double(), expected[0], atol=1e-5 * scale, rtol=0)
    for name in NAMES:
        grad_scale = largest(expected[1][name])
        torch.testing.assert_close(got[1][name].double(), expected[1][name], atol=1e-5 * grad_scale, rtol=0, msg=name)


@needs_build
@pytest.mark.parametrize("channels", [(3, 5), (4, 13), (16, 16)], ids=lambda c: f"k{c[0]}v{c[1]}")
# (not the query: the mark gradient q . (C g) and the torch sweep's (q^T C) . g cancel different
# infinities of an all-infinite query, so their NaN patterns may differ with or without padding)
@pytest.mark.parametrize("name", ["transition", "key", "value", "source", "mark"])
@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_gradients_keep_the_torch_sweeps_nonfinite_pattern(channels, name, bad):
    # padded rows: an infinite entry times a padding lane would be NaN, which the sums along rows
    # (C g, G v, the transition dots) would carry into every gradient
    k, v = channels
    case = batch_case(k=k, v=v, graphs=4)
    case[0][name][len(case[0][name]) // 3] = bad
    weight = torch.randn(
        case[0]["query"].shape[:2] + (v,), generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    expected = forward_and_grads(*case, "levels", out_weight=weight)
    got = forward_and_grads(*case, "compiled", out_weight=weight)
    for label, a, b in [("out", got[0], expected[0])] + [(n, got[1][n], expected[1][n]) for n in NAMES]:
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.isinf(), b.isinf()), label
        finite = torch.isfinite(b)
        torch.testing.assert_close(a[finite], b[finite], atol=1e-8, rtol=1e-8, msg=label)


@needs_build
def test_rows_are_padded_to_whole_vectors_only_where_the_row_kernels_run():
    extension = compiled.build_extension()
    assert extension.state_row_width(0, 4) == 0
    for item_size in (4, 8):
        for v in (1, 3, 8, 16, 22, 40, 64, 70, 200):
            width = extension.state_row_width(v, item_size)
            assert v <= width < 2 * v + 8 and (width == v or width % (16 // item_size) == 0)
    assert extension.state_row_width(200, 4) == 200


@needs_build
@pytest.mark.parametrize("channels", [(3, 4), (16, 16), (6, 70)], ids=lambda c: f"k{c[0]}v{c[1]}")
def test_threads_split_a_level_without_changing_a_bit(channels):
    case = batch_case("D", torch.float32, *channels)
    one = forward_and_grads(*case, "compiled")
    with torch_threads(2):
        two = forward_and_grads(*case, "compiled")
    assert_same(two, one, atol=0)


@needs_build
def test_auto_runs_the_compiled_sweep_on_the_cpu(monkeypatch):
    calls = []
    original = compiled.CompiledSweep.apply
    monkeypatch.setattr(compiled.CompiledSweep, "apply", lambda *a: calls.append(1) or original(*a))
    # random batches whose graphs are too large for the parallel form: the rule says "levels"
    num_nodes, edge_index, generator = batch_of_graphs(4, seed=3, max_nodes=400)
    line_edge_index = line_graph(edge_index, num_nodes, "P")
    inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=generator)
    forward_and_grads(inputs, edge_index, line_edge_index, "auto")
    assert calls


def test_without_a_build_it_warns_once_and_runs_the_torch_sweep(monkeypatch):
    import torch.utils.cpp_extension

    def no_compiler(*args, **kwargs):
        raise OSError("no C++ compiler found")

    monkeypatch.setattr(compiled, "_extension", None)
    monkeypatch.setattr(compiled, "_build_error", None)
    monkeypatch.setattr(torch.utils.cpp_extension, "load_inline", no_compiler)
    case = batch_case()
    with pytest.warns(RuntimeWarning, match="could not be built.*no C\\+\\+ compiler"):
        got = forward_and_grads(*case, "compiled")
    assert_same(got, forward_and_grads(*case, "levels"), atol=0)
    assert isinstance(compiled.build_error(), OSError)


@pytest.mark.parametrize("value, allowed", [("0", False), ("off", False), ("1", True), ("", True)])
def test_the_environment_can_forbid_the_build(monkeypatch, value, allowed):
    monkeypatch.setenv(compiled.COMPILE_VARIABLE, value)
    assert compiled.compile_allowed() is allowed
    if not allowed:
        assert compiled.build_extension() is None


def test_auto_backend_on_cpu_and_elsewhere(monkeypatch):
    from plstm_geometric.functional.dag import auto_backend, choose_backend
    from plstm_geometric.graph import build_plan
    from plstm_geometric.testing import chain_dag

    num_nodes, edge_index, _ = batch_of_graphs(8, seed=1, max_nodes=20)
    small = build_plan(edge_index, line_graph(edge_index, num_nodes, "P"), num_nodes)
    chain = chain_dag(1000)
    long_chain = build_plan(chain, line_graph(chain, 1000, "P"), 1000)
    assert choose_backend(small) == "parallel" and choose_backend(long_chain) == "chains"
    built = compiled.build_extension() is not None
    assert auto_backend(small, 4, 16, 16, torch.float32, "cpu") == ("compiled" if built else "parallel")
    # large states too (their buffers are reused from call to call)
    assert auto_backend(small, 4, 512, 512, torch.float32, "cpu") == ("compiled" if built else "parallel")
    assert auto_backend(long_chain, 4, 16, 16, torch.float32, "cpu") == ("compiled" if built else "chains")
    # CUDA: the Triton sweep instead of the torch level sweep where Triton is installed; the parallel form
    # and chain contraction stay
    assert auto_backend(long_chain, 4, 16, 16, torch.float32, "cuda") == "chains"
    assert auto_backend(small, 4, 16, 16, torch.float32, "cuda") == "parallel"
    # a ladder of 100 rungs with crossed links: 99 levels, too large for the parallel form, no chains
    step = torch.arange(99)
    ladder = torch.cat([torch.stack([step + a, step + 1 + b]) for a in (0, 100) for b in (0, 100)], 1)
    deep = build_plan(ladder, line_graph(ladder, 200, "P"), 200)
    assert choose_backend(deep) == "levels"
    triton = importlib.util.find_spec("triton") is not None
    assert auto_backend(deep, 4, 16, 16, torch.float32, "cuda") == ("fused" if triton else "levels")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "triton" else real_find_spec(name, *args)
    )
    assert auto_backend(deep, 4, 16, 16, torch.float32, "cuda") == "levels"
    monkeypatch.undo()
    monkeypatch.setenv(compiled.COMPILE_VARIABLE, "0")
    assert auto_backend(small, 4, 16, 16, torch.float32, "cpu") == "parallel"


@needs_build
def test_a_built_extension_is_known_as_built():
    assert compiled.is_built()


@pytest.mark.parametrize(
    "model, device, backend, builds",
    [
        ("plstm", "cpu", None, True),
        ("plstm", "cpu", "compiled", True),
        ("plstm", "cpu", "levels", False),
        ("gin", "cpu", None, False),
        ("plstm", "meta", None, False),
    ],
)
def test_training_builds_the_loops_before_the_first_epoch_and_says_so(
    monkeypatch, capsys, model, device, backend, builds
):
    from types import SimpleNamespace

    from plstm_geometric.train.graph import build_sweep_loops

    calls = []
    monkeypatch.setattr(compiled, "is_built", lambda: False)
    monkeypatch.setattr(compiled, "build_extension", lambda: calls.append(1))
    args = SimpleNamespace(model=model, backend=backend)
    processes = SimpleNamespace(device=torch.device(device), main=True)
    build_sweep_loops(args, processes)
    assert bool(calls) is builds
    assert ("building the C++ level sweep" in capsys.readouterr().out) is builds


@needs_build
def test_a_second_backward_pass_through_the_same_graph_recomputes_the_states():
    # the first backward pass writes gradient states over the saved cell states
    inputs, edge_index, line_edge_index = batch_case()
    expected = forward_and_grads(inputs, edge_index, line_edge_index, "levels")[1]
    leaves = {name: t.detach().clone().requires_grad_() for name, t in inputs.items()}
    out = plstm_dag(**leaves, edge_index=edge_index, line_edge_index=line_edge_index, backend="compiled")
    for _ in range(2):
        grads = torch.autograd.grad(out.sum(), list(leaves.values()), retain_graph=True)
        for name, grad in zip(leaves, grads):
            torch.testing.assert_close(grad, expected[name], atol=1e-10, rtol=0, msg=name)


@needs_build
def test_the_workspace_lends_a_swept_buffer_to_the_next_sweep(monkeypatch):
    monkeypatch.setattr(workspace, "WORKSPACE", workspace.StateWorkspace())
    monkeypatch.setattr(compiled, "WORKSPACE", workspace.WORKSPACE)
    case = batch_case(dtype=torch.float32)
    first = forward_and_grads(*case, "compiled")
    pooled = workspace.WORKSPACE.pooled_bytes()
    assert pooled > 0  # the states of the first sweep, returned after its backward pass
    taken = []
    original_take = workspace.WORKSPACE.take
    monkeypatch.setattr(workspace.WORKSPACE, "take", lambda *a: taken.append(original_take(*a)) or taken[-1])
    second = forward_and_grads(*case, "compiled")
    assert taken and workspace.WORKSPACE.pooled_bytes() == pooled  # the same buffer went out and came back
    assert_same(second, first, atol=0)
    with torch.no_grad():  # nothing saved: the buffer comes back at once
        plstm_dag(**case[0], edge_index=case[1], line_edge_index=case[2], backend="compiled")
    assert workspace.WORKSPACE.pooled_bytes() == pooled


def test_the_workspace_limits(monkeypatch):
    pool = workspace.StateWorkspace()
    monkeypatch.setenv(workspace.WORKSPACE_MIB_VARIABLE, "0")
    buffer = pool.take((10, 2), torch.float32)
    assert buffer.untyped_storage().nbytes() == 80  # not rounded up: it will not be kept
    pool.give(buffer)
    assert pool.pooled_bytes() == 0
    monkeypatch.setenv(workspace.WORKSPACE_MIB_VARIABLE, "1")
    for _ in range(workspace.MAX_BUFFERS + 3):
        pool.give(torch.empty(1000))
    assert pool.pooled_bytes() == workspace.MAX_BUFFERS * 4000
    pool.give(torch.empty(300_000))  # 1.2 MB: over the limit with the others, the smallest go first
    assert pool.pooled_bytes() <= 1 << 20
    pool.release()
    assert pool.pooled_bytes() == 0
    for value in ("lots", "-1", "inf"):
        monkeypatch.setenv(workspace.WORKSPACE_MIB_VARIABLE, value)
        with pytest.raises(ValueError, match=workspace.WORKSPACE_MIB_VARIABLE):
            pool.take((2,), torch.float32)


@pytest.mark.parametrize("numel", [1, 7, 8, 9, 100, 1000, 1024, 1025, 123_456_789])
def test_workspace_buffers_round_up_by_at_most_an_eighth(numel):
    rounded = workspace.rounded_size(numel)
    assert numel <= rounded <= numel * 1.125


@needs_build
def test_queries_keys_and_values_may_be_views_of_one_projection():
    # PLSTMConv hands the op column slices of one [N, 3 H K + gates] projection
    inputs, edge_index, line_edge_index = batch_case()
    query, key, value = inputs["query"], inputs["key"], inputs["value"]
    num_nodes, heads, channels = query.shape
    results = {}
    for backend in ("levels", "compiled"):
        projection = torch.cat([t.flatten(1) for t in (query, key, value)] + [query[:, :, :1].flatten(1)], 1)
        projection = projection.detach().requires_grad_()
        width = heads * channels
        views = [projection[:, i * width : (i + 1) * width].view(num_nodes, heads, channels) for i in range(3)]
        assert not views[1].is_contiguous()
        gates = {name: inputs[name] for name in ("source", "transition", "mark", "direct")}
        out = plstm_dag(*views, **gates, edge_index=edge_index, line_edge_index=line_edge_index, backend=backend)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results[backend] = (out, projection.grad)
    torch.testing.assert_close(results["compiled"], results["levels"], atol=1e-10, rtol=0)
