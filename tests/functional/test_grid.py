import pytest
import torch

from plstm_geometric import functional
from plstm_geometric.functional.grid import GATE_NAMES, GRID_ORIENTATIONS, GridGates, choose_backend, flip_grid
from plstm_geometric.functional.grid.chunkwise import default_chunk_size
from plstm_geometric.functional.grid.naive import plstm_grid_naive
from plstm_geometric.testing import golden_path

NAMES = ("query", "key", "value") + GATE_NAMES
BACKENDS = ("wavefront", "chunkwise", "dag")


def with_flat_gates(op):
    """``op`` called with the tensors of the tests' flat dicts (or positionally, in ``NAMES`` order): the
    nine gates are bundled into one :class:`GridGates` by name."""

    def call(*tensors, **kwargs):
        kwargs.update(zip(NAMES, tensors))
        gates = GridGates(**{name: kwargs.pop(name) for name in GATE_NAMES})
        return op(kwargs.pop("query"), kwargs.pop("key"), kwargs.pop("value"), gates, **kwargs)

    return call


plstm_grid = with_flat_gates(functional.plstm_grid)
plstm_grid_oriented = with_flat_gates(functional.plstm_grid_oriented)
plstm_grid_orientations = with_flat_gates(functional.plstm_grid_orientations)
naive_plstm_grid = with_flat_gates(plstm_grid_naive)


def random_inputs(B=2, X=3, Y=4, H=2, K=3, V=2, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = {name: torch.randn(B, X, Y, H, K, generator=generator, dtype=dtype) for name in ("query", "key")}
    inputs["value"] = torch.randn(B, X, Y, H, V, generator=generator, dtype=dtype)
    for name in GATE_NAMES:
        # Signed gates: the op must not rely on any constraint the layers impose.
        inputs[name] = torch.rand(B, X, Y, H, generator=generator, dtype=dtype) * 1.6 - 0.6
    return inputs


def forward_and_grads(function, inputs, out_weight, **kwargs):
    leaves = {name: tensor.clone().requires_grad_() for name, tensor in inputs.items()}
    out = function(**leaves, **kwargs)
    (out * out_weight).sum().backward()
    # An input that cannot reach the output (e.g. source_r of a one-column grid) gets no grad at all.
    return out.detach(), {
        name: torch.zeros_like(leaf) if leaf.grad is None else leaf.grad for name, leaf in leaves.items()
    }


def assert_same(result, expected, atol=1e-10):
    out, grads = result
    torch.testing.assert_close(out, expected[0], atol=atol, rtol=0)
    for name in NAMES:
        torch.testing.assert_close(grads[name], expected[1][name], atol=atol, rtol=0, msg=f"grad of {name}")


@pytest.mark.parametrize("recompute_states", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_forward_and_gradients(backend, recompute_states):
    for case in torch.load(golden_path("grid_public.pt"), weights_only=True):
        result = forward_and_grads(
            plstm_grid,
            {name: case[name] for name in NAMES},
            case["out_weight"],
            backend=backend,
            recompute_states=recompute_states,
        )
        assert_same(result, (case["out"], case["grads"]))


def test_golden_matches_the_naive_reference():
    for case in torch.load(golden_path("grid_public.pt"), weights_only=True):
        out = naive_plstm_grid(**{name: case[name] for name in NAMES})
        torch.testing.assert_close(out, case["out"], atol=1e-10, rtol=0, msg=case["name"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 1, 5), (1, 4, 1), (2, 5, 2), (1, 1, 1)])
def test_matches_naive_reference_forward_and_backward(backend, shape):
    B, X, Y = shape
    inputs = random_inputs(B=B, X=X, Y=Y, seed=X * 10 + Y)
    out_weight = torch.randn(B, X, Y, 2, 2, dtype=torch.float64)
    expected = forward_and_grads(naive_plstm_grid, inputs, out_weight)
    assert_same(forward_and_grads(plstm_grid, inputs, out_weight, backend=backend), expected)


@pytest.mark.parametrize("recompute_states", [False, True])
def test_backends_agree_on_a_grid_beyond_the_parallel_solve(recompute_states):
    # 12 x 11 has more edges than the dag's dense per-graph solve takes: the level sweep runs.
    inputs = random_inputs(B=2, X=12, Y=11, H=2, K=4, V=3, seed=3)
    out_weight = torch.randn(2, 12, 11, 2, 3, dtype=torch.float64)
    expected = forward_and_grads(plstm_grid, inputs, out_weight, backend="dag")
    result = forward_and_grads(plstm_grid, inputs, out_weight, backend="wavefront", recompute_states=recompute_states)
    assert_same(result, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck(backend):
    inputs = random_inputs(B=1, X=2, Y=3, H=1, K=2, V=2, seed=5)
    leaves = tuple(inputs[name].requires_grad_() for name in NAMES)
    assert torch.autograd.gradcheck(lambda *args: plstm_grid(*args, backend=backend), leaves)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_equals_per_image(backend):
    inputs = random_inputs(B=3, X=4, Y=3, seed=7)
    batched = plstm_grid(**inputs, backend=backend)
    for b in range(3):
        single = plstm_grid(**{name: t[b : b + 1] for name, t in inputs.items()}, backend=backend)
        torch.testing.assert_close(batched[b : b + 1], single, atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", ["wavefront", "chunkwise"])
def test_gates_of_missing_edges_get_zero_gradients(backend):
    inputs = random_inputs(B=1, X=4, Y=5, seed=2)
    chunking = {"chunk_size": 2} if backend == "chunkwise" else {}
    _, grads = forward_and_grads(
        plstm_grid, inputs, torch.ones(1, 4, 5, 2, 2, dtype=torch.float64), backend=backend, **chunking
    )
    # Edges leaving the grid, and transitions / marks of incoming edges that do not exist.
    for name, index in (
        ("source_r", (slice(None), -1)),
        ("source_d", (slice(None), slice(None), -1)),
        ("transition_rr", (slice(None), 0)),
        ("transition_rd", (slice(None), 0)),
        ("transition_dd", (slice(None), slice(None), 0)),
        ("transition_dr", (slice(None), slice(None), 0)),
        ("mark_r", (slice(None), 0)),
        ("mark_d", (slice(None), slice(None), 0)),
    ):
        assert grads[name][index].abs().max() == 0, name
        assert grads[name].abs().max() > 0, name


@pytest.mark.parametrize("backend", ["wavefront", "chunkwise"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_keeps_the_dtype_and_stays_close(dtype, backend):
    inputs = random_inputs(B=2, X=5, Y=6, seed=4)
    expected = plstm_grid(**inputs)
    chunking = {"chunk_size": 2} if backend == "chunkwise" else {}
    out = plstm_grid(**{name: t.to(dtype) for name, t in inputs.items()}, backend=backend, **chunking)
    assert out.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 0.1
    torch.testing.assert_close(out.double(), expected, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("recompute_states", [False, True])
@pytest.mark.parametrize(
    "shape,chunk_size",
    [
        ((2, 8, 8), 4),
        ((1, 7, 5), (3, 2)),
        ((2, 9, 10), (4, 3)),
        ((1, 6, 7), 100),
        ((1, 4, 4), 1),
        ((1, 1, 6), 4),
        ((1, 6, 1), (1, 4)),
    ],
)
def test_chunkwise_equals_the_wavefront_for_any_chunk_size(shape, chunk_size, recompute_states):
    # Chunks that tile the grid, that need padding, rectangular ones, one chunk, single-cell chunks.
    B, X, Y = shape
    inputs = random_inputs(B=B, X=X, Y=Y, H=2, K=3, V=2, seed=X + Y)
    out_weight = torch.randn(B, X, Y, 2, 2, dtype=torch.float64)
    expected = forward_and_grads(plstm_grid, inputs, out_weight, backend="wavefront")
    result = forward_and_grads(
        plstm_grid, inputs, out_weight, backend="chunkwise", chunk_size=chunk_size, recompute_states=recompute_states
    )
    assert_same(result, expected)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["wavefront", "chunkwise"])
def test_cuda_float32_matches_cpu_float64(backend):
    inputs = random_inputs(B=2, X=20, Y=17, H=2, K=16, V=16, seed=6)
    out_weight = torch.randn(2, 20, 17, 2, 16, dtype=torch.float64)
    expected = forward_and_grads(plstm_grid, inputs, out_weight, backend="dag")
    on_gpu = {name: tensor.float().cuda() for name, tensor in inputs.items()}
    out, grads = forward_and_grads(plstm_grid, on_gpu, out_weight.float().cuda(), backend=backend)
    torch.testing.assert_close(out.cpu().double(), expected[0], atol=1e-4, rtol=1e-4)
    for name in NAMES:
        torch.testing.assert_close(grads[name].cpu().double(), expected[1][name], atol=1e-3, rtol=1e-3)


def saved_bytes(backend, inputs, **kwargs):
    """Bytes autograd keeps between forward and backward for one call."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    leaves = {name: tensor.clone().requires_grad_() for name, tensor in inputs.items()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        plstm_grid(**leaves, backend=backend, **kwargs)
    return sum(storages.values())


def test_chunkwise_keeps_less_for_backward_than_the_wavefront():
    # The wavefront keeps all 2 X Y edge states (2 K V numbers per cell); 8 x 8 chunks keep the 16 states
    # entering each chunk (K V / 4 per cell) plus unit weights that do not grow with K V.
    inputs = random_inputs(B=1, X=16, Y=16, H=1, K=64, V=64, dtype=torch.float32, seed=0)
    wavefront = saved_bytes("wavefront", inputs)
    assert saved_bytes("chunkwise", inputs, chunk_size=8) < 0.25 * wavefront
    # Recomputing keeps only the inputs.
    assert saved_bytes("chunkwise", inputs, chunk_size=8, recompute_states=True) < 0.05 * wavefront


def test_default_chunks_are_the_whole_small_grid_else_near_the_fourth_root_of_the_state_size():
    assert default_chunk_size(64, 64, 12, 12) == (12, 12)
    assert default_chunk_size(16, 16, 8, 8) == (8, 8)
    assert default_chunk_size(64, 64, 24, 24) == (8, 8)
    assert default_chunk_size(16, 16, 24, 24) == (4, 4)
    assert default_chunk_size(64, 64, 18, 18) == (9, 9)  # 6 and 9 tile 18 (8 would pad it to 24); 9 is nearer
    assert default_chunk_size(64, 64, 14, 30) == (7, 10)
    assert default_chunk_size(2, 2, 13, 13) == (2, 2)  # sides of at least 2; 2 pads 13 to 14, 3 to 15


def test_auto_picks_by_grid_batch_and_state_size():
    assert choose_backend(1, 8, 8, 16, 16) == "dag"
    assert choose_backend(16, 8, 8, 16, 16) == "chunkwise"
    assert choose_backend(8, 14, 14, 16, 16) == "wavefront"
    assert choose_backend(8, 24, 24, 16, 16) == "chunkwise"
    assert choose_backend(1, 14, 14, 32, 32) == "chunkwise"
    assert choose_backend(8, 24, 24, 8, 8) == "wavefront"
    inputs = random_inputs(B=1, X=9, Y=9, seed=1)
    torch.testing.assert_close(plstm_grid(**inputs), plstm_grid(**inputs, backend="wavefront"), atol=1e-12, rtol=0)


@pytest.mark.parametrize("flip_x,flip_y", GRID_ORIENTATIONS)
def test_oriented_sweep_is_the_sweep_of_the_flipped_grid(flip_x, flip_y):
    inputs = random_inputs(B=1, X=3, Y=4, seed=8)
    out = plstm_grid_oriented(**inputs, flip_x=flip_x, flip_y=flip_y)
    flipped = naive_plstm_grid(**{name: flip_grid(t, flip_x, flip_y) for name, t in inputs.items()})
    torch.testing.assert_close(out, flip_grid(flipped, flip_x, flip_y), atol=1e-12, rtol=0)


def test_flipped_sweep_runs_towards_the_first_column():
    inputs = random_inputs(B=1, X=4, Y=3, seed=8)
    silenced = dict(inputs, source_r=inputs["source_r"].clone())
    silenced["source_r"][:, 0] = 0
    # Swept from x = X - 1, the r-edges of column 0 lead out of the grid: their sources feed nothing.
    torch.testing.assert_close(
        plstm_grid_oriented(**silenced, flip_x=True), plstm_grid_oriented(**inputs, flip_x=True), atol=1e-12, rtol=0
    )
    # Swept from x = 0 they feed every later column.
    changed = plstm_grid_oriented(**silenced) - plstm_grid_oriented(**inputs)
    assert changed[:, 0].abs().max() == 0 and changed[:, 1:].abs().amin(dim=(0, 2, 3, 4)).gt(0).all()


def test_orientations_stack_the_single_sweeps():
    inputs = random_inputs(B=2, X=3, Y=5, seed=9)
    generator = torch.Generator().manual_seed(1)
    gates = {name: torch.rand(4, 2, 3, 5, 2, generator=generator, dtype=torch.float64) for name in GATE_NAMES}
    shared = {name: inputs[name] for name in ("query", "key", "value")}
    per_orientation = plstm_grid_orientations(**shared, **gates, reduce="none")
    assert per_orientation.shape == (4, 2, 3, 5, 2, 2)
    for o, (flip_x, flip_y) in enumerate(GRID_ORIENTATIONS):
        single = plstm_grid_oriented(
            **shared, **{name: gate[o] for name, gate in gates.items()}, flip_x=flip_x, flip_y=flip_y
        )
        torch.testing.assert_close(per_orientation[o], single, atol=1e-12, rtol=0)
    torch.testing.assert_close(plstm_grid_orientations(**shared, **gates), per_orientation.mean(0))
    torch.testing.assert_close(plstm_grid_orientations(**shared, **gates, reduce="sum"), per_orientation.sum(0))
    two = plstm_grid_orientations(
        **shared,
        **{name: gate[[0, 3]] for name, gate in gates.items()},
        orientations=[GRID_ORIENTATIONS[0], GRID_ORIENTATIONS[3]],
        reduce="none",
    )
    torch.testing.assert_close(two, per_orientation[[0, 3]])


def test_bad_inputs_raise_with_the_argument_name():
    inputs = random_inputs()
    with pytest.raises(ValueError, match="query"):
        plstm_grid(**dict(inputs, query=inputs["query"][0]))
    with pytest.raises(ValueError, match="key"):
        plstm_grid(**dict(inputs, key=inputs["key"][..., :2]))
    with pytest.raises(ValueError, match="value"):
        plstm_grid(**dict(inputs, value=inputs["value"][:, :2]))
    with pytest.raises(ValueError, match="transition_rd"):
        plstm_grid(**dict(inputs, transition_rd=inputs["transition_rd"][..., :1]))
    with pytest.raises(TypeError, match="mark_d"):
        plstm_grid(**dict(inputs, mark_d=inputs["mark_d"].float()))
    with pytest.raises(TypeError, match="direct"):
        plstm_grid(**dict(inputs, direct=inputs["direct"].tolist()))
    with pytest.raises(TypeError, match="source_r"):
        plstm_grid(**dict(inputs, source_r=inputs["source_r"].long()))
    with pytest.raises(ValueError, match="backend"):
        plstm_grid(**inputs, backend="levels")
    with pytest.raises(TypeError, match="gates: expected a GridGates, got tuple"):
        functional.plstm_grid(
            inputs["query"], inputs["key"], inputs["value"], tuple(inputs[name] for name in GATE_NAMES)
        )
    for chunk_size in (0, (2,), (2, -1), 1.5, True, "8"):
        with pytest.raises(ValueError, match="chunk_size"):
            plstm_grid(**inputs, backend="chunkwise", chunk_size=chunk_size)
    gates = {name: inputs[name].unsqueeze(0) for name in GATE_NAMES}
    shared = {name: inputs[name] for name in ("query", "key", "value")}
    with pytest.raises(ValueError, match="source_d"):
        plstm_grid_orientations(
            **shared, **dict(gates, source_d=inputs["source_d"]), orientations=GRID_ORIENTATIONS[:1]
        )
    with pytest.raises(ValueError, match="orientations"):
        plstm_grid_orientations(**shared, **gates, orientations=[(0, 1, 2)])
    with pytest.raises(ValueError, match="reduce"):
        plstm_grid_orientations(**shared, **gates, orientations=GRID_ORIENTATIONS[:1], reduce="max")


@pytest.mark.parametrize("backend", ["wavefront", "dag"])
def test_chunk_size_is_refused_by_backends_that_ignore_it(backend):
    inputs = random_inputs()
    with pytest.raises(ValueError, match=f"chunk_size: expected None with backend='{backend}'"):
        plstm_grid(**inputs, backend=backend, chunk_size=2)


def test_chunk_size_with_auto_selects_the_chunkwise_form():
    inputs = random_inputs(B=1, X=4, Y=4)
    out = plstm_grid(**inputs, chunk_size=2)
    torch.testing.assert_close(out, plstm_grid(**inputs, backend="chunkwise", chunk_size=2), atol=0, rtol=0)
    torch.testing.assert_close(out, naive_plstm_grid(**inputs), atol=1e-10, rtol=0)


def test_recompute_states_must_be_a_bool():
    with pytest.raises(TypeError, match="recompute_states: expected a bool"):
        plstm_grid(**random_inputs(), recompute_states=1)
