r"""Triton kernels for :func:`~plstm_geometric.functional.linear_recurrence` (``backend="triton"``).

The recurrence :math:`h_t = a_t h_{t-1} + b_t` over ``[B, T, D]`` is memory bound: it reads :math:`a` and
:math:`b` and writes :math:`h`, a few flops per element. Every program therefore owns one batch row, a
block of ``BLOCK_CHANNELS`` contiguous channels (coalesced loads) and a contiguous range of time steps,
which it streams through in tiles of ``[BLOCK_TIME, BLOCK_CHANNELS]``: a tile is loaded at once (many
loads in flight), scanned over time in registers with ``tl.associative_scan`` and the operator
:math:`(a, b) \circ (a', b') = (a a', a' b + b')`, and joined to the state carried from the previous
tile, :math:`h = A h_{\text{carry}} + B`.

Two schedules (:func:`scan_schedule` picks one by shape):

* **sequential** (one chunk): a program owns the whole time axis. Every element is read once and written
  once (12 bytes per float32 element), the minimum, but only ``B * ceil(D / BLOCK_CHANNELS)`` programs run.
* **chunked**, when that is fewer than ``TARGET_PROGRAMS``: the time axis is also split into chunks, one
  program each. (1) A reduce kernel collapses every chunk into one step of the same recurrence (its
  decay product and its state started from zero); (2) those ``B x chunks x D`` carries are scanned by
  :func:`triton_scan` itself (recursively: usually one sequential call); (3) every chunk is rescanned
  from the state entering it. Inputs are read twice (20 bytes per float32 element), the price of
  parallelism over time, which B = 1, D = 32, T = 1M needs to fill a GPU.

Reverse recurrences scan the same way with the time index mirrored in memory, ``T - 1 - step``.
Without a GPU the kernels run in Triton's CPU interpreter when ``TRITON_INTERPRET=1`` was set before
this module was imported (the test suite does so).
"""

from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.runtime.interpreter import InterpretedFunction

__all__ = ["ScanSchedule", "scan_schedule", "triton_scan"]

# Schedule constants. First guesses, not yet timed on a GPU:
# elements of one [time, channel] tile held in registers (16 per thread per operand at 4 warps; at
# least MAX_BLOCK_CHANNELS),
TILE_ELEMENTS = 2048
# widest channel block: 64 float32 = 256 contiguous bytes per time step, two 128-byte lines,
MAX_BLOCK_CHANNELS = 64
# programs the sequential schedule must reach to be chosen (about 8 per SM of a 132-SM H100),
TARGET_PROGRAMS = 1024
# and the shortest chunk of the chunked schedule, in tiles, so that the carry scan stays short.
MIN_CHUNK_TILES = 4


class ScanSchedule(NamedTuple):
    """Tile and chunk sizes of one :func:`triton_scan` call."""

    block_time: int
    block_channels: int
    num_chunks: int
    chunk_length: int


def scan_schedule(batch_size: int, length: int, channels: int) -> ScanSchedule:
    """Tiles and chunks for a ``[batch_size, length, channels]`` scan (``length >= 1``).

    Rule: ``B * ceil(D / BLOCK_CHANNELS)`` programs of the sequential schedule, if that reaches
    ``TARGET_PROGRAMS``; otherwise the time axis is cut into as many chunks as bring the program count
    to ``TARGET_PROGRAMS``, but no chunk shorter than ``MIN_CHUNK_TILES`` tiles (so short sequences stay
    sequential). Chunks are whole tiles.
    """
    block_channels = min(triton.next_power_of_2(channels), MAX_BLOCK_CHANNELS)
    # A tile no longer than the sequence: in short sequences the rest would be masked-out work.
    block_time = min(TILE_ELEMENTS // block_channels, triton.next_power_of_2(length))
    column_programs = batch_size * triton.cdiv(channels, block_channels)
    num_chunks = min(triton.cdiv(length, MIN_CHUNK_TILES * block_time), triton.cdiv(TARGET_PROGRAMS, column_programs))
    chunk_length = triton.cdiv(triton.cdiv(length, num_chunks), block_time) * block_time
    return ScanSchedule(block_time, block_channels, triton.cdiv(length, chunk_length), chunk_length)


@triton.jit
def _combine(decay_earlier, impulse_earlier, decay_later, impulse_later):
    # Two consecutive steps as one: (a, b) then (a', b') is h -> a' (a h + b) + b'.
    return decay_earlier * decay_later, decay_later * impulse_earlier + impulse_later


@triton.jit
def _program_block(length, channels, num_chunks, chunk_length, BLOCK_CHANNELS: tl.constexpr):
    """Batch row, chunk, channels and step range of this program (channel blocks vary fastest)."""
    program = tl.program_id(0)
    num_channel_blocks = tl.cdiv(channels, BLOCK_CHANNELS)
    channel = (program % num_channel_blocks) * BLOCK_CHANNELS + tl.arange(0, BLOCK_CHANNELS)
    chunk = (program // num_channel_blocks) % num_chunks
    # int64: batch offsets of [B, T, D] tensors exceed 2**31 elements for large inputs.
    batch = (program // (num_channel_blocks * num_chunks)).to(tl.int64)
    chunk_start = chunk * chunk_length
    chunk_stop = tl.minimum(chunk_start + chunk_length, length)
    return batch, chunk, channel, channel < channels, chunk_start, chunk_stop


@triton.jit
def _scan_tile(
    decay_ptr,
    impulse_ptr,
    batch,
    step_start,
    chunk_stop,
    length,
    channel,
    channel_mask,
    stride_batch,
    stride_time,
    REVERSE: tl.constexpr,
    BLOCK_TIME: tl.constexpr,
):
    """Offsets, mask and inclusive scan ``(A, B)`` of the tile of steps ``step_start + [0, BLOCK_TIME)``."""
    step = step_start + tl.arange(0, BLOCK_TIME)
    time = length - 1 - step if REVERSE else step
    offsets = batch * stride_batch + time.to(tl.int64)[:, None] * stride_time + channel[None, :]
    mask = (step < chunk_stop)[:, None] & channel_mask[None, :]
    # Masked entries are the identity step (a = 1, b = 0), so the tile's last row is the tile's total.
    decay = tl.load(decay_ptr + offsets, mask=mask, other=1.0)
    impulse = tl.load(impulse_ptr + offsets, mask=mask, other=0.0)
    decay_prefix, impulse_prefix = tl.associative_scan((decay, impulse), 0, _combine)
    return offsets, mask, decay_prefix, impulse_prefix


@triton.jit
def _last_row(tile, BLOCK_TIME: tl.constexpr):
    # Selecting one row by a masked sum is exact (x + 0 = x) and ignores NaNs in the other rows.
    is_last = tl.arange(0, BLOCK_TIME)[:, None] == BLOCK_TIME - 1
    return tl.sum(tl.where(is_last, tile, 0.0), axis=0)


@triton.jit
def _reduce_chunks_kernel(
    decay_ptr,
    impulse_ptr,
    chunk_decay_ptr,
    chunk_impulse_ptr,
    length,
    channels,
    num_chunks,
    chunk_length,
    stride_batch,
    stride_time,
    REVERSE: tl.constexpr,
    BLOCK_TIME: tl.constexpr,
    BLOCK_CHANNELS: tl.constexpr,
):
    """Each chunk as one step: its decay product and its final state started from zero, ``[B, chunks, D]``."""
    batch, chunk, channel, channel_mask, chunk_start, chunk_stop = _program_block(
        length, channels, num_chunks, chunk_length, BLOCK_CHANNELS
    )
    total_decay = tl.full([BLOCK_CHANNELS], 1.0, decay_ptr.dtype.element_ty)
    total_impulse = tl.zeros([BLOCK_CHANNELS], decay_ptr.dtype.element_ty)
    for step_start in range(chunk_start, chunk_stop, BLOCK_TIME):
        _, _, decay_prefix, impulse_prefix = _scan_tile(
            decay_ptr,
            impulse_ptr,
            batch,
            step_start,
            chunk_stop,
            length,
            channel,
            channel_mask,
            stride_batch,
            stride_time,
            REVERSE,
            BLOCK_TIME,
        )
        total_decay, total_impulse = _combine(
            total_decay, total_impulse, _last_row(decay_prefix, BLOCK_TIME), _last_row(impulse_prefix, BLOCK_TIME)
        )
    position = (batch * num_chunks + chunk) * channels + channel
    tl.store(chunk_decay_ptr + position, total_decay, mask=channel_mask)
    tl.store(chunk_impulse_ptr + position, total_impulse, mask=channel_mask)


@triton.jit
def _scan_chunks_kernel(
    decay_ptr,
    impulse_ptr,
    carry_ptr,
    out_ptr,
    length,
    channels,
    num_chunks,
    chunk_length,
    stride_batch,
    stride_time,
    carry_stride_batch,
    carry_stride_chunk,
    carry_stride_channel,
    REVERSE: tl.constexpr,
    BLOCK_TIME: tl.constexpr,
    BLOCK_CHANNELS: tl.constexpr,
):
    """All states of each chunk, started from ``carry[b, chunk]`` (the state entering the chunk)."""
    batch, chunk, channel, channel_mask, chunk_start, chunk_stop = _program_block(
        length, channels, num_chunks, chunk_length, BLOCK_CHANNELS
    )
    state = tl.load(
        carry_ptr + batch * carry_stride_batch + chunk * carry_stride_chunk + channel * carry_stride_channel,
        mask=channel_mask,
        other=0.0,
    )
    for step_start in range(chunk_start, chunk_stop, BLOCK_TIME):
        offsets, mask, decay_prefix, impulse_prefix = _scan_tile(
            decay_ptr,
            impulse_ptr,
            batch,
            step_start,
            chunk_stop,
            length,
            channel,
            channel_mask,
            stride_batch,
            stride_time,
            REVERSE,
            BLOCK_TIME,
        )
        states = decay_prefix * state[None, :] + impulse_prefix
        tl.store(out_ptr + offsets, states, mask=mask)
        state = _last_row(states, BLOCK_TIME)


# Decided once, like Triton itself does, when the kernels are defined: under TRITON_INTERPRET=1 they
# are interpreted on the CPU and accept CPU tensors.
INTERPRETED = isinstance(_scan_chunks_kernel, InterpretedFunction)


def _addressing_strides(tensor: Tensor):
    # A dimension of size one is never stepped along, and torch leaves its stride arbitrary (a [1, T, D]
    # reshape and a contiguous copy may differ there): only the other strides must agree.
    return tuple(stride if size > 1 else 0 for size, stride in zip(tensor.shape, tensor.stride()))


def triton_scan(decay: Tensor, impulse: Tensor, state: Tensor, reverse: bool, out: Tensor) -> None:
    """Scan of ``[B, T, D]`` float32/float64 tensors from the state ``[B, D]``, written into ``out``.

    The contract of the torch backend's scan: ``decay``, ``impulse`` and ``out`` may be views (the
    backward pass scans slices along T) but must share their strides and be contiguous along D;
    ``state`` may have any strides.
    """
    if decay.numel() == 0:  # the backward pass of T = 1 scans empty slices
        return
    if decay.device.type != "cuda" and not INTERPRETED:
        raise ValueError(
            f"linear_recurrence(backend='triton') needs CUDA tensors, got {decay.device}: use "
            "backend='torch', or set TRITON_INTERPRET=1 before importing plstm_geometric to run "
            "Triton's (slow) CPU interpreter"
        )
    strides = _addressing_strides(decay)
    if _addressing_strides(impulse) != strides or _addressing_strides(out) != strides or strides[2] > 1:
        raise ValueError("triton_scan: decay, impulse and out must share their strides, contiguous along D")
    batch_size, length, channels = decay.shape
    schedule = scan_schedule(batch_size, length, channels)
    grid = (batch_size * schedule.num_chunks * triton.cdiv(channels, schedule.block_channels),)
    shape_args = (length, channels, schedule.num_chunks, schedule.chunk_length, strides[0], strides[1])
    block_args = dict(REVERSE=reverse, BLOCK_TIME=schedule.block_time, BLOCK_CHANNELS=schedule.block_channels)

    if schedule.num_chunks == 1:
        carry = state[:, None]
    else:
        chunk_decay = decay.new_empty(batch_size, schedule.num_chunks, channels)
        chunk_impulse = torch.empty_like(chunk_decay)
        _reduce_chunks_kernel[grid](decay, impulse, chunk_decay, chunk_impulse, *shape_args, **block_args)
        # The chunk carries are in step order whatever the direction, so their scan runs forward.
        chunk_end = torch.empty_like(chunk_decay)
        triton_scan(chunk_decay, chunk_impulse, state, False, chunk_end)
        carry = torch.cat([state[:, None], chunk_end[:, :-1]], dim=1)
    _scan_chunks_kernel[grid](decay, impulse, carry, out, *shape_args, *carry.stride(), **block_args)
