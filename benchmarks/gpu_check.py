"""One prepared check that measures every CUDA path of plstm_geometric in one short run.

    python -m benchmarks.gpu_check --out DIR                          # on a CUDA machine: the full check
    python -m benchmarks.gpu_check --out DIR --device cpu --quick     # small sizes, the CI smoke run
    python -m benchmarks.gpu_check --out DIR --items dag grid         # rerun some items only

It needs torch, torch_geometric, triton (for the Triton paths) and pytest (for ``gpu_tests``); no ogb, no
rdkit, no network, and it installs nothing. The
molecule and peptide batches are read from ``benchmarks/gpu_data/`` (built by ``benchmarks.make_gpu_data``).

Items, in order, with their time caps on the full run (seconds):

============  ====  =====================================================================================
item          cap   what it measures
============  ====  =====================================================================================
gpu_tests     140   ``python -m pytest -m gpu -q`` as a subprocess: pass / fail / error counts, output tail
dag            70   forward+backward of every ``plstm_dag`` backend (levels, parallel, chains, fused) and
                    PyG ``GINConv`` of the same width (hidden 64 = 4 heads x 16) on 128 and 1,024 NCI
                    molecules and 64 LRGB peptides; CUDA peak memory; each backend's max deviation from
                    ``levels``
grid           40   ``plstm_grid`` forward+backward, one sweep, 24x24 grid, batch 64, 3 heads, K = V = 64,
                    backends chunkwise, wavefront and dag, each with its CUDA peak memory
chain          50   a 100,000-node chain through ``plstm_dag``: plan build, ``levels`` vs ``chains``
scan           35   ``linear_recurrence`` torch vs triton (B = 1, T = 65,536, D = 32, forward and
                    forward+backward) and the forward scan's bandwidth against ``clone`` at B*T*D = 2^28
lstm           25   ``GILRLSTM`` vs ``torch.nn.LSTM`` (cuDNN), 32 -> 32 channels, batch 1, T = 16,384:
                    steps per second, forward and forward+backward
training       40   forward+backward+AdamW steps of ``PLSTMGraphModel`` (128 NCI molecules) and
                    ``PLSTMVis`` (32 random 32x32 images)
============  ====  =====================================================================================

The caps add up to 400 s; with the start of each item's process the whole run stays under 8 minutes on an
H100 (``--budget``, default 460 s, also bounds the total: an item that would start past it is recorded as
``skipped: cap``). ``--cap NAME=SECONDS`` changes one cap.

Caps are enforced twice: cooperatively (repeats stop and remaining measurements are skipped once an item's
deadline passes) and hard. On CUDA each item runs in its own process (``--isolate``, the default there), so
a kernel fault that poisons the CUDA context, a crash or a hang costs that item only; the process is killed
``KILL_GRACE_S`` after its cap. In-process (the default on CPU, where starting a process costs seconds) the
hard cap is a ``SIGALRM``.

Output: ``DIR/gpu_check.json`` and ``DIR/gpu_check.md``, rewritten (atomically) after every measurement, so
a run cut short leaves everything it measured. The header records device, versions (torch, torch_geometric,
triton, CUDA, cuDNN), git commit (``--commit`` overrides; ``unknown`` outside a git checkout) and date.
Every measurement is one row ``{workload, method, metric, value, unit, status, ...}`` of its item; the
``dag`` item's ``info`` holds each workload's graph statistics (nodes, edges, levels, component sizes,
contracted levels, the backend ``auto`` picks), so that a rule for ``backend="auto"`` can be read off the
rows. Item status is ``ok``, ``error`` (with the exception and a traceback tail), ``partial: cap``,
``skipped: cap``, ``skipped: no CUDA``, or for ``gpu_tests`` ``tests failed``; a row's status is ``ok``,
``error: ...`` or ``skipped: ...``.

Timing: CUDA events on CUDA (warm-up first, then the median of repeats, each repeat synchronised),
``time.perf_counter`` on CPU; repeats stop early once one measurement's runs add up to ``ROW_BUDGET_S``.
Peak memory is ``torch.cuda.max_memory_allocated`` over one call after a reset (it includes the inputs;
``allocated_before_mib`` says how much of it they are).

``--quick`` runs the same code with small sizes and one repeat (the ``gpu_tests`` item is skipped without
CUDA). Off CUDA the Triton paths (``plstm_dag`` backend ``fused``, ``linear_recurrence`` backend
``triton``) are recorded as ``skipped: needs CUDA``: Triton's CPU interpreter would take minutes at any
useful size, times nothing about the kernels, and the kernels' correctness under the interpreter is
covered by the test suite.
"""

import argparse
import datetime
import gc
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "gpu_data"
SCHEMA = 1

#: Item names and their caps (seconds) on a full run; quick runs cap every item at QUICK_CAP_S.
CAPS = {"gpu_tests": 140, "dag": 70, "grid": 40, "chain": 50, "scan": 35, "lstm": 25, "training": 40}
QUICK_CAP_S = 30
BUDGET_S = 460
QUICK_BUDGET_S = 150
#: Seconds an isolated item's process may run past its cap before it is killed.
KILL_GRACE_S = 10
POLL_S = 1.0
#: An item is not started with less time than this left in the run's budget.
MIN_ITEM_S = 1.0
#: Repeats of one measurement stop once its timed runs add up to this many seconds (at least one run).
ROW_BUDGET_S = 3.0

DAG_BACKENDS = ("levels", "parallel", "chains", "fused")
GRID_BACKENDS = ("chunkwise", "wavefront", "dag")


class CapReached(BaseException):
    """An item ran out of time. A BaseException, so that per-measurement ``except Exception`` lets it pass."""


def error_summary(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}"


def traceback_tail(error: BaseException, lines: int = 12) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).splitlines()[-lines:]


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` so that a reader (or a run killed mid-write) never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# ---------------------------------------------------------------------------------------------------------
# One item's run: the rows it measured, its deadline and its timing helpers.


class ItemRun:
    def __init__(self, name: str, device: torch.device, quick: bool, deadline: float, on_change):
        self.name, self.device, self.quick, self.deadline = name, device, quick, deadline
        self.on_change = on_change
        self.record = {
            "name": name,
            "status": "running",
            "cap_s": None,
            "seconds": None,
            "rows": [],
            "info": {},
            "error": None,
            "traceback": None,
        }

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def time_left(self) -> float:
        return self.deadline - time.time()

    def check_time(self) -> None:
        if self.time_left() <= 0:
            raise CapReached()

    def add(self, workload: str, method: str, metric: str, value, unit: str, status: str = "ok", **extra):
        row = {
            "workload": workload,
            "method": method,
            "metric": metric,
            "value": None if value is None else float(value),
            "unit": unit,
            "status": status,
            **extra,
        }
        self.record["rows"].append(row)
        self.on_change(self.record)
        return row

    def info(self, key: str, value) -> None:
        self.record["info"][key] = value
        self.on_change(self.record)

    def synchronize(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def seconds(self, fn, repeats: int, warmup: int):
        """Median seconds of ``fn`` over at most ``repeats`` runs after ``warmup`` runs, and the number of
        runs timed (fewer once they add up to ``ROW_BUDGET_S`` or the deadline has passed; at least one)."""
        for _ in range(warmup):
            fn()
        self.synchronize()
        times = []
        for _ in range(repeats):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            if self.time_left() <= 0 or sum(times) > ROW_BUDGET_S:
                break
        return statistics.median(times), len(times)

    def peak_mib(self, fn):
        """``(max_memory_allocated, memory_allocated before)`` in MiB over one call of ``fn``; CUDA only."""
        gc.collect()
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        fn()
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) / 2**20, before / 2**20

    def timed(
        self,
        workload: str,
        method: str,
        fn,
        repeats: int,
        warmup: int,
        metric: str = "fwd_bwd_ms",
        memory: bool = False,
        **extra,
    ):
        """Time ``fn`` as one row (and its peak memory as a second row when ``memory``); a failure becomes
        an ``error: ...`` row and the item goes on. Returns the median seconds, or None."""
        self.check_time()
        try:
            seconds, runs = self.seconds(fn, repeats, warmup)
        except Exception as error:
            self.add(
                workload,
                method,
                metric,
                None,
                "ms",
                status=f"error: {error_summary(error)}",
                traceback=traceback_tail(error),
                **extra,
            )
            free_memory()
            return None
        self.add(workload, method, metric, seconds * 1e3, "ms", repeats=runs, **extra)
        if memory:
            self.memory(workload, method, fn)
        return seconds

    def memory(self, workload: str, method: str, fn) -> None:
        if not self.cuda:
            self.add(workload, method, "peak_mib", None, "MiB", status="skipped: needs CUDA")
            return
        self.check_time()
        try:
            peak, before = self.peak_mib(fn)
        except Exception as error:
            self.add(workload, method, "peak_mib", None, "MiB", status=f"error: {error_summary(error)}")
            free_memory()
            return
        self.add(workload, method, "peak_mib", peak, "MiB", allocated_before_mib=round(before, 1))

    def guarded(self, workload: str, method: str, metric: str, unit: str, fn):
        """``fn()`` as a value row; a failure becomes an error row."""
        self.check_time()
        try:
            value = fn()
        except Exception as error:
            self.add(
                workload,
                method,
                metric,
                None,
                unit,
                status=f"error: {error_summary(error)}",
                traceback=traceback_tail(error),
            )
            free_memory()
            return None
        self.add(workload, method, metric, value, unit)
        return value

    def skip(self, workload: str, method: str, metric: str, unit: str, reason: str) -> None:
        self.add(workload, method, metric, None, unit, status=f"skipped: {reason}")


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def leaves(generator, device, shapes, gates=()):
    """Random leaf tensors requiring grad: unit normal, or sigmoid of a unit normal for names in ``gates``."""
    out = {}
    for name, shape in shapes.items():
        tensor = torch.randn(*shape, generator=generator)
        out[name] = (torch.sigmoid(tensor) if name in gates else tensor).to(device).requires_grad_()
    return out


def max_deviation(out, reference) -> float:
    return float((out.detach().double() - reference.detach().double()).abs().max())


# ---------------------------------------------------------------------------------------------------------
# Data shipped with the check.


def load_graphs(name: str, num_graphs=None, device="cpu"):
    """A PyG ``Data`` holding the first ``num_graphs`` graphs of ``gpu_data/<name>.pt`` as one batch
    (``x``, ``edge_index``, ``edge_attr`` int64, ``batch``, ``num_graphs``)."""
    from torch_geometric.data import Data

    stored = torch.load(DATA / f"{name}.pt", weights_only=True)
    counts = stored["num_nodes"].long()
    total = counts.numel()
    num_graphs = total if num_graphs is None else num_graphs
    if not 0 < num_graphs <= total:
        raise ValueError(f"num_graphs: expected 1 ... {total} for {name}, got {num_graphs}")
    nodes = int(counts[:num_graphs].sum())
    edges = int(stored["num_edges"][:num_graphs].long().sum())
    data = Data(
        x=stored["x"][:nodes].long(),
        edge_index=stored["edge_index"][:, :edges].long(),
        edge_attr=stored["edge_attr"][:edges].long(),
        batch=torch.repeat_interleave(torch.arange(num_graphs), counts[:num_graphs]),
    )
    data.num_graphs = num_graphs
    return data.to(device)


# ---------------------------------------------------------------------------------------------------------
# The items.


def item_gpu_tests(run: ItemRun, out: Path):
    if not run.cuda:
        return "skipped: no CUDA"
    log = out / "logs" / "gpu_tests_pytest.log"
    log.parent.mkdir(exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-q",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        "tests",
    ]
    run.info("command", " ".join(command[1:]))
    timeout = max(run.time_left() - 5, 1)
    status = "ok"
    with open(log, "w") as handle:
        try:
            returncode = subprocess.run(
                command, check=False, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            returncode, status = None, "partial: cap"
    text = log.read_text(errors="replace")
    run.info("returncode", returncode)
    run.info("output_tail", text[-4000:])
    summary = text.strip().splitlines()[-1] if text.strip() else ""
    counts = pytest_counts(summary)
    for key in ("passed", "failed", "error", "skipped", "deselected"):
        run.add("pytest -m gpu", "pytest", key, counts.get(key, 0), "tests")
    if status != "ok":
        return status
    if returncode == 0:
        return "ok"
    if counts.get("failed") or counts.get("error"):
        return "tests failed"
    # pytest missing, a usage error, no test collected: not a test result.
    run.record["error"] = f"pytest exited with status {returncode}: {summary[-300:]}"
    return "error"


def pytest_counts(summary: str) -> dict:
    """``{"passed": 18, "failed": 1, "error": 2, ...}`` from pytest's last line."""
    found = re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)", summary)
    return {word if word != "errors" else "error": int(number) for number, word in found}


def dag_workloads(quick: bool):
    if quick:
        return [("nci", 16), ("peptides", 2)]
    return [("nci", 128), ("nci", 1024), ("peptides", 64)]


def item_dag(run: ItemRun, out: Path):
    heads, channels = (4, 4) if run.quick else (4, 16)
    run.info("heads", heads)
    run.info("channels", channels)
    for source, count in dag_workloads(run.quick):
        run.check_time()
        data = load_graphs({"nci": "nci1024", "peptides": "peptides64"}[source], count, run.device)
        dag_workload(run, f"{source}{count}", data, heads, channels)
        free_memory()
    return "ok"


def dag_workload(run: ItemRun, workload: str, data, heads: int, channels: int) -> None:
    """Every ``plstm_dag`` backend and GINConv (hidden ``heads * channels``) on one batch."""
    from torch_geometric.nn import GINConv

    from plstm_geometric.functional import plstm_dag
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
    inputs = leaves(
        generator,
        run.device,
        {
            "query": (num_nodes, heads, channels),
            "key": (num_nodes, heads, channels),
            "value": (num_nodes, heads, channels),
            "source": (num_edges, heads),
            "transition": (num_line, heads),
            "mark": (num_edges, heads),
            "direct": (num_nodes, heads),
        },
        gates=("source", "transition", "mark", "direct"),
    )
    reference = None
    for backend in DAG_BACKENDS:
        if backend == "fused" and not run.cuda:
            run.skip(workload, backend, "fwd_bwd_ms", "ms", "needs CUDA")
            continue

        def forward(backend=backend):
            return plstm_dag(
                **inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend=backend
            )

        extra = {}
        try:
            with torch.no_grad():
                out_backend = forward()
            reference = out_backend if backend == "levels" else reference
            if reference is not None:
                extra["max_abs_diff_vs_levels"] = max_deviation(out_backend, reference)
            extra["finite"] = bool(torch.isfinite(out_backend).all())
        except Exception as error:
            extra["forward_error"] = error_summary(error)
        run.timed(
            workload, backend, lambda forward=forward: forward().sum().backward(), repeats, warmup, memory=True, **extra
        )
    hidden = heads * channels
    gin = GINConv(
        torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden))
    ).to(run.device)
    x = torch.randn(num_nodes, hidden, generator=generator).to(run.device).requires_grad_()
    run.timed(
        workload, f"GINConv({hidden})", lambda: gin(x, data.edge_index).sum().backward(), repeats, warmup, memory=True
    )


def graph_statistics(plan, data, edge_index, line_edge_index, plan_seconds):
    """What a backend rule can read: sizes, levels, component layout, contracted levels, auto's pick."""
    stats = {
        "graphs": int(data.num_graphs),
        "nodes": int(data.num_nodes),
        "dag_edges": int(edge_index.size(1)),
        "line_edges": int(line_edge_index.size(1)),
        "plan_s": round(plan_seconds, 4),
    }
    for key, read in (
        ("levels", lambda: plan.num_levels),
        ("max_component_edges", lambda: plan.layout.max_edges),
        ("padded_edges", lambda: plan.layout.padded_edges),
        ("contracted_levels", lambda: plan.chains.num_levels),
        ("auto_backend", lambda: auto_pick(plan)),
    ):
        try:
            value = read()
            stats[key] = value if isinstance(value, str) else int(value)
        except Exception as error:
            stats[key] = f"error: {error_summary(error)}"
    return stats


def auto_pick(plan) -> str:
    from plstm_geometric.functional import dag

    return dag.choose_backend(plan)


def item_grid(run: ItemRun, out: Path):
    from plstm_geometric.functional import plstm_grid
    from plstm_geometric.functional.grid import GATE_NAMES, GridGates

    batch, size, heads, channels = (2, 8, 3, 8) if run.quick else (64, 24, 3, 64)
    repeats, warmup = (1, 1) if run.quick else (5, 1)
    workload = f"B{batch} {size}x{size} H{heads} K=V={channels}"
    run.info(
        "workload",
        {
            "batch": batch,
            "X": size,
            "Y": size,
            "heads": heads,
            "key_dim": channels,
            "value_dim": channels,
            "sweeps": 1,
            "dtype": "float32",
        },
    )
    generator = torch.Generator().manual_seed(0)
    shapes = {name: (batch, size, size, heads, channels) for name in ("query", "key", "value")}
    shapes.update({name: (batch, size, size, heads) for name in GATE_NAMES})
    inputs = leaves(generator, run.device, shapes, gates=GATE_NAMES)
    reference = None
    for backend in GRID_BACKENDS:

        def forward(backend=backend):
            gates = GridGates(**{name: inputs[name] for name in GATE_NAMES})
            return plstm_grid(inputs["query"], inputs["key"], inputs["value"], gates, backend=backend)

        extra = {}
        try:
            with torch.no_grad():
                out_backend = forward()
            reference = out_backend if reference is None else reference
            extra["max_abs_diff_vs_chunkwise"] = max_deviation(out_backend, reference)
            extra["finite"] = bool(torch.isfinite(out_backend).all())
            del out_backend
        except Exception as error:
            extra["forward_error"] = error_summary(error)
        free_memory()
        run.timed(
            workload, backend, lambda forward=forward: forward().sum().backward(), repeats, warmup, memory=True, **extra
        )
        free_memory()
    return "ok"


def item_chain(run: ItemRun, out: Path):
    from plstm_geometric.functional import plstm_dag
    from plstm_geometric.graph import build_plan, line_graph

    num_nodes = 2_000 if run.quick else 100_000
    heads, channels = 1, 8
    generator = torch.Generator().manual_seed(0)

    def chain(nodes):
        edge_index = torch.stack([torch.arange(nodes - 1), torch.arange(1, nodes)]).to(run.device)
        line_edge_index = line_graph(edge_index, nodes)
        plan = build_plan(edge_index, line_edge_index, nodes)
        inputs = leaves(
            generator,
            run.device,
            {
                "query": (nodes, heads, channels),
                "key": (nodes, heads, channels),
                "value": (nodes, heads, channels),
                "source": (nodes - 1, heads),
                "transition": (nodes - 2, heads),
                "mark": (nodes - 1, heads),
                "direct": (nodes, heads),
            },
            gates=("source", "transition", "mark", "direct"),
        )

        def step(backend):
            plstm_dag(
                **inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend=backend
            ).sum().backward()

        return plan, step

    workload = f"chain {num_nodes:,} nodes, H{heads} K=V={channels}"
    # Warm both backends up on a short chain: a full-length warm-up of the level sweep would cost as much
    # as the measurement.
    _, warm_step = chain(100)
    for backend in ("chains", "levels"):
        warm_step(backend)
    run.synchronize()
    start = time.perf_counter()
    plan, step = chain(num_nodes)
    run.synchronize()
    run.add(workload, "line_graph + build_plan", "plan_s", time.perf_counter() - start, "s")
    run.info("levels", plan.num_levels)
    run.guarded(workload, "chain schedule", "contracted_levels", "levels", lambda: plan.chains.num_levels)
    run.timed(workload, "chains", lambda: step("chains"), repeats=1 if run.quick else 3, warmup=0 if run.quick else 1)
    run.timed(workload, "levels", lambda: step("levels"), repeats=1, warmup=0)
    return "ok"


def item_scan(run: ItemRun, out: Path):
    from plstm_geometric.functional import linear_recurrence

    length, channels = (2048, 32) if run.quick else (65536, 32)
    elements = 2**16 if run.quick else 2**28
    repeats, warmup = (1, 1) if run.quick else (10, 2)
    backends = ("torch", "triton")
    generator = torch.Generator().manual_seed(0)
    decay = torch.rand(1, length, channels, generator=generator).to(run.device).requires_grad_()
    impulse = torch.randn(1, length, channels, generator=generator).to(run.device).requires_grad_()
    workload = f"B1 T{length} D{channels}"
    with torch.no_grad():
        reference = linear_recurrence(decay, impulse, backend="torch")
    for backend in backends:
        if backend == "triton" and not run.cuda:
            for metric in ("fwd_ms", "fwd_bwd_ms"):
                run.skip(workload, backend, metric, "ms", "needs CUDA")
            continue
        extra = {}
        try:
            with torch.no_grad():
                extra["max_abs_diff_vs_torch"] = max_deviation(
                    linear_recurrence(decay, impulse, backend=backend), reference
                )
        except Exception as error:
            extra["forward_error"] = error_summary(error)

        def forward(backend=backend):
            with torch.no_grad():
                linear_recurrence(decay, impulse, backend=backend)

        run.timed(workload, backend, forward, repeats, warmup, metric="fwd_ms", **extra)
        run.timed(
            workload,
            backend,
            lambda backend=backend: linear_recurrence(decay, impulse, backend=backend).sum().backward(),
            repeats,
            warmup,
        )
    del decay, impulse, reference
    free_memory()

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
    for backend in backends:
        if backend == "triton" and not run.cuda:
            run.skip(workload, backend, "ms", "ms", "needs CUDA")
            continue

        def forward(backend=backend):
            linear_recurrence(decay, impulse, backend=backend)

        seconds = run.timed(workload, backend, forward, repeats, warmup, metric="ms")
        if seconds:
            run.add(workload, backend, "bandwidth", 12 * numel / seconds / 1e9, "GB/s", bytes_per_element=12)
    return "ok"


def item_lstm(run: ItemRun, out: Path):
    from plstm_geometric.nn import GILRLSTM

    length, channels = (256, 32) if run.quick else (16384, 32)
    repeats, warmup = (1, 1) if run.quick else (5, 1)
    workload = f"batch 1, T{length}, {channels}->{channels}"
    run.info("sequence_length", length)
    layers = {
        "GILRLSTM": GILRLSTM(channels, channels).to(run.device),
        "nn.LSTM (cuDNN)" if run.cuda else "nn.LSTM": torch.nn.LSTM(channels, channels, batch_first=True).to(
            run.device
        ),
    }
    x = torch.randn(1, length, channels, generator=torch.Generator().manual_seed(0)).to(run.device)
    x.requires_grad_()
    for name, layer in layers.items():

        def forward(layer=layer):
            with torch.no_grad():
                layer(x)

        def training(layer=layer):
            out = layer(x)
            (out[0] if isinstance(out, tuple) else out).sum().backward()

        for metric, fn in (("fwd", forward), ("fwd_bwd", training)):
            seconds = run.timed(workload, name, fn, repeats, warmup, metric=f"{metric}_ms")
            if seconds:
                run.add(workload, name, f"{metric}_steps_per_s", length / seconds, "steps/s")
    return "ok"


def item_training(run: ItemRun, out: Path):
    # Imported here: a failure to import the models (e.g. a missing optional dependency) is this item's error.
    from plstm_geometric.models import PLSTMGraphModel, PLSTMVis

    repeats, warmup = (1, 1) if run.quick else (5, 2)
    graphs, hidden, layers = (16, 16, 1) if run.quick else (128, 64, 2)
    data = load_graphs("nci1024", graphs, run.device)
    model = PLSTMGraphModel(
        hidden, 10, layers, heads=4, encoder="linear", in_channels=data.x.size(1), edge_dim=data.edge_attr.size(1)
    ).to(run.device)
    target = torch.randn(graphs, 10, generator=torch.Generator().manual_seed(0)).to(run.device)
    training_rows(
        run,
        f"nci{graphs}, hidden {hidden}, {layers} blocks, 4 heads",
        "PLSTMGraphModel",
        model,
        lambda: torch.nn.functional.mse_loss(model(data), target),
        repeats,
        warmup,
    )

    images, side, patch, dim, depth = (2, 8, 2, 12, 1) if run.quick else (32, 32, 4, 96, 2)
    vis = PLSTMVis(side, patch, 3, 10, dim=dim, heads=3, depth=depth).to(run.device)
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(images, 3, side, side, generator=generator).to(run.device)
    labels = torch.randint(0, 10, (images,), generator=generator).to(run.device)
    training_rows(
        run,
        f"{images} images {side}x{side}, patch {patch}, dim {dim}, depth {depth}, 3 heads",
        "PLSTMVis",
        vis,
        lambda: torch.nn.functional.cross_entropy(vis(pixels), labels),
        repeats,
        warmup,
    )
    return "ok"


def training_rows(run: ItemRun, workload: str, method: str, model, loss_fn, repeats: int, warmup: int) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())

    run.timed(workload, method, step, repeats, warmup, metric="step_ms", memory=True)
    if losses:
        run.info(f"{method} losses", [float(loss) for loss in losses])


ITEMS = {
    "gpu_tests": item_gpu_tests,
    "dag": item_dag,
    "grid": item_grid,
    "chain": item_chain,
    "scan": item_scan,
    "lstm": item_lstm,
    "training": item_training,
}


# ---------------------------------------------------------------------------------------------------------
# Running items in-process or in their own process, and writing the report.


def run_item_here(name: str, device: torch.device, quick: bool, deadline: float, out: Path, on_change) -> dict:
    """Run one item in this process; its cap is enforced by the deadline and, in the main thread, SIGALRM."""
    run = ItemRun(name, device, quick, deadline, on_change)
    start = time.time()
    alarm = hasattr(signal, "SIGALRM") and _in_main_thread()
    if alarm:
        previous = signal.signal(signal.SIGALRM, _raise_cap)
        signal.setitimer(signal.ITIMER_REAL, max(deadline - time.time(), 0.01))
    try:
        run.record["status"] = ITEMS[name](run, out)
    except CapReached:
        run.record["status"] = "partial: cap" if run.record["rows"] else "skipped: cap"
    except Exception as error:
        run.record["status"] = "error"
        run.record["error"] = error_summary(error)
        run.record["traceback"] = traceback_tail(error)
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        run.record["seconds"] = round(time.time() - start, 2)
        free_memory()
    on_change(run.record)
    return run.record


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_cap(signum, frame):
    raise CapReached()


def run_item_isolated(name: str, device: torch.device, quick: bool, deadline: float, out: Path, on_change) -> dict:
    """Run one item in a child process (``--child``), merging its partial record as it grows; the child is
    killed ``KILL_GRACE_S`` after the deadline."""
    partial = out / "logs" / f"{name}.partial.json"
    log = out / "logs" / f"{name}.log"
    partial.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "benchmarks.gpu_check",
        "--child",
        name,
        "--device",
        str(device),
        "--out",
        str(out),
        "--deadline",
        repr(deadline),
    ] + (["--quick"] if quick else [])
    start = time.time()
    record = {"name": name, "status": "running", "rows": [], "info": {}, "error": None, "traceback": None}
    killed = False
    with open(log, "w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while True:
                try:
                    process.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    record = _read_partial(partial, record)
                    on_change(record)
                    if time.time() > deadline + KILL_GRACE_S:
                        _kill_group(process)
                        killed = True
                        break
        except BaseException:
            # The child runs in its own session, out of reach of a Ctrl-C sent to this one.
            _kill_group(process)
            raise
    record = _read_partial(partial, record)
    if killed:
        record["status"] = "partial: cap" if record["rows"] else "skipped: cap"
    elif record["status"] == "running":
        record["status"] = "error"
        record["error"] = f"item process exited with status {process.returncode} before finishing"
        record["traceback"] = log.read_text(errors="replace").splitlines()[-12:]
    record["seconds"] = round(time.time() - start, 2)
    on_change(record)
    return record


def _read_partial(path: Path, fallback: dict) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return fallback


def _kill_group(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def header(device: torch.device, quick: bool, commit, caps: dict, budget: float, isolate: bool) -> dict:
    try:
        import torch_geometric

        pyg = torch_geometric.__version__
    except Exception as error:
        pyg = f"unavailable ({error_summary(error)})"
    try:
        import triton

        triton_version = triton.__version__
    except Exception:
        triton_version = None
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        name = (
            f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB, "
            f"capability {properties.major}.{properties.minor}"
        )
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"
    return {
        "device": name,
        "device_type": device.type,
        "torch": torch.__version__,
        "torch_geometric": pyg,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "commit": commit or git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "isolated_items": isolate,
        "caps_s": caps,
        "budget_s": budget,
    }


def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    if result.returncode != 0 or not commit:
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return commit + (" (uncommitted changes)" if dirty else "")


class Report:
    """The JSON and markdown files, rewritten whole after every change."""

    def __init__(self, out: Path, head: dict, names):
        self.out = out
        self.data = {
            "schema": SCHEMA,
            "header": head,
            "items": [{"name": name, "status": "pending", "rows": []} for name in names],
        }

    def update(self, record: dict) -> None:
        items = self.data["items"]
        index = next(i for i, item in enumerate(items) if item["name"] == record["name"])
        items[index] = {**record, "cap_s": self.data["header"]["caps_s"][record["name"]]}
        self.flush()

    def flush(self) -> None:
        write_atomic(self.out / "gpu_check.json", json.dumps(self.data, indent=1) + "\n")
        write_atomic(self.out / "gpu_check.md", self.markdown())

    def markdown(self) -> str:
        head = self.data["header"]
        lines = [
            "# plstm_geometric GPU check",
            "",
            (
                f"{head['date']} · {head['device']} · torch {head['torch']} · torch_geometric "
                f"{head['torch_geometric']} · triton {head['triton']} · CUDA {head['cuda']} · "
                f"cuDNN {head['cudnn']} · commit {head['commit']} · mode {head['mode']}"
            ),
            "",
            "Caps (s): "
            + ", ".join(f"{name} {cap:g}" for name, cap in head["caps_s"].items())
            + f"; budget {head['budget_s']:g} s.",
            "",
            "| item | status | s | workload | method | metric | value | unit | note |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for item in self.data["items"]:
            seconds = item.get("seconds")
            prefix = f"| {item['name']} | {item['status']} | {'' if seconds is None else seconds} "
            if item.get("error"):
                lines.append(prefix + f"| | | | | | {_cell(item['error'])} |")
            if not item["rows"] and not item.get("error"):
                lines.append(prefix + "| | | | | | |")
            for row in item["rows"]:
                note = (
                    row["status"]
                    if row["status"] != "ok"
                    else ", ".join(
                        f"{key} {_number(value)}"
                        for key, value in row.items()
                        if key not in ("workload", "method", "metric", "value", "unit", "status", "traceback")
                    )
                )
                lines.append(
                    prefix + f"| {row['workload']} | {row['method']} | {row['metric']} | "
                    f"{_number(row['value'])} | {row['unit']} | {_cell(note)} |"
                )
        return "\n".join(lines) + "\n"


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def parse_caps(pairs, quick: bool) -> dict:
    caps = {name: QUICK_CAP_S if quick else cap for name, cap in CAPS.items()}
    for pair in pairs or ():
        name, _, seconds = pair.partition("=")
        if name not in CAPS:
            raise ValueError(f"--cap: expected NAME=SECONDS with NAME one of {sorted(CAPS)}, got {pair!r}")
        try:
            caps[name] = float(seconds)
        except ValueError:
            raise ValueError(f"--cap: expected a number of seconds, got {pair!r}") from None
    return caps


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, gpu_check.md, logs/")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (the CI smoke run)")
    parser.add_argument("--items", nargs="+", choices=list(CAPS), default=list(CAPS), help="items to run, in order")
    parser.add_argument("--cap", action="append", metavar="NAME=SECONDS", help="change one item's cap")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"seconds for the whole run (default {BUDGET_S}, quick {QUICK_BUDGET_S})",
    )
    isolation = parser.add_mutually_exclusive_group()
    isolation.add_argument(
        "--isolate",
        dest="isolate",
        action="store_true",
        default=None,
        help="run each item in its own process (default on CUDA)",
    )
    isolation.add_argument(
        "--no-isolate", dest="isolate", action="store_false", help="run every item in this process (default on CPU)"
    )
    parser.add_argument("--commit", default=None, help="the commit to record (default: git rev-parse HEAD)")
    parser.add_argument("--child", choices=list(CAPS), help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child_main(args) -> None:
    """Run one item for an isolating parent, writing the record to ``logs/<item>.partial.json`` as it grows."""
    partial = args.out / "logs" / f"{args.child}.partial.json"
    run_item_here(
        args.child,
        torch.device(args.device),
        args.quick,
        args.deadline,
        args.out,
        lambda record: write_atomic(partial, json.dumps(record) + "\n"),
    )


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device: expected a device torch can use, got 'cuda' (torch.cuda.is_available() is False)")
    if args.quick and args.device == "cpu":
        torch.set_num_threads(1)  # quick CPU runs share CI machines; one thread avoids OpenMP wake-up stalls
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    if args.child:
        child_main(args)
        return {}
    device = torch.device(args.device)
    caps = parse_caps(args.cap, args.quick)
    budget = args.budget if args.budget is not None else (QUICK_BUDGET_S if args.quick else BUDGET_S)
    isolate = device.type == "cuda" if args.isolate is None else args.isolate
    report = Report(args.out, header(device, args.quick, args.commit, caps, budget, isolate), args.items)
    report.flush()
    end = time.time() + budget
    runner = run_item_isolated if isolate else run_item_here
    for name in args.items:
        deadline = min(time.time() + caps[name], end)
        if deadline - time.time() < MIN_ITEM_S:
            report.update(
                {
                    "name": name,
                    "status": "skipped: cap",
                    "rows": [],
                    "info": {},
                    "seconds": 0,
                    "error": "the run's budget was spent before this item",
                    "traceback": None,
                }
            )
            continue
        try:
            record = runner(name, device, args.quick, deadline, args.out, report.update)
        except KeyboardInterrupt:
            item = next(item for item in report.data["items"] if item["name"] == name)
            report.update({**item, "status": "interrupted"})
            raise
        print(f"{name}: {record['status']} ({record['seconds']} s, {len(record['rows'])} rows)", flush=True)
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return report.data


if __name__ == "__main__":
    main()
