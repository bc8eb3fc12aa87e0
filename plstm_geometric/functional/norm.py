r"""RMS normalisation of every head separately, the op of :class:`~plstm_geometric.nn.MultiHeadRMSNorm`.

.. math::
    y_{h} = \frac{x_{h}}{\sqrt{\mathrm{mean}(x_{h}^2) + \epsilon}} \odot \gamma_{h}, \qquad
    \bar{x}_{h} = r_h \left(\bar{y}_h \odot \gamma_h - \hat{x}_h\, \mathrm{mean}(\bar{y}_h \odot \gamma_h
    \odot \hat{x}_h)\right), \qquad \bar{\gamma}_{h} = \sum \bar{y}_h \odot \hat{x}_h

with :math:`r_h = (\mathrm{mean}(x_h^2) + \epsilon)^{-1/2}` and :math:`\hat{x}_h = r_h x_h`. Written
with torch ops, forward and backward take about fifteen passes over ``x``; on CPU tensors of float32 or
float64, once the compiled sweep's C++ loops are loaded (:func:`~.dag.compiled.loaded_extension`), they
take one pass each (the same arithmetic; the torch form serves ``create_graph=True``, other devices and
dtypes, autocast and ``torch.compile``).
"""

import torch
from torch import Tensor

from .dag.compiled import loaded_extension


def multi_head_rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """``x`` ``[..., H, V]`` normalised per head and scaled by ``weight`` ``[H, V]``."""
    if torch.compiler.is_compiling():
        # asked first: a compiled graph must not read (and guard on) whether the loops are loaded yet
        return multi_head_rms_norm_torch(x, weight, eps)
    extension = loaded_extension()
    if (
        extension is not None
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and weight.dtype == x.dtype
        and not torch.is_autocast_enabled("cpu")
    ):
        return CompiledRMSNorm.apply(x, weight, eps, extension)
    return multi_head_rms_norm_torch(x, weight, eps)


def multi_head_rms_norm_torch(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """The torch form of :func:`multi_head_rms_norm`."""
    dtype = x.dtype
    # 16-bit inputs are normalised in float32 (their mean square underflows otherwise); float32 and
    # float64 keep their precision.
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    x = x.to(work)
    x = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (x * weight.to(work)).to(dtype)


class CompiledRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps, extension):
        x, weight = x.contiguous(), weight.contiguous()
        out, rstd = extension.norm_forward(x, weight, eps)
        ctx.eps, ctx.extension = eps, extension
        ctx.save_for_backward(x, weight, rstd)
        return out

    @staticmethod
    def backward(ctx, out_grad):
        x, weight, rstd = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: the gradients as tracked functions of the inputs, through the torch form
            needed = [t for t, needs in zip((x, weight), ctx.needs_input_grad) if needs]
            out = multi_head_rms_norm_torch(x, weight, ctx.eps)
            grads = iter(torch.autograd.grad(out, needed, out_grad, create_graph=True))
            return (*(next(grads) if needs else None for needs in ctx.needs_input_grad[:2]), None, None)
        x_grad, weight_grad = ctx.extension.norm_backward(x, weight, rstd, out_grad.contiguous())
        return x_grad, weight_grad, None, None
