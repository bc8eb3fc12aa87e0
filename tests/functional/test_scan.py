import math

import pytest
import torch
from torch.autograd import gradcheck

import plstm_geometric.functional.scan.chunked as chunked_module
from plstm_geometric.functional import linear_recurrence
from plstm_geometric.functional.scan.naive import linear_recurrence_naive as naive_recurrence
from plstm_geometric.testing import random_scan_inputs as random_inputs

# Lengths around the chunk size and its powers (8, 64, 512), primes, T = 1.
LENGTHS = [1, 2, 7, 8, 9, 13, 63, 64, 65, 97, 511, 512, 513, 1009, 4099]


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_naive_loop_float64(length, reverse):
    decay, impulse, initial_state = random_inputs(3, length, 5)
    for state in (None, initial_state):
        expected = naive_recurrence(decay, impulse, state, reverse)
        out = linear_recurrence(decay, impulse, state, reverse=reverse)
        assert out.shape == (3, length, 5) and out.dtype == torch.float64
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("chunk_size", [2, 3, 16])
def test_other_chunk_sizes(monkeypatch, chunk_size):
    monkeypatch.setattr(chunked_module, "CHUNK_SIZE", chunk_size)
    decay, impulse, initial_state = random_inputs(2, 101, 3)
    for reverse in (False, True):
        torch.testing.assert_close(
            linear_recurrence(decay, impulse, initial_state, reverse),
            naive_recurrence(decay, impulse, initial_state, reverse),
            rtol=0,
            atol=1e-10,
        )


def test_zero_and_negative_decays():
    decay, impulse, initial_state = random_inputs(2, 300, 4, decay_range=(-1.5, 0.0))
    decay[:, ::7] = 0.0  # a zero decay erases the past exactly: no log space, no division
    decay[:, 3::11] = -1.0
    out = linear_recurrence(decay, impulse, initial_state)
    torch.testing.assert_close(out, naive_recurrence(decay, impulse, initial_state), rtol=0, atol=1e-10)
    # After a zero decay the state is exactly the impulse.
    assert torch.equal(out[:, 7], impulse[:, 7])
    # Decays of magnitude > 1 grow geometrically, still exactly as the loop does.
    decay = torch.full((1, 200, 2), -1.1, dtype=torch.float64)
    impulse = torch.ones(1, 200, 2, dtype=torch.float64)
    torch.testing.assert_close(linear_recurrence(decay, impulse), naive_recurrence(decay, impulse), rtol=1e-12, atol=0)


def test_non_contiguous_inputs():
    decay, impulse, initial_state = random_inputs(4, 50, 6)
    decay_t = decay.transpose(0, 2).contiguous().transpose(0, 2)
    impulse_t = impulse[:, :, :].transpose(0, 2).contiguous().transpose(0, 2)
    assert not decay_t.is_contiguous()
    torch.testing.assert_close(
        linear_recurrence(decay_t, impulse_t, initial_state),
        naive_recurrence(decay, impulse, initial_state),
        rtol=0,
        atol=1e-10,
    )


@pytest.mark.parametrize("length", [1, 2, 9, 20])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck(length, reverse):
    decay, impulse, initial_state = random_inputs(2, length, 3)
    inputs = tuple(x.requires_grad_() for x in (decay, impulse, initial_state))
    assert gradcheck(lambda a, b, h: linear_recurrence(a, b, h, reverse=reverse), inputs)
    assert gradcheck(lambda a, b: linear_recurrence(a, b, reverse=reverse), inputs[:2])


def test_gradients_match_autograd_of_naive_loop():
    decay, impulse, initial_state = random_inputs(2, 150, 4)
    decay[:, ::5] = 0.0
    grad_out = torch.randn(2, 150, 4, dtype=torch.float64)
    for reverse in (False, True):
        inputs = [x.clone().requires_grad_() for x in (decay, impulse, initial_state)]
        reference = [x.clone().requires_grad_() for x in (decay, impulse, initial_state)]
        (linear_recurrence(*inputs, reverse=reverse) * grad_out).sum().backward()
        (naive_recurrence(*reference, reverse=reverse) * grad_out).sum().backward()
        for x, y in zip(inputs, reference):
            torch.testing.assert_close(x.grad, y.grad, rtol=0, atol=1e-10)


def test_gradient_only_for_some_inputs():
    decay, impulse, _ = random_inputs(2, 30, 3)
    impulse.requires_grad_()
    linear_recurrence(decay, impulse).sum().backward()
    assert impulse.grad is not None and decay.grad is None


@pytest.mark.parametrize("dtype, unit_roundoff", [(torch.bfloat16, 2.0**-8), (torch.float16, 2.0**-11)])
def test_half_precision_close_to_float32(dtype, unit_roundoff):
    # The scan accumulates in float32. On the same (rounded) inputs the only error is the final rounding
    # of h: at most one unit roundoff u of max |h|. Against the unrounded float32 inputs, the input
    # rounding (u per entry) also enters; with decays <= 0.95 (memory ~20 steps, errors of random sign)
    # it stays within a few u: we allow 8 u (bfloat16: 3.1 %, float16: 0.4 % of max |h|).
    decay, impulse, initial_state = random_inputs(2, 777, 8, dtype=torch.float32, decay_range=(0.0, 0.95))
    decay_h, impulse_h, initial_state_h = (x.to(dtype) for x in (decay, impulse, initial_state))
    out = linear_recurrence(decay_h, impulse_h, initial_state_h)
    assert out.dtype == dtype
    same_inputs = linear_recurrence(decay_h.float(), impulse_h.float(), initial_state_h.float())
    scale = same_inputs.abs().max().item()
    assert (out.float() - same_inputs).abs().max().item() <= unit_roundoff * scale
    reference = linear_recurrence(decay, impulse, initial_state)
    assert (out.float() - reference).abs().max().item() <= 8 * unit_roundoff * scale

    decay_h.requires_grad_()
    impulse_h.requires_grad_()
    linear_recurrence(decay_h, impulse_h).sum().backward()
    assert decay_h.grad.dtype == dtype and impulse_h.grad.dtype == dtype
    assert torch.isfinite(decay_h.grad.float()).all()


def test_nan_propagates_forward_in_time():
    decay, impulse, initial_state = random_inputs(1, 100, 2, decay_range=(0.1, 0.9))
    impulse[0, 40, 0] = math.nan
    decay[0, 70, 1] = math.nan
    out = linear_recurrence(decay, impulse, initial_state)
    expected = naive_recurrence(decay, impulse, initial_state)
    assert torch.equal(torch.isnan(out), torch.isnan(expected))
    assert not torch.isnan(out[0, :40, 0]).any() and torch.isnan(out[0, 40:, 0]).all()
    assert not torch.isnan(out[0, :70, 1]).any() and torch.isnan(out[0, 70:, 1]).all()
    out_reverse = linear_recurrence(decay, impulse, reverse=True)
    assert torch.isnan(out_reverse[0, :41, 0]).all() and not torch.isnan(out_reverse[0, 41:, 0]).any()


def test_empty_sequence():
    decay = torch.rand(2, 0, 3)
    assert linear_recurrence(decay, torch.rand(2, 0, 3)).shape == (2, 0, 3)


def test_bad_inputs():
    decay, impulse, initial_state = random_inputs(2, 5, 3)
    with pytest.raises(TypeError, match="decay"):
        linear_recurrence(decay.numpy(), impulse)
    with pytest.raises(TypeError, match="decay"):
        linear_recurrence(decay.long(), impulse.long())
    with pytest.raises(ValueError, match="decay"):
        linear_recurrence(decay[0], impulse[0])
    with pytest.raises(ValueError, match="impulse"):
        linear_recurrence(decay, impulse[:, :4])
    with pytest.raises(TypeError, match="impulse"):
        linear_recurrence(decay, impulse.float())
    with pytest.raises(ValueError, match="initial_state"):
        linear_recurrence(decay, impulse, initial_state[:1])
    with pytest.raises(ValueError, match="initial_state"):
        linear_recurrence(decay, impulse, initial_state[:, None])
    with pytest.raises(TypeError, match="initial_state"):
        linear_recurrence(decay, impulse, initial_state.float())
    with pytest.raises(TypeError, match="reverse"):
        linear_recurrence(decay, impulse, reverse=1)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    decay, impulse, initial_state = random_inputs(3, 1000, 16)
    cuda = [x.cuda().requires_grad_() for x in (decay, impulse, initial_state)]
    cpu = [x.clone().requires_grad_() for x in (decay, impulse, initial_state)]
    for reverse in (False, True):
        out_cuda = linear_recurrence(*cuda, reverse=reverse)
        out_cpu = linear_recurrence(*cpu, reverse=reverse)
        torch.testing.assert_close(out_cuda.cpu(), out_cpu, rtol=0, atol=1e-10)
        out_cuda.sum().backward()
        out_cpu.sum().backward()
        for x, y in zip(cuda, cpu):
            torch.testing.assert_close(x.grad.cpu(), y.grad, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="impulse"):
        linear_recurrence(cuda[0], cpu[1])


@pytest.mark.gpu
def test_cuda_bfloat16():
    decay, impulse, _ = random_inputs(2, 4096, 32, dtype=torch.float32, decay_range=(0.0, 0.95))
    out = linear_recurrence(decay.cuda().bfloat16(), impulse.cuda().bfloat16())
    assert out.dtype == torch.bfloat16
    reference = linear_recurrence(decay, impulse)
    assert (out.float().cpu() - reference).abs().max().item() <= 0.05 * reference.abs().max().item()
