"""multi_head_rms_norm: the compiled loops against the torch form, gradients, non-finite input, and
which form runs where."""

import pytest
import torch

from benchmarks.harness import torch_threads
from plstm_geometric.functional import norm
from plstm_geometric.functional.dag import compiled
from plstm_geometric.nn import MultiHeadRMSNorm

needs_build = pytest.mark.skipif(compiled.build_extension() is None, reason="no C++ compiler to build the loops")


def rms_norm_from_the_equation(x, weight, eps):
    rows = x.reshape(-1, *weight.shape)
    out = torch.empty_like(rows)
    for r in range(rows.size(0)):
        for h in range(weight.size(0)):
            mean_square = sum(float(v) ** 2 for v in rows[r, h]) / weight.size(1)
            out[r, h] = rows[r, h] / (mean_square + eps) ** 0.5 * weight[h]
    return out.view_as(x)


def inputs(dtype=torch.float64, rows=3000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 4, 6, generator=generator, dtype=dtype) * torch.rand(
        rows, 4, 1, generator=generator, dtype=dtype
    )
    weight = torch.randn(4, 6, generator=generator, dtype=dtype)
    return x.requires_grad_(), weight.requires_grad_()


def output_and_grads(function, x, weight, eps=1e-6):
    out = function(x, weight, eps)
    out_grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    return (out, *torch.autograd.grad(out, (x, weight), out_grad))


@needs_build
def test_compiled_loops_agree_with_the_torch_form_and_the_equation():
    x, weight = inputs()
    got = output_and_grads(norm.multi_head_rms_norm, x, weight)
    expected = output_and_grads(norm.multi_head_rms_norm_torch, x, weight)
    assert got[0].grad_fn.name() == "CompiledRMSNormBackward"
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    small = x[:5].detach()
    torch.testing.assert_close(
        norm.multi_head_rms_norm(small, weight, 1e-6), rms_norm_from_the_equation(small, weight, 1e-6)
    )


@needs_build
def test_gradcheck_and_double_backward():
    x, weight = inputs(rows=7)
    function = lambda x, weight: norm.multi_head_rms_norm(x, weight, 1e-3)  # noqa: E731
    assert torch.autograd.gradcheck(function, (x, weight))
    assert torch.autograd.gradgradcheck(function, (x, weight))


@needs_build
def test_threads_do_not_change_a_bit():
    x, weight = inputs(torch.float32, rows=5000)
    one = output_and_grads(norm.multi_head_rms_norm, x, weight)
    with torch_threads(2):
        two = output_and_grads(norm.multi_head_rms_norm, x, weight)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


@needs_build
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nonfinite_row_stays_in_its_head(bad):
    x, weight = inputs(rows=4)
    x = x.detach().clone()
    x[2, 1, 3] = bad
    got, expected = norm.multi_head_rms_norm(x, weight, 1e-6), norm.multi_head_rms_norm_torch(x, weight, 1e-6)
    assert torch.equal(got.isnan(), expected.isnan()) and torch.equal(got.isinf(), expected.isinf())
    assert not torch.isfinite(got[2, 1]).all()
    assert torch.isfinite(got[[0, 1, 3]]).all() and torch.isfinite(got[2, [0, 2, 3]]).all()


@needs_build
def test_the_torch_form_serves_16_bit_inputs_and_compiled_graphs(monkeypatch):
    x, weight = inputs(torch.bfloat16, rows=5)
    out = MultiHeadRMSNorm(4, 6).to(torch.bfloat16)(x)
    assert out.dtype == torch.bfloat16 and out.grad_fn.name() != "CompiledRMSNormBackward"
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    x, weight = inputs(rows=5)
    assert norm.multi_head_rms_norm(x, weight, 1e-6).grad_fn.name() != "CompiledRMSNormBackward"


def test_without_the_loops_the_torch_form_runs(monkeypatch):
    monkeypatch.setattr(compiled, "_extension", None)
    x, weight = inputs(rows=5)
    out = norm.multi_head_rms_norm(x, weight, 1e-6)
    assert out.grad_fn.name() != "CompiledRMSNormBackward"
    torch.testing.assert_close(out, norm.multi_head_rms_norm_torch(x, weight, 1e-6), atol=0, rtol=0)
