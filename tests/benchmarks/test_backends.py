"""Every list of backends in benchmarks/ comes from the ops' registries: a new backend is timed without a
change to any benchmark."""

import ast
import importlib.util
from pathlib import Path

import torch

from benchmarks import backends, depth
from plstm_geometric.functional import dag, grid, scan

BENCHMARKS = Path(backends.__file__).resolve().parent
# other packages of benchmarks/, not on the measurement harness
OTHERS = ("suite", "longrange")


def test_backend_lists_equal_the_registries():
    for op, names in ((dag, backends.DAG_BACKENDS), (grid, backends.GRID_BACKENDS), (scan, backends.SCAN_BACKENDS)):
        assert names == tuple(name for name in op.BACKENDS if name != "auto")
        assert backends.reference(op) == names[0]
        cpu_only = getattr(op, "CPU_BACKENDS", ())
        on_cuda = tuple(name for name in op.BACKENDS if name not in cpu_only)
        assert backends.timed(op, torch.device("cuda"), include_auto=True) == on_cuda
    cpu = backends.timed(dag, torch.device("cpu"))
    assert set(cpu) == set(backends.DAG_BACKENDS) - backends.triton_backends(dag)
    assert depth.BACKENDS == cpu


def test_triton_backends_are_found_in_the_dispatch():
    # One module per plstm_dag backend: the detected ones are exactly those whose module imports Triton.
    importing = set()
    for name in backends.DAG_BACKENDS:
        spec = importlib.util.find_spec(f"{dag.__name__}.{name}")
        if spec is not None:
            tree = ast.parse(Path(spec.origin).read_text())
            modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
            if any(module.split(".")[0] == "triton" for module in modules):
                importing.add(name)
    assert importing and backends.triton_backends(dag) == importing
    assert backends.triton_backends(scan) and not backends.triton_backends(grid)
    assert backends.skip_reason(dag, next(iter(importing)), torch.device("cpu")) == "needs CUDA"
    assert all(backends.skip_reason(grid, name, torch.device("cpu")) is None for name in grid.BACKENDS)


def benchmark_sources():
    for path in sorted(BENCHMARKS.rglob("*.py")):
        if path.relative_to(BENCHMARKS).parts[0].removesuffix(".py") not in OTHERS:
            yield path


def test_no_benchmark_names_plstm_dag_backends():
    """No tuple, list or set of backend names and no ``backend == "name"`` in benchmarks/: such code would
    have to change with the registry."""
    names = set(dag.BACKENDS)
    found = []
    for path in benchmark_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                strings = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                if strings & names:
                    found.append(f"{path.name}:{node.lineno}: {sorted(strings & names)}")
            if isinstance(node, ast.Compare) and any(
                isinstance(e, ast.Constant) and e.value in names - {"auto"} for e in [node.left, *node.comparators]
            ):
                found.append(f"{path.name}:{node.lineno}: comparison with a backend name")
    assert found == []


def test_cpu_backends_are_timed_on_the_cpu_only():
    assert "compiled" in dag.CPU_BACKENDS
    assert backends.skip_reason(dag, "compiled", torch.device("cpu")) is None
    assert "CPU code" in backends.skip_reason(dag, "compiled", torch.device("cuda"))
    assert "compiled" in backends.timed(dag, torch.device("cpu"))
    assert "compiled" not in backends.timed(dag, torch.device("cuda"))
