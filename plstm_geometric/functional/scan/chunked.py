r"""The chunked scan of :func:`~plstm_geometric.functional.linear_recurrence` in plain torch ops, on any device.

Reduce every chunk of ``CHUNK_SIZE`` steps to one step of the same recurrence, scan the chunk carries
recursively, rescan every chunk from the state that enters it.
"""

import torch
from torch import Tensor

__all__ = ["chunked_scan", "sequential_scan", "CHUNK_SIZE"]

# Chunk length C of the chunked scan. Each level costs about 2 C sequential (but vectorised) elementwise
# ops and shortens the sequence C-fold, so the depth is ~2 C log_C T ops: C = 8 keeps that small
# (85 ops at T = 2**16) while the per-level bookkeeping stays negligible; on CPU, 8 and 16 measured alike.
CHUNK_SIZE = 8


def sequential_scan(decay: Tensor, impulse: Tensor, state: Tensor, reverse: bool, out: Tensor) -> None:
    """Plain loop over a short sequence ``[B, T, D]`` (T <= CHUNK_SIZE), written into ``out``."""
    steps = range(decay.shape[1] - 1, -1, -1) if reverse else range(decay.shape[1])
    for t in steps:
        torch.addcmul(impulse[:, t], decay[:, t], state, out=out[:, t])
        state = out[:, t]


def chunked_scan(decay: Tensor, impulse: Tensor, state: Tensor, reverse: bool, out: Tensor) -> None:
    """Chunked scan of ``[B, T, D]`` float tensors with initial state ``[B, D]``, written into ``out``.

    ``decay``, ``impulse`` and ``out`` may be strided views whose dimension 1 can be split by ``view``
    (slices along T of contiguous tensors are), which lets the backward pass scan shifted views without
    copying them.
    """
    batch_size, length, channels = decay.shape
    chunk = CHUNK_SIZE
    if length <= chunk:
        sequential_scan(decay, impulse, state, reverse, out)
        return

    # The first length_main steps form num_chunks full chunks; the rest (< chunk steps) is a partial
    # chunk at the end of the tensor, handled by the plain loop before (reverse) or after the full
    # chunks, so no padded copies of the inputs are needed.
    num_chunks = length // chunk
    length_main = num_chunks * chunk
    if reverse and length_main < length:
        sequential_scan(decay[:, length_main:], impulse[:, length_main:], state, True, out[:, length_main:])
        state = out[:, length_main]

    shape = (batch_size, num_chunks, chunk, channels)
    decay_chunks = decay[:, :length_main].view(shape)
    impulse_chunks = impulse[:, :length_main].view(shape)
    out_chunks = out[:, :length_main].view(shape)
    order = list(range(chunk - 1, -1, -1)) if reverse else list(range(chunk))

    # Reduce: each chunk as one step of the same recurrence, (prod a, local scan end value from 0).
    chunk_impulse = impulse_chunks[:, :, order[0]]
    for t in order[1:]:
        chunk_impulse = torch.addcmul(impulse_chunks[:, :, t], decay_chunks[:, :, t], chunk_impulse)
    chunk_decay = decay_chunks.prod(dim=2)

    # Scan the chunk carries (T / C steps, recursively): the state at the end of every chunk.
    chunk_end = torch.empty_like(chunk_decay)
    chunked_scan(chunk_decay, chunk_impulse.contiguous(), state, reverse, chunk_end)

    # Rescan every chunk from the state that enters it (the previous chunk's end).
    if reverse:
        carry = torch.cat([chunk_end[:, 1:], state[:, None]], dim=1)
    else:
        carry = torch.cat([state[:, None], chunk_end[:, :-1]], dim=1)
    for t in order:
        torch.addcmul(impulse_chunks[:, :, t], decay_chunks[:, :, t], carry, out=out_chunks[:, :, t])
        carry = out_chunks[:, :, t]

    if not reverse and length_main < length:
        sequential_scan(
            decay[:, length_main:], impulse[:, length_main:], out[:, length_main - 1], False, out[:, length_main:]
        )
