"""What every op shares: the compute dtype, the direct and source terms, and the lazy import of Triton
kernels."""

import importlib

import torch
from torch import Tensor

__all__ = [
    "compute_dtype",
    "in_compute_dtype",
    "direct_term",
    "direct_term_grads",
    "source_terms",
    "all_finite",
    "triton_kernel",
    "contract_key",
    "contract_value",
]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """States accumulate in float32 for 16-bit inputs: long products of gates lose everything in bf16."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def in_compute_dtype(*tensors: Tensor):
    """The tensors in the dtype states are accumulated in."""
    work = compute_dtype(tensors[0].dtype)
    return tuple(t.to(work) for t in tensors)


def direct_term(query: Tensor, key: Tensor, value: Tensor, direct: Tensor) -> Tensor:
    """``direct[n] * (query[n] . key[n]) * value[n]``: what a node passes to itself, ``[N, H, V]``."""
    return (direct * (query * key).sum(-1))[..., None] * value


def direct_term_grads(query: Tensor, key: Tensor, value: Tensor, direct: Tensor, out_grad: Tensor):
    r"""The gradients ``(query, key, value, direct)`` of :func:`direct_term` for the output gradient
    ``out_grad`` ``[N, H, V]``: with :math:`s = q \cdot k` and :math:`g = v \cdot \bar{o}`,
    :math:`\bar{q} = D g k`, :math:`\bar{k} = D g q`, :math:`\bar{v} = D s \bar{o}`, :math:`\bar{D} = s g`."""
    qk = (query * key).sum(-1)
    v_dot_g = (value * out_grad).sum(-1)
    weight = (direct * v_dot_g)[..., None]
    return weight * key, weight * query, (direct * qk)[..., None] * out_grad, qk * v_dot_g


def source_terms(source: Tensor, key_src: Tensor, value_src: Tensor) -> Tensor:
    """``source[e] * key[src e] value[src e]^T``, ``[E, H, K, V]``."""
    return source[:, :, None, None] * key_src[..., :, None] * value_src[..., None, :]


def contract_key(vector: Tensor, states: Tensor) -> Tensor:
    r"""``vector^T C`` per row: ``[..., K]`` and ``[..., K, V]`` -> ``[..., V]`` (a readout ``q^T C``).

    Written as a batched matmul of ``[..., 1, K]`` by ``[..., K, V]``: einsum's path for this contraction
    copies the states into another layout first, which on CPU costs 2-3x the product itself.
    """
    return torch.matmul(vector.unsqueeze(-2), states).squeeze(-2)


def contract_value(states: Tensor, vector: Tensor) -> Tensor:
    r"""``C v`` per row: ``[..., K, V]`` and ``[..., V]`` -> ``[..., K]``."""
    return torch.matmul(states, vector.unsqueeze(-1)).squeeze(-1)


def all_finite(*tensors: Tensor) -> bool:
    """Whether every entry of every tensor is finite (one reduction per tensor, one host sync).

    ``(t * 0).sum()`` is NaN exactly when ``t`` holds a NaN or an inf, never overflows, and is several
    times faster than ``isfinite(t).all()`` on CPU.

    Dense and concatenated forms multiply structural zeros with every entry (``0 * nan = nan``), which
    would carry a non-finite input to nodes it cannot reach; ops use this to run their sweep instead.
    """
    return not bool(torch.stack([(t * 0).sum() for t in tensors]).isnan().any())


def triton_kernel(module: str, name: str, requested: str):
    """``name`` from the Triton module ``module`` (a full module path), imported on first use.

    Triton is an optional dependency: without it only the call that asks for a Triton backend fails, with
    an ``ImportError`` that names the request (``requested``) and the fix.
    """
    try:
        kernels = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != "triton":
            raise
        raise ImportError(
            f"{requested} runs Triton kernels: pip install triton (the other backends do not need it)"
        ) from error
    return getattr(kernels, name)
