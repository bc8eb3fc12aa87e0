"""The check's output: ``gpu_check.json`` and ``gpu_check.md``, rewritten whole after every change, and the
header that says where and on what they were measured."""

import datetime
import json
import platform
import subprocess
from pathlib import Path

import torch

from .recorder import error_summary

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = 1
ROW_FIELDS = ("workload", "method", "metric", "value", "unit", "status", "traceback")


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` so that a reader (or a run killed mid-write) never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def versions() -> dict:
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
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "torch": torch.__version__,
        "torch_geometric": pyg,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return (
            f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB, "
            f"capability {properties.major}.{properties.minor}"
        )
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"


def header(device: torch.device, quick: bool, commit, caps: dict, budget: float, isolate: bool) -> dict:
    return {
        "device": device_name(device),
        "device_type": device.type,
        **versions(),
        "python": platform.python_version(),
        "commit": commit or git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "isolated_items": isolate,
        "caps_s": caps,
        "budget_s": budget,
    }


def git_commit() -> str:
    """``git rev-parse HEAD`` of the checkout, marked when it has uncommitted changes; ``unknown`` outside one."""

    def git(*args):
        return subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=10)

    try:
        result = git("rev-parse", "HEAD")
        commit = result.stdout.strip()
        if result.returncode != 0 or not commit:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" (uncommitted changes)" if dirty else "")


class Report:
    """The JSON and markdown files of one run, rewritten whole after every change."""

    def __init__(self, out: Path, head: dict, names):
        self.out = out
        items = [{"name": name, "status": "pending", "rows": []} for name in names]
        self.data = {"schema": SCHEMA, "header": head, "items": items}

    def item(self, name: str) -> dict:
        return next(item for item in self.data["items"] if item["name"] == name)

    def update(self, record: dict) -> None:
        items = self.data["items"]
        index = next(i for i, item in enumerate(items) if item["name"] == record["name"])
        items[index] = {**record, "cap_s": self.data["header"]["caps_s"][record["name"]]}
        self.flush()

    def flush(self) -> None:
        write_atomic(self.out / "gpu_check.json", json.dumps(self.data, indent=1) + "\n")
        write_atomic(self.out / "gpu_check.md", markdown(self.data))


def markdown(data: dict) -> str:
    head = data["header"]
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
    for item in data["items"]:
        seconds = item.get("seconds")
        prefix = f"| {item['name']} | {item['status']} | {'' if seconds is None else seconds} "
        if item.get("error"):
            lines.append(prefix + f"| | | | | | {_cell(item['error'])} |")
        if not item["rows"] and not item.get("error"):
            lines.append(prefix + "| | | | | | |")
        for row in item["rows"]:
            lines.append(
                prefix + f"| {row['workload']} | {row['method']} | {row['metric']} | "
                f"{_number(row['value'])} | {row['unit']} | {_cell(_note(row))} |"
            )
    return "\n".join(lines) + "\n"


def _note(row: dict) -> str:
    """A failed row's status, else its extra fields."""
    if row["status"] != "ok":
        return row["status"]
    return ", ".join(f"{key} {_number(value)}" for key, value in row.items() if key not in ROW_FIELDS)


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
