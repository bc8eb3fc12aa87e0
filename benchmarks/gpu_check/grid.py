"""Item ``grid``: ``plstm_grid`` forward+backward of every backend of the registry, one sweep, with peak
memory."""

from pathlib import Path

import torch

from plstm_geometric.functional import grid

from .. import backends
from .recorder import ItemRun, compared, free_memory, leaves


def item_grid(run: ItemRun, out: Path) -> str:
    from plstm_geometric.functional.grid import GATE_NAMES, GridGates

    batch, size, heads, channels = (2, 8, 3, 8) if run.quick else (64, 24, 3, 64)
    repeats, warmup = (1, 1) if run.quick else (5, 1)
    workload = f"B{batch} {size}x{size} H{heads} K=V={channels}"
    shape = {"batch": batch, "X": size, "Y": size, "heads": heads, "key_dim": channels, "value_dim": channels}
    run.info("workload", {**shape, "sweeps": 1, "dtype": "float32"})
    generator = torch.Generator().manual_seed(0)
    shapes = {name: (batch, size, size, heads, channels) for name in ("query", "key", "value")}
    shapes.update({name: (batch, size, size, heads) for name in GATE_NAMES})
    inputs = leaves(generator, run.device, shapes, gates=GATE_NAMES)
    reference, reference_out = backends.reference(grid), None
    for backend in backends.timed(grid, run.device):

        def forward(backend=backend):
            gates = GridGates(**{name: inputs[name] for name in GATE_NAMES})
            return grid.plstm_grid(inputs["query"], inputs["key"], inputs["value"], gates, backend=backend)

        def step(forward=forward):
            forward().sum().backward()

        extra, reference_out = compared(forward, backend, reference, reference_out)
        free_memory()
        run.timed(workload, backend, step, repeats, warmup, memory=True, **extra)
        free_memory()
    return "ok"
