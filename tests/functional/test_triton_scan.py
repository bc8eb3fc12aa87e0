"""The Triton backend of linear_recurrence. Without a GPU the kernels run in Triton's CPU interpreter
(tests/conftest.py sets TRITON_INTERPRET=1), which is slow: the sizes are small."""

import math
import sys

import pytest
import torch

pytest.importorskip("triton")

import plstm_geometric.functional.scan.fused as triton_scan_module  # noqa: E402
from plstm_geometric.functional import linear_recurrence  # noqa: E402
from plstm_geometric.functional.scan.fused import scan_schedule, triton_scan  # noqa: E402
from plstm_geometric.functional.scan.naive import linear_recurrence_naive as naive_recurrence  # noqa: E402
from plstm_geometric.testing import random_scan_inputs as random_inputs  # noqa: E402

LENGTHS = [1, 7, 100, 1000]


@pytest.fixture(params=["sequential", "chunked"])
def schedule(request, monkeypatch):
    """Both schedules of scan_schedule's rule on the test sizes (B * ceil(D / 64) = 2 programs)."""
    if request.param == "sequential":
        monkeypatch.setattr(triton_scan_module, "TARGET_PROGRAMS", 1)
    else:
        # 64-step tiles for D <= 4 and chunks of one tile: T = 100 has 2 chunks, T = 1000 has 16.
        monkeypatch.setattr(triton_scan_module, "TILE_ELEMENTS", 256)
        monkeypatch.setattr(triton_scan_module, "MIN_CHUNK_TILES", 1)
    return request.param


def assert_schedule(name, batch_size, length, channels):
    num_chunks = scan_schedule(batch_size, length, channels).num_chunks
    if name == "chunked" and length > 64:
        assert num_chunks > 1
    else:
        assert num_chunks == 1


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("reverse", [False, True])
def test_forward_matches_torch_and_loop_float64(schedule, length, reverse):
    decay, impulse, initial_state = random_inputs(2, length, 3)
    assert_schedule(schedule, 2, length, 3)
    out = linear_recurrence(decay, impulse, initial_state, reverse=reverse, backend="triton")
    assert out.shape == (2, length, 3) and out.dtype == torch.float64
    torch.testing.assert_close(out, naive_recurrence(decay, impulse, initial_state, reverse), rtol=0, atol=1e-10)
    torch.testing.assert_close(
        out, linear_recurrence(decay, impulse, initial_state, reverse, backend="torch"), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("length", [1, 100])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_match_torch_and_loop_float64(schedule, length, reverse):
    decay, impulse, initial_state = random_inputs(2, length, 3)
    decay[:, ::5] = 0.0
    grad_out = torch.randn(2, length, 3, dtype=torch.float64)
    grads = {}
    for name, fn in [
        ("triton", lambda *x: linear_recurrence(*x, reverse=reverse, backend="triton")),
        ("torch", lambda *x: linear_recurrence(*x, reverse=reverse, backend="torch")),
        ("loop", lambda *x: naive_recurrence(*x, reverse=reverse)),
    ]:
        inputs = [x.clone().requires_grad_() for x in (decay, impulse, initial_state)]
        (fn(*inputs) * grad_out).sum().backward()
        grads[name] = [x.grad for x in inputs]
    for reference in ("torch", "loop"):
        for grad, expected in zip(grads["triton"], grads[reference]):
            torch.testing.assert_close(grad, expected, rtol=0, atol=1e-10)


def test_recursive_carry_scan(monkeypatch):
    # 4-step tiles and chunks: T = 100 has 25 chunks, whose carry scan is chunked again (7, then 2).
    monkeypatch.setattr(triton_scan_module, "TILE_ELEMENTS", 16)
    monkeypatch.setattr(triton_scan_module, "MIN_CHUNK_TILES", 1)
    assert [scan_schedule(1, length, 4).num_chunks for length in (100, 25, 7, 2)] == [25, 7, 2, 1]
    decay, impulse, initial_state = random_inputs(1, 100, 4)
    for reverse in (False, True):
        torch.testing.assert_close(
            linear_recurrence(decay, impulse, initial_state, reverse, backend="triton"),
            naive_recurrence(decay, impulse, initial_state, reverse),
            rtol=0,
            atol=1e-10,
        )


def test_schedule_rule():
    # Enough batch rows and channel blocks: one chunk. B = 1, D = 32, T = 1M: chunks up to 1024 programs.
    assert scan_schedule(64, 10**6, 1024).num_chunks == 1
    long_single = scan_schedule(1, 2**20, 32)
    assert long_single.num_chunks == 1024 and long_single.block_channels == 32
    assert long_single.chunk_length % long_single.block_time == 0
    assert long_single.num_chunks * long_single.chunk_length >= 2**20
    # Short sequences stay sequential however few programs they have; tiles never exceed the sequence.
    assert scan_schedule(1, 100, 32) == (64, 32, 1, 128)


def test_float32_and_non_contiguous_initial_state():
    decay, impulse, initial_state = random_inputs(2, 200, 4, dtype=torch.float32)
    initial_state = initial_state.t().contiguous().t()
    assert not initial_state.is_contiguous()
    for reverse in (False, True):
        out = linear_recurrence(decay, impulse, initial_state, reverse, backend="triton")
        assert out.dtype == torch.float32
        expected = naive_recurrence(decay.double(), impulse.double(), initial_state.double(), reverse)
        torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-5)


def test_bfloat16_accumulates_in_float32():
    decay, impulse, initial_state = (x.bfloat16() for x in random_inputs(2, 200, 4, decay_range=(0.0, 0.95)))
    out = linear_recurrence(decay, impulse, initial_state, backend="triton")
    assert out.dtype == torch.bfloat16
    # The same float32 accumulation as the torch backend: equal up to reassociation, then one rounding.
    expected = linear_recurrence(decay, impulse, initial_state, backend="torch")
    assert (out.float() - expected.float()).abs().max().item() <= 2.0**-8 * expected.float().abs().max().item()
    decay.requires_grad_()
    linear_recurrence(decay, impulse, backend="triton").sum().backward()
    assert decay.grad.dtype == torch.bfloat16 and torch.isfinite(decay.grad.float()).all()


def test_nan_propagates_forward_in_time(monkeypatch):
    monkeypatch.setattr(triton_scan_module, "TILE_ELEMENTS", 32)  # 16-step tiles: the NaNs cross tiles
    decay, impulse, initial_state = random_inputs(1, 100, 2, decay_range=(0.1, 0.9))
    impulse[0, 40, 0] = math.nan
    decay[0, 70, 1] = math.nan
    out = linear_recurrence(decay, impulse, initial_state, backend="triton")
    assert torch.equal(torch.isnan(out), torch.isnan(naive_recurrence(decay, impulse, initial_state)))
    assert not torch.isnan(out[0, :40, 0]).any() and torch.isnan(out[0, 40:, 0]).all()
    out_reverse = linear_recurrence(decay, impulse, reverse=True, backend="triton")
    torch.testing.assert_close(
        out_reverse, naive_recurrence(decay, impulse, reverse=True), rtol=0, atol=1e-10, equal_nan=True
    )
    assert torch.isnan(out_reverse[0, :41, 0]).all() and not torch.isnan(out_reverse[0, 41:, 0]).any()


def test_bad_backend_name():
    decay, impulse, _ = random_inputs(1, 4, 2)
    with pytest.raises(ValueError, match="backend"):
        linear_recurrence(decay, impulse, backend="cuda")


def test_missing_triton_is_a_clear_error(monkeypatch):
    # The backend module is imported afresh, and None in sys.modules makes its `import triton` fail as if
    # triton were not installed.
    monkeypatch.delitem(sys.modules, triton_scan_module.__name__)
    monkeypatch.setitem(sys.modules, "triton", None)
    decay, impulse, _ = random_inputs(1, 4, 2)
    with pytest.raises(ImportError, match="pip install triton"):
        linear_recurrence(decay, impulse, backend="triton")
    linear_recurrence(decay, impulse, backend="torch")


def test_cpu_tensors_need_the_interpreter(monkeypatch):
    monkeypatch.setattr(triton_scan_module, "INTERPRETED", False)
    decay, impulse, _ = random_inputs(1, 4, 2)
    with pytest.raises(ValueError, match="CUDA"):
        linear_recurrence(decay, impulse, backend="triton")


def test_views_must_share_strides():
    decay, impulse, initial_state = random_inputs(2, 6, 3)
    out = torch.empty(2, 3, 6, dtype=torch.float64).transpose(1, 2)
    with pytest.raises(ValueError, match="strides"):
        triton_scan(decay, impulse, initial_state, False, out)
    # Size-one dimensions may carry any stride: only the others address elements.
    row = torch.empty(18, dtype=torch.float64).as_strided((1, 6, 3), (5, 3, 1))
    triton_scan(decay[:1], impulse[:1], initial_state[:1], False, row)
    torch.testing.assert_close(row, naive_recurrence(decay[:1], impulse[:1], initial_state[:1]), rtol=0, atol=1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("batch_size, length, channels", [(3, 100, 48), (2, 5000, 48), (1, 40000, 1)])
def test_cuda_float32_matches_torch_backend(batch_size, length, channels):
    # The first shape is sequential (4 tiles or fewer), the other two chunked.
    assert (scan_schedule(batch_size, length, channels).num_chunks > 1) == (length > 100)
    inputs = [x.cuda() for x in random_inputs(batch_size, length, channels, dtype=torch.float32)]
    for reverse in (False, True):
        outs, grads = [], []
        for backend in ("triton", "torch"):
            leaves = [x.clone().requires_grad_() for x in inputs]
            out = linear_recurrence(*leaves, reverse=reverse, backend=backend)
            (out * out).sum().backward()
            outs.append(out)
            grads.append([x.grad for x in leaves])
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-4)
        for grad, expected in zip(*grads):
            torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-4)


def test_auto_runs_triton_on_cuda_and_torch_elsewhere(monkeypatch):
    from plstm_geometric.functional.scan import _scan_function
    from plstm_geometric.functional.scan.chunked import chunked_scan

    assert _scan_function("auto", torch.device("cpu")) is chunked_scan
    assert _scan_function("auto", torch.device("cuda")) is triton_scan
    # without triton: the torch scan on CUDA too
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    assert _scan_function("auto", torch.device("cuda")) is chunked_scan
