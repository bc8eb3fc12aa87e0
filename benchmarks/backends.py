"""The backends a benchmark times, read from the ops' registries (``BACKENDS`` of
:mod:`plstm_geometric.functional.dag`, ``.grid`` and ``.scan``), so that a new backend is timed everywhere
without a change here or in any benchmark.

The reference backend is the first after ``"auto"`` (the registries list it first: the level sweep, the
wavefront, the torch scan). The backends that run Triton kernels are each registry's ``TRITON_BACKENDS``:
off CUDA they would run in Triton's CPU interpreter, whose timings say nothing about the kernels. The
backends of a registry's ``CPU_BACKENDS`` run their own code on CPU tensors only (elsewhere another
backend's), so they are timed on the CPU only.
"""

import importlib.util
from types import ModuleType

import torch

from plstm_geometric.functional import dag, grid, scan

AUTO = "auto"


def concrete(op: ModuleType) -> tuple[str, ...]:
    """The op's backends other than ``"auto"``, in registry order (the reference first)."""
    return tuple(name for name in op.BACKENDS if name != AUTO)


def reference(op: ModuleType) -> str:
    """The backend the others are compared with: the first of the registry after ``"auto"``."""
    return concrete(op)[0]


def triton_backends(op: ModuleType) -> frozenset[str]:
    """The backends of ``op`` that run Triton kernels (its registry's ``TRITON_BACKENDS``)."""
    return frozenset(op.TRITON_BACKENDS)


def skip_reason(op: ModuleType, backend: str, device: torch.device) -> str | None:
    """Why ``backend`` is not timed on ``device`` (None: it is)."""
    if backend in getattr(op, "CPU_BACKENDS", ()) and device.type != "cpu":
        return "CPU code (on this device it runs the torch level sweep)"
    if backend not in triton_backends(op):
        return None
    if device.type != "cuda":
        return "needs CUDA"
    if importlib.util.find_spec("triton") is None:
        return "needs triton"
    return None


def timed(op: ModuleType, device: torch.device, include_auto: bool = False) -> tuple[str, ...]:
    """The backends of ``op`` a benchmark on ``device`` times (``"auto"`` first when asked)."""
    names = ((AUTO,) if include_auto else ()) + concrete(op)
    return tuple(name for name in names if skip_reason(op, name, device) is None)


DAG_BACKENDS = concrete(dag)
GRID_BACKENDS = concrete(grid)
SCAN_BACKENDS = concrete(scan)
