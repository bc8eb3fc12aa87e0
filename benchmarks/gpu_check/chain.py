"""Item ``chain``: a long chain through ``plstm_dag``: the plan build, and the backend ``"auto"`` picks for
it against the reference level sweep."""

import time
from pathlib import Path

import torch

from plstm_geometric.functional import dag

from .. import backends
from .recorder import ItemRun, leaves

GATES = ("source", "transition", "mark", "direct")


def chain(nodes: int, device, generator, heads: int = 1, channels: int = 8):
    """``(plan, step)``: the chain's plan and ``step(backend)``, one forward+backward."""
    from plstm_geometric.graph import build_plan, line_graph

    edge_index = torch.stack([torch.arange(nodes - 1), torch.arange(1, nodes)]).to(device)
    line_edge_index = line_graph(edge_index, nodes)
    plan = build_plan(edge_index, line_edge_index, nodes)
    shapes = {name: (nodes, heads, channels) for name in ("query", "key", "value")}
    shapes.update(source=(nodes - 1, heads), transition=(nodes - 2, heads), mark=(nodes - 1, heads))
    shapes.update(direct=(nodes, heads))
    inputs = leaves(generator, device, shapes, gates=GATES)

    def step(backend):
        out = dag.plstm_dag(
            **inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend=backend
        )
        out.sum().backward()

    return plan, step


def item_chain(run: ItemRun, out: Path) -> str:
    num_nodes = 2_000 if run.quick else 100_000
    generator = torch.Generator().manual_seed(0)
    workload = f"chain {num_nodes:,} nodes, H1 K=V=8"
    reference = backends.reference(dag)
    # Warm up on a short chain: a full-length warm-up of the level sweep would cost as much as the
    # measurement. The short chain also runs the plan build once before it is timed.
    short_plan, warm_step = chain(100, run.device, generator)
    warmed = {reference, dag.choose_backend(short_plan)}
    for backend in warmed:
        warm_step(backend)
    run.synchronize()
    start = time.perf_counter()
    plan, step = chain(num_nodes, run.device, generator)
    run.synchronize()
    run.add(workload, "line_graph + build_plan", "plan_s", time.perf_counter() - start, "s")
    run.info("levels", plan.num_levels)
    run.guarded(workload, "chain schedule", "contracted_levels", "levels", lambda: plan.chains.num_levels)
    picked = dag.choose_backend(plan)
    run.info("auto_backend", picked)
    if picked not in warmed:
        warm_step(picked)
    if picked != reference:
        repeats, warmup = (1, 0) if run.quick else (3, 1)
        run.timed(workload, picked, lambda: step(picked), repeats=repeats, warmup=warmup)
    # One run of the reference: it takes one step per level, seconds on a long chain.
    run.timed(workload, reference, lambda: step(reference), repeats=1, warmup=0)
    return "ok"
