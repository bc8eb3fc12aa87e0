r"""A pool of cell-state buffers that the compiled sweep reuses from call to call.

torch's CPU allocator hands every large request to the operating system and returns it when the tensor
dies, so each forward pass of the compiled sweep writes its ``[E, H, K, V]`` states into freshly mapped
pages. Faulting those pages in costs more than the sweep's arithmetic: 44 MB of states (64 peptides,
4 heads, K = V = 16) take about 24 ms to touch with 4 KB pages and 4 ms with transparent huge pages,
against about 1 ms to overwrite memory already touched. The pool keeps buffers that a sweep is done with
and hands them to the next sweep, as CUDA's caching allocator does on the GPU.

A buffer is returned to the pool only when nothing will read it again: after a forward pass whose
states are not saved (no gradient needed, or ``recompute_states=True``) and after the backward pass that
consumed them (the backward writes its gradient states over them; a second backward pass through the
same graph recomputes the states, see :class:`~.compiled.CompiledSweep`).

The pool holds at most :data:`WORKSPACE_MIB_VARIABLE` MiB (``PLSTM_GEOMETRIC_WORKSPACE_MIB``, default
1,024; ``0`` turns it off) in at most :data:`MAX_BUFFERS` buffers; :func:`release_workspace` empties it.
"""

import math
import os
import threading

import torch
from torch import Tensor

WORKSPACE_MIB_VARIABLE = "PLSTM_GEOMETRIC_WORKSPACE_MIB"
DEFAULT_WORKSPACE_MIB = 1024
#: Buffers kept at most: a model's sweeps in one training step (two blocks of two layers need four).
MAX_BUFFERS = 8
# A new buffer is rounded up to 1/8 of a power of two (at most 12.5% more), so that batches of slightly
# different sizes fit the buffers of earlier batches instead of each allocating anew.
GRANULES_PER_OCTAVE = 8


def workspace_bytes() -> int:
    """The pool's limit in bytes, from ``PLSTM_GEOMETRIC_WORKSPACE_MIB`` (default 1,024 MiB)."""
    text = os.environ.get(WORKSPACE_MIB_VARIABLE, "").strip()
    if not text:
        return DEFAULT_WORKSPACE_MIB << 20
    try:
        mib = float(text)
    except ValueError:
        raise ValueError(
            f"{WORKSPACE_MIB_VARIABLE}: expected a number of MiB (0 turns the pool off), got {text!r}"
        ) from None
    if not mib >= 0 or mib == float("inf"):
        raise ValueError(f"{WORKSPACE_MIB_VARIABLE}: expected a finite number of MiB >= 0, got {text!r}")
    return int(mib * (1 << 20))


def rounded_size(numel: int) -> int:
    """``numel`` rounded up to a multiple of 1/8 of the power of two below it."""
    if numel <= GRANULES_PER_OCTAVE:
        return numel
    below = numel.bit_length() - 1  # 2 ** below <= numel
    granule = 1 << (below - (GRANULES_PER_OCTAVE.bit_length() - 1))
    return -(-numel // granule) * granule


class StateWorkspace:
    """Flat CPU buffers by dtype, lent out as ``[E, H, K, V]`` views and given back when no longer read."""

    def __init__(self):
        self._lock = threading.Lock()
        self._buffers: list[Tensor] = []

    def take(self, shape, dtype: torch.dtype) -> Tensor:
        """An uninitialised CPU tensor of ``shape``: a view of the smallest pooled buffer that holds it,
        else a new buffer (rounded up, see :func:`rounded_size`)."""
        numel = math.prod(shape)
        with self._lock:
            fitting = [i for i, b in enumerate(self._buffers) if b.dtype == dtype and b.numel() >= numel]
            if fitting:
                buffer = self._buffers.pop(min(fitting, key=lambda i: self._buffers[i].numel()))
                return buffer[:numel].view(shape)
        if workspace_bytes() == 0:
            return torch.empty(shape, dtype=dtype)
        return torch.empty(rounded_size(numel), dtype=dtype)[:numel].view(shape)

    def give(self, tensor: Tensor) -> None:
        """Returns the buffer under ``tensor`` (a view from :meth:`take`) to the pool; the caller must
        not read it again. Beyond the pool's limits the smallest buffers are dropped."""
        if tensor.device.type != "cpu" or not tensor.is_contiguous() or tensor.storage_offset() != 0:
            return
        buffer = torch.empty(0, dtype=tensor.dtype).set_(tensor.untyped_storage())
        limit = workspace_bytes()
        with self._lock:
            if any(b.data_ptr() == buffer.data_ptr() for b in self._buffers):
                return
            self._buffers.append(buffer)
            self._buffers.sort(key=Tensor.numel, reverse=True)
            while self._buffers and (len(self._buffers) > MAX_BUFFERS or sum(b.nbytes for b in self._buffers) > limit):
                self._buffers.pop()

    def release(self) -> None:
        """Drops every pooled buffer (their memory goes back to the system)."""
        with self._lock:
            self._buffers.clear()

    def pooled_bytes(self) -> int:
        with self._lock:
            return sum(b.nbytes for b in self._buffers)


WORKSPACE = StateWorkspace()


def release_workspace() -> None:
    """Empties the compiled sweep's pool of state buffers (e.g. after training, to return its memory)."""
    WORKSPACE.release()
