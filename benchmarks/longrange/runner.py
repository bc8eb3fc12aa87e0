"""Runs a plan of long-range trainings one after another, each record written atomically once its run
finishes, so that an interrupted benchmark resumes where it stopped."""

import json
from pathlib import Path

import torch

from plstm_geometric.train.files import git_commit, write_json

from .plan import PlannedRun
from .train import train_task

RECORD = "results.json"


def record_path(out: Path, run: PlannedRun) -> Path:
    return Path(out) / "runs" / run.name / RECORD


def is_done(out: Path, run: PlannedRun) -> bool:
    path = record_path(out, run)
    if not path.is_file() or path.is_symlink():
        return False
    try:
        return bool(json.loads(path.read_text()).get("finished"))
    except (OSError, ValueError):
        return False


def write_record(path: Path, record: dict) -> None:
    """Writes ``record`` to ``path`` atomically (never half a file), never through a symbolic link."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        raise ValueError(f"{path}: is a symbolic link; refusing to write through it")
    write_json(path, record)


def run_plan(plan: list[PlannedRun], out: Path, threads: int = 1) -> None:
    torch.set_num_threads(threads)
    commit = git_commit()
    log_path = Path(out) / "train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log_file:

        def log(line: str) -> None:
            print(line, flush=True)
            log_file.write(line + "\n")
            log_file.flush()

        for run in plan:
            if is_done(out, run):
                log(f"done already: {run.name}")
                continue
            record = train_task(
                run.spec, run.model, run.seed, sizes=run.sizes, model_args=run.model_args, log=log, **run.train_args
            )
            record.update(finished=True, commit=commit, threads=threads)
            write_record(record_path(out, run), record)
            log(
                f"finished {run.name}: val {record['best_val_acc']:.3f} test {record['test_acc']:.3f} "
                f"({record['wall_s']:.0f} s)"
            )
