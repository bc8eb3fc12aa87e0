"""Item ``dag``: forward+backward of every ``plstm_dag`` backend of the registry and of ``GINConv`` on NCI
molecules and LRGB peptides, with the graph statistics a rule for ``backend="auto"`` reads."""

import time
from pathlib import Path

import torch

from plstm_geometric.functional import dag

from .. import backends
from ..data import load_graphs
from .recorder import ItemRun, compared, error_summary, free_memory, leaves

GATES = ("source", "transition", "mark", "direct")


def dag_workloads(quick: bool) -> list[tuple[str, str, int]]:
    """``(label, file of benchmarks.data, graphs)`` of each batch."""
    if quick:
        return [("nci", "nci1024", 16), ("peptides", "peptides64", 2)]
    return [("nci", "nci1024", 128), ("nci", "nci1024", 1024), ("peptides", "peptides64", 64)]


def item_dag(run: ItemRun, out: Path) -> str:
    heads, channels = (4, 4) if run.quick else (4, 16)
    run.info("heads", heads)
    run.info("channels", channels)
    for label, name, count in dag_workloads(run.quick):
        run.check_time()
        data = load_graphs(name, count, run.device)
        dag_workload(run, f"{label}{count}", data, heads, channels)
        free_memory()
    return "ok"


def dag_workload(run: ItemRun, workload: str, data, heads: int, channels: int) -> None:
    """Every ``plstm_dag`` backend and GINConv (hidden ``heads * channels``) on one batch."""
    from torch_geometric.nn import GINConv

    from plstm_geometric.graph import build_plan, dagify, line_graph

    repeats, warmup = (1, 1) if run.quick else (10, 2)
    start = time.perf_counter()
    edge_index = dagify(data.edge_index, data.num_nodes)
    line_edge_index = line_graph(edge_index, data.num_nodes, "P")
    plan = build_plan(edge_index, line_edge_index, data.num_nodes)
    run.synchronize()
    run.info(workload, graph_statistics(plan, data, edge_index, line_edge_index, time.perf_counter() - start))
    generator = torch.Generator().manual_seed(0)
    num_nodes, num_edges, num_line = data.num_nodes, edge_index.size(1), line_edge_index.size(1)
    shapes = {name: (num_nodes, heads, channels) for name in ("query", "key", "value")}
    shapes.update(source=(num_edges, heads), transition=(num_line, heads), mark=(num_edges, heads))
    shapes.update(direct=(num_nodes, heads))
    inputs = leaves(generator, run.device, shapes, gates=GATES)
    reference, reference_out = backends.reference(dag), None
    for backend in backends.DAG_BACKENDS:
        reason = backends.skip_reason(dag, backend, run.device)
        if reason:
            run.skip(workload, backend, "fwd_bwd_ms", "ms", reason)
            continue

        def forward(backend=backend):
            return dag.plstm_dag(
                **inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend=backend
            )

        def step(forward=forward):
            forward().sum().backward()

        extra, reference_out = compared(forward, backend, reference, reference_out)
        run.timed(workload, backend, step, repeats, warmup, memory=True, **extra)
    hidden = heads * channels
    gin = GINConv(
        torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden))
    ).to(run.device)
    x = torch.randn(num_nodes, hidden, generator=generator).to(run.device).requires_grad_()

    def gin_step():
        gin(x, data.edge_index).sum().backward()

    run.timed(workload, f"GINConv({hidden})", gin_step, repeats, warmup, memory=True)


def graph_statistics(plan, data, edge_index, line_edge_index, plan_seconds) -> dict:
    """What a backend rule can read: sizes, levels, component layout, contracted levels, auto's pick."""
    stats = {
        "graphs": int(data.num_graphs),
        "nodes": int(data.num_nodes),
        "dag_edges": int(edge_index.size(1)),
        "line_edges": int(line_edge_index.size(1)),
        "plan_s": round(plan_seconds, 4),
    }
    readers = {
        "levels": lambda: plan.num_levels,
        "max_component_edges": lambda: plan.layout.max_edges,
        "padded_edges": lambda: plan.layout.padded_edges,
        "contracted_levels": lambda: plan.chains.num_levels,
        "auto_backend": lambda: dag.choose_backend(plan),
    }
    for key, read in readers.items():
        try:
            value = read()
            stats[key] = value if isinstance(value, str) else int(value)
        except Exception as error:
            stats[key] = f"error: {error_summary(error)}"
    return stats
