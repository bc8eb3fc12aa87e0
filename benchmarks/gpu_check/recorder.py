"""One item's record: the rows it measured, its deadline, and measurements on the harness that turn a
failure into an error row instead of ending the item."""

import gc
import time
import traceback

import torch

from ..harness import check_deadline, measure, peak_memory

#: Repeats of one measurement stop once its timed runs add up to this many seconds (at least one run).
ROW_BUDGET_S = 3.0


def error_summary(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}"


def traceback_tail(error: BaseException, lines: int = 12) -> list[str]:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).splitlines()[-lines:]


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def new_record(name: str, status: str = "running", **fields) -> dict:
    record = {"name": name, "status": status, "cap_s": None, "seconds": None, "rows": [], "info": {}}
    return {**record, "error": None, "traceback": None, **fields}


class ItemRun:
    """What an item function gets: its device, mode and deadline, and ``add``/``info`` to record into
    ``record`` (``on_change`` sees every change, so that a cut run keeps what was measured)."""

    def __init__(self, name: str, device: torch.device, quick: bool, deadline: float, on_change):
        self.name, self.device, self.quick, self.deadline = name, device, quick, deadline
        self.on_change = on_change
        self.record = new_record(name)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def time_left(self) -> float:
        return self.deadline - time.time()

    def check_time(self) -> None:
        check_deadline(self.deadline)

    def synchronize(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def add(self, workload: str, method: str, metric: str, value, unit: str, status: str = "ok", **extra) -> dict:
        row = {"workload": workload, "method": method, "metric": metric}
        row.update(value=None if value is None else float(value), unit=unit, status=status, **extra)
        self.record["rows"].append(row)
        self.on_change(self.record)
        return row

    def info(self, key: str, value) -> None:
        self.record["info"][key] = value
        self.on_change(self.record)

    def skip(self, workload: str, method: str, metric: str, unit: str, reason: str) -> None:
        self.add(workload, method, metric, None, unit, status=f"skipped: {reason}")

    def failed(self, workload: str, method: str, metric: str, unit: str, error: Exception) -> None:
        status = f"error: {error_summary(error)}"
        self.add(workload, method, metric, None, unit, status=status, traceback=traceback_tail(error))
        free_memory()

    def timed(self, workload, method, fn, repeats, warmup, metric="fwd_bwd_ms", memory=False, **extra):
        """Time ``fn`` (:func:`~benchmarks.harness.measure`) as one row, and its peak memory as a second row
        when ``memory``. Returns the median seconds, or None after a failure."""
        self.check_time()
        try:
            timing = measure(fn, self.device, repeats, warmup, budget_s=ROW_BUDGET_S, deadline=self.deadline)
        except Exception as error:
            self.failed(workload, method, metric, "ms", error)
            return None
        self.add(workload, method, metric, timing.median * 1e3, "ms", repeats=timing.runs, **extra)
        if memory:
            self.memory(workload, method, fn)
        return timing.median

    def memory(self, workload: str, method: str, fn) -> None:
        """CUDA's allocator peak of one call of ``fn`` (the inputs included: ``allocated_before_mib``)."""
        if not self.cuda:
            self.skip(workload, method, "peak_mib", "MiB", "needs CUDA")
            return
        self.check_time()
        try:
            peak = peak_memory(fn, self.device)
        except Exception as error:
            self.failed(workload, method, "peak_mib", "MiB", error)
            return
        self.add(workload, method, "peak_mib", peak.total_mib, "MiB", allocated_before_mib=round(peak.before_mib, 1))

    def guarded(self, workload: str, method: str, metric: str, unit: str, fn):
        """``fn()`` as a value row; a failure becomes an error row. Returns the value, or None."""
        self.check_time()
        try:
            value = fn()
        except Exception as error:
            self.failed(workload, method, metric, unit, error)
            return None
        self.add(workload, method, metric, value, unit)
        return value


def leaves(generator: torch.Generator, device, shapes: dict, gates=()) -> dict:
    """Random leaf tensors requiring grad: unit normal, or sigmoid of a unit normal for names in ``gates``."""
    out = {}
    for name, shape in shapes.items():
        tensor = torch.randn(*shape, generator=generator)
        out[name] = (torch.sigmoid(tensor) if name in gates else tensor).to(device).requires_grad_()
    return out


def max_deviation(out, reference) -> float:
    return float((out.detach().double() - reference.detach().double()).abs().max())


def compared(forward, backend: str, reference: str, reference_out) -> tuple[dict, object]:
    """Row fields of one backend's no-grad ``forward()``: whether it is finite and its largest deviation from
    the output of the ``reference`` backend (``reference_out``, or this output when ``backend`` is the
    reference); and the reference output to keep."""
    extra = {}
    try:
        with torch.no_grad():
            out = forward()
        reference_out = out if backend == reference else reference_out
        if reference_out is not None:
            extra[f"max_abs_diff_vs_{reference}"] = max_deviation(out, reference_out)
        extra["finite"] = bool(torch.isfinite(out).all())
    except Exception as error:
        extra["forward_error"] = error_summary(error)
    return extra, reference_out
