r"""Parallel linear recurrence (Martin & Cundy, ICLR 2018).

The first-order linear recurrence

.. math::
    h_t = a_t \odot h_{t-1} + b_t, \qquad h_{-1} = h_0,

is a scan with the associative operator
:math:`(a, b) \circ (a', b') = (a a', a' b + b')` (first pair earlier in time), so it can be evaluated in
logarithmic depth instead of :math:`T` sequential steps.
"""

import importlib.util

import torch
from torch import Tensor

from ...checks import check_bool
from ..common import compute_dtype, triton_kernel
from .chunked import chunked_scan

__all__ = ["linear_recurrence", "BACKENDS", "TRITON_BACKENDS"]

BACKENDS = ("auto", "torch", "triton")
TRITON_BACKENDS = ("triton",)  # the backends that run Triton kernels

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _scan_function(backend: str, device: torch.device):
    """The scan ``(decay, impulse, state, reverse, out) -> None`` of a backend name, for tensors on
    ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        # Timed on an H200 (B 1, T 65,536, D 32): forward 0.25 ms against 1.5 ms for the torch scan,
        # forward+backward 1.3 against 5.8 ms; 2.1 against 3.3 ms at B*T*D = 2^28.
        on_cuda = device.type == "cuda" and importlib.util.find_spec("triton") is not None
        backend = "triton" if on_cuda else "torch"
    if backend == "triton":
        return triton_kernel(f"{__name__}.fused", "triton_scan", "linear_recurrence(backend='triton')")
    return chunked_scan


class _LinearRecurrence(torch.autograd.Function):
    """Forward and backward pass around a backend's ``scan``; both passes are one call of it each."""

    @staticmethod
    def forward(ctx, decay, impulse, initial_state, reverse, scan):
        dtype = compute_dtype(decay.dtype)
        decay_c = decay.to(dtype).contiguous()
        impulse_c = impulse.to(dtype).contiguous()
        state = (
            initial_state.to(dtype) if initial_state is not None else decay_c.new_zeros(decay.shape[0], decay.shape[2])
        )
        out = torch.empty_like(impulse_c)
        scan(decay_c, impulse_c, state, reverse, out)
        ctx.scan = scan
        ctx.reverse = reverse
        ctx.input_dtype = decay.dtype
        ctx.has_initial_state = initial_state is not None
        result = out.to(decay.dtype)
        # The differentiable backward (create_graph=True) needs the output as autograd knows it.
        ctx.save_for_backward(decay, out, state, result, initial_state)
        return result

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():
            return _LinearRecurrence.differentiable_backward(ctx, grad_out)
        return _LinearRecurrence.fast_backward(ctx, grad_out)

    @staticmethod
    def differentiable_backward(ctx, grad_out):
        """The backward pass as autograd-tracked ops (the reverse scan is this function again), so that
        double backward (``create_graph=True``) is exact."""
        decay, _, _, out, initial_state = ctx.saved_tensors
        reverse = ctx.reverse
        zero = torch.zeros_like(decay[:, :1])
        # g_t = grad_t + a_{t+1} g_{t+1} (forward) or + a_{t-1} g_{t-1} (reverse): the recurrence run the other
        # way with the decay shifted by one step and zero beyond the end.
        shifted = torch.cat([zero, decay[:, :-1]], 1) if reverse else torch.cat([decay[:, 1:], zero], 1)
        grad_h = _LinearRecurrence.apply(shifted, grad_out, None, not reverse, ctx.scan)
        state = initial_state[:, None] if initial_state is not None else torch.zeros_like(out[:, :1])
        previous = torch.cat([out[:, 1:], state], 1) if reverse else torch.cat([state, out[:, :-1]], 1)
        grad_decay = grad_h * previous if ctx.needs_input_grad[0] else None
        grad_impulse = grad_h if ctx.needs_input_grad[1] else None
        grad_state = None
        if ctx.has_initial_state and ctx.needs_input_grad[2]:
            first = -1 if reverse else 0
            grad_state = decay[:, first] * grad_h[:, first]
        return grad_decay, grad_impulse, grad_state, None, None

    @staticmethod
    def fast_backward(ctx, grad_out):
        decay, out, state, _, _ = ctx.saved_tensors
        reverse = ctx.reverse
        dtype = out.dtype
        decay = decay.to(dtype).contiguous()
        grad_out = grad_out.to(dtype).contiguous()
        length = decay.shape[1]
        # g_t = dL/dh_t (total) obeys the recurrence run the other way, with the decay shifted by one:
        #   forward:  g_t = grad_t + a_{t+1} g_{t+1},   g_{T-1} = grad_{T-1}
        #   reverse:  g_t = grad_t + a_{t-1} g_{t-1},   g_0     = grad_0
        grad_h = torch.empty_like(grad_out)
        if reverse:
            grad_h[:, 0] = grad_out[:, 0]
            ctx.scan(decay[:, :-1], grad_out[:, 1:], grad_out[:, 0], False, grad_h[:, 1:])
            first, previous_h = length - 1, out[:, 1:]
        else:
            grad_h[:, -1] = grad_out[:, -1]
            ctx.scan(decay[:, 1:], grad_out[:, :-1], grad_out[:, -1], True, grad_h[:, :-1])
            first, previous_h = 0, out[:, :-1]

        grad_decay = grad_impulse = grad_state = None
        if ctx.needs_input_grad[0]:
            # dL/da_t = g_t h_{t-1} (h_{t+1} for reverse), the state h_0 entering the first step.
            grad_decay = torch.empty_like(grad_h)
            if reverse:
                torch.mul(grad_h[:, :-1], previous_h, out=grad_decay[:, :-1])
            else:
                torch.mul(grad_h[:, 1:], previous_h, out=grad_decay[:, 1:])
            torch.mul(grad_h[:, first], state, out=grad_decay[:, first])
            grad_decay = grad_decay.to(ctx.input_dtype)
        if ctx.needs_input_grad[1]:
            grad_impulse = grad_h.to(ctx.input_dtype)
        if ctx.has_initial_state and ctx.needs_input_grad[2]:
            grad_state = (decay[:, first] * grad_h[:, first]).to(ctx.input_dtype)
        return grad_decay, grad_impulse, grad_state, None, None


def _check_tensor(name: str, value, ndim: int) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a float16/bfloat16/float32/float64 tensor, got {value.dtype}")
    if value.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d tensor, got shape {tuple(value.shape)}")


def linear_recurrence(
    decay: Tensor, impulse: Tensor, initial_state: Tensor | None = None, reverse: bool = False, backend: str = "auto"
) -> Tensor:
    r"""Elementwise first-order linear recurrence along the time dimension, parallel over time.

    .. math::
        h_t = a_t \odot h_{t-1} + b_t, \qquad t = 0, \dots, T-1, \qquad h_{-1} = h_0,

    with :math:`a` = ``decay``, :math:`b` = ``impulse`` and :math:`h_0` = ``initial_state`` (zero when
    ``None``). With ``reverse=True`` the recurrence runs from :math:`t = T-1` down to :math:`0`:
    :math:`h_t = a_t \odot h_{t+1} + b_t`, :math:`h_T = h_0`. Decays may be any real numbers, including
    zero and negative values: nothing is computed in log space and nothing is divided.

    **Algorithm** (chunked scan, Martin & Cundy 2018). The sequence is cut into chunks of
    :math:`C` = ``CHUNK_SIZE`` steps. (1) *Reduce*: each chunk collapses into one step of the same
    recurrence, :math:`A_k = \prod_{t \in k} a_t` and :math:`B_k` = the chunk's own recurrence started
    from zero, evaluated at its last step; this is a :math:`C`-step loop vectorised over all chunks.
    (2) The :math:`T/C` chunk carries :math:`(A_k, B_k)` are scanned by the same algorithm, recursively,
    giving the state at the end of every chunk. (3) *Rescan*: each chunk re-runs its :math:`C` steps
    from the state left by the previous chunk, again vectorised over chunks. A final partial chunk
    (:math:`T` need not be a multiple of :math:`C`, nor a power of two) is a short plain loop.

    The backward pass is the same scan run the other way: with :math:`g_t = \partial L/\partial h_t`
    (total derivative) and :math:`\bar g_t` the incoming gradient,
    :math:`g_t = \bar g_t + a_{t+1} g_{t+1}`, so :math:`\partial L/\partial b_t = g_t`,
    :math:`\partial L/\partial a_t = g_t h_{t-1}` and :math:`\partial L/\partial h_0 = a_0 g_0`.
    Under ``create_graph=True`` the backward pass is built from autograd-tracked ops (its scan is this
    function again), so double backward is supported on both backends.

    **Backends.** ``"torch"`` is the chunked scan above, on any device. ``"triton"`` runs Triton kernels
    on CUDA (:mod:`plstm_geometric.functional.scan.fused`): each program streams one batch row
    and a block of channels through time in tiles scanned in registers, and when ``B x D`` alone is too
    little parallelism for the GPU the time axis is also split into chunks (reduce, scan of the chunk
    carries, rescan). The backward pass is the same reverse-time scan on either backend. triton is
    optional (``pip install triton``). ``"auto"`` runs ``"triton"`` on CUDA tensors where Triton is
    installed (on an H200, B 1, T 65,536, D 32: forward 0.25 against 1.5 ms, forward+backward 1.3 against
    5.8 ms) and ``"torch"`` elsewhere.

    **Complexity.** Work :math:`O(B D T)` (each level touches its input a constant number of times
    and the levels shrink geometrically); depth :math:`O(C \log_C T)` elementwise ops, i.e.
    :math:`O(\log T)` for the fixed :math:`C`; memory :math:`O(B D T)` for the output plus
    :math:`O(B D T / C)` for the carries. Autograd saves ``decay``, the output and :math:`h_0`.

    Args:
        decay (torch.Tensor): :math:`a`, shape ``[B, T, D]``.
        impulse (torch.Tensor): :math:`b`, shape ``[B, T, D]``, same dtype and device as ``decay``.
        initial_state (torch.Tensor, optional): :math:`h_0`, shape ``[B, D]``. (default: zeros)
        reverse (bool): run the recurrence from the last step to the first. (default: ``False``)
        backend (str): ``"auto"``, ``"torch"`` or ``"triton"`` (CUDA tensors; on CPU only under
            ``TRITON_INTERPRET=1``, Triton's interpreter). (default: ``"auto"``: ``"triton"`` on CUDA
            tensors where Triton is installed, else ``"torch"``)

    Returns:
        torch.Tensor: all states :math:`h_t`, shape ``[B, T, D]``, in the input dtype. float16 and
        bfloat16 inputs are computed (and differentiated) in float32 and rounded once at the end.
        NaNs propagate forward in time exactly as in the sequential loop.
    """
    _check_tensor("decay", decay, 3)
    _check_tensor("impulse", impulse, 3)
    if impulse.shape != decay.shape:
        raise ValueError(f"impulse: expected the shape of decay {tuple(decay.shape)}, got {tuple(impulse.shape)}")
    if impulse.dtype != decay.dtype:
        raise TypeError(f"impulse: expected the dtype of decay ({decay.dtype}), got {impulse.dtype}")
    if impulse.device != decay.device:
        raise ValueError(f"impulse: expected the device of decay ({decay.device}), got {impulse.device}")
    if initial_state is not None:
        _check_tensor("initial_state", initial_state, 2)
        expected = (decay.shape[0], decay.shape[2])
        if tuple(initial_state.shape) != expected:
            raise ValueError(
                f"initial_state: expected shape {expected} ([B, D] of decay), got {tuple(initial_state.shape)}"
            )
        if initial_state.dtype != decay.dtype:
            raise TypeError(f"initial_state: expected the dtype of decay ({decay.dtype}), got {initial_state.dtype}")
        if initial_state.device != decay.device:
            raise ValueError(
                f"initial_state: expected the device of decay ({decay.device}), got {initial_state.device}"
            )
    check_bool("reverse", reverse)
    scan = _scan_function(backend, decay.device)
    if decay.shape[1] == 0:
        return impulse.clone()
    return _LinearRecurrence.apply(decay, impulse, initial_state, reverse, scan)
