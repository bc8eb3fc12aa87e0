"""The backends a benchmark times, read from the ops' registries (``BACKENDS`` of
:mod:`plstm_geometric.functional.dag`, ``.grid`` and ``.scan``), so that a new backend is timed everywhere
without a change here or in any benchmark.

Two facts the registries do not state are read off the ops' source instead of being listed by name:

* which backend is the reference: the first after ``"auto"`` (the registries list it first: the level
  sweep, the wavefront, the torch scan);
* which backends run Triton kernels, and so need CUDA: the library loads every Triton kernel through
  :func:`plstm_geometric.functional.common.triton_kernel` (which keeps Triton optional), in a branch of its
  dispatch ``if backend == "<name>":``. Off CUDA such a backend would run in Triton's CPU interpreter,
  whose timings say nothing about the kernels.
"""

import ast
import functools
import importlib.util
import inspect
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


@functools.cache
def triton_backends(op: ModuleType) -> frozenset[str]:
    """The backends whose dispatch branch (``if backend == name:``) loads a kernel through ``triton_kernel``."""
    found = set()
    for node in ast.walk(ast.parse(inspect.getsource(op))):
        if isinstance(node, ast.If) and _compared_backend(node.test) is not None:
            calls = (call for statement in node.body for call in ast.walk(statement) if isinstance(call, ast.Call))
            if any(_called_name(call) == "triton_kernel" for call in calls):
                found.add(_compared_backend(node.test))
    return frozenset(found & set(op.BACKENDS))


def _compared_backend(test: ast.expr) -> str | None:
    """``name`` of a test ``backend == "name"``, else None."""
    if (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "backend"
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and isinstance(test.comparators[0], ast.Constant)
        and isinstance(test.comparators[0].value, str)
    ):
        return test.comparators[0].value
    return None


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def skip_reason(op: ModuleType, backend: str, device: torch.device) -> str | None:
    """Why ``backend`` is not timed on ``device`` (None: it is)."""
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
