"""Item ``scan``: every ``linear_recurrence`` backend at batch 1 and a long sequence, and the forward scan's
memory bandwidth against ``clone``."""

import math
from pathlib import Path

import torch

from plstm_geometric.functional import scan

from .. import backends
from .recorder import ItemRun, error_summary, free_memory, max_deviation


def item_scan(run: ItemRun, out: Path) -> str:
    repeats, warmup = (1, 1) if run.quick else (10, 2)
    long_sequence(run, 2048 if run.quick else 65536, repeats, warmup)
    free_memory()  # the long sequence's tensors went with its function
    bandwidth(run, 2**16 if run.quick else 2**28, repeats, warmup)
    return "ok"


def long_sequence(run: ItemRun, length: int, repeats: int, warmup: int, channels: int = 32) -> None:
    """Forward and forward+backward at batch 1, each backend against the reference's output."""
    generator = torch.Generator().manual_seed(0)
    decay = torch.rand(1, length, channels, generator=generator).to(run.device).requires_grad_()
    impulse = torch.randn(1, length, channels, generator=generator).to(run.device).requires_grad_()
    workload = f"B1 T{length} D{channels}"
    reference = backends.reference(scan)
    with torch.no_grad():
        reference_out = scan.linear_recurrence(decay, impulse, backend=reference)
    for backend in backends.SCAN_BACKENDS:
        reason = backends.skip_reason(scan, backend, run.device)
        if reason:
            for metric in ("fwd_ms", "fwd_bwd_ms"):
                run.skip(workload, backend, metric, "ms", reason)
            continue
        extra = {}
        try:
            with torch.no_grad():
                out_backend = scan.linear_recurrence(decay, impulse, backend=backend)
            extra[f"max_abs_diff_vs_{reference}"] = max_deviation(out_backend, reference_out)
        except Exception as error:
            extra["forward_error"] = error_summary(error)

        def forward(backend=backend):
            with torch.no_grad():
                scan.linear_recurrence(decay, impulse, backend=backend)

        def training(backend=backend):
            scan.linear_recurrence(decay, impulse, backend=backend).sum().backward()

        run.timed(workload, backend, forward, repeats, warmup, metric="fwd_ms", **extra)
        run.timed(workload, backend, training, repeats, warmup)


def bandwidth(run: ItemRun, elements: int, repeats: int, warmup: int) -> None:
    """The forward scan reads decay and impulse and writes the state (12 bytes per float32 element);
    ``clone`` reads and writes once (8 bytes)."""
    batch, width = 4, 64
    steps = elements // (batch * width)
    workload = f"[{batch}, {steps}, {width}] float32 = 2^{int(math.log2(elements))} elements"
    run.check_time()
    decay = torch.rand(batch, steps, width, device=run.device)
    impulse = torch.randn(batch, steps, width, device=run.device)
    numel = decay.numel()
    seconds = run.timed(workload, "clone", impulse.clone, repeats, warmup, metric="ms")
    if seconds:
        run.add(workload, "clone", "bandwidth", 8 * numel / seconds / 1e9, "GB/s", bytes_per_element=8)
    for backend in backends.SCAN_BACKENDS:
        reason = backends.skip_reason(scan, backend, run.device)
        if reason:
            run.skip(workload, backend, "ms", "ms", reason)
            continue

        def forward(backend=backend):
            scan.linear_recurrence(decay, impulse, backend=backend)

        seconds = run.timed(workload, backend, forward, repeats, warmup, metric="ms")
        if seconds:
            run.add(workload, backend, "bandwidth", 12 * numel / seconds / 1e9, "GB/s", bytes_per_element=12)
