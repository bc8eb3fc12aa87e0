"""Running a suite's plan: one training subprocess per run, several at once, resumable.

Whether a run is done, to be resumed, stale or new is the run record's answer
(:func:`plstm_geometric.train.record.run_state`); the suite keeps its own record of attempts per run
(``suite_run.json``: wall time, exit status, command) and of its invocations (``suite.json``).
"""

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from plstm_geometric.train.files import read_json, write_json
from plstm_geometric.train.record import run_state

from .config import SuiteError
from .report import collect, write_outputs

REPO = Path(__file__).resolve().parents[2]


def child_env() -> dict:
    """The environment of the training subprocesses: this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def git_state() -> dict:
    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    # results/ is where suites write (its tables are tracked): changes there do not make the code dirty
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


# ---------------------------------------------------------------------------------------------- config


class Runner:
    """Runs training subprocesses; on interruption it stops the ones still running."""

    def __init__(self):
        self.processes = set()
        self.lock = threading.Lock()
        self.stopped = False

    def run(self, run: dict, out: Path, state: str):
        """Runs one training subprocess; returns its attempt record (``None`` once :meth:`stop` was called)."""
        run_dir = out / run["run_dir"]
        run_dir.mkdir(parents=True, exist_ok=True)
        # a stale run (another configuration, --rerun-changed) starts afresh over the finished one
        command = run["command"] + {"resume": ["--resume"], "stale": ["--overwrite"]}.get(state, [])
        start_time = time.time()
        start = time.perf_counter()
        with open(run_dir / "train.log", "a") as log:
            log.write(f"\n$ {' '.join(command)}\n")
            log.flush()
            with self.lock:
                if self.stopped:
                    return None
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env())
                self.processes.add(process)
            try:
                returncode = process.wait()
            finally:
                with self.lock:
                    self.processes.discard(process)
        attempt = {
            "start": start_time,
            "wall_s": time.perf_counter() - start,
            "returncode": returncode,
            "resumed": state == "resume",
            "command": command,
        }
        record = read_json(run_dir / "suite_run.json") or {"attempts": []}
        record["attempts"].append(attempt)
        record["expected"] = run["expected"]
        write_json(run_dir / "suite_run.json", record)
        return attempt

    def stop(self):
        with self.lock:
            self.stopped = True
            processes = list(self.processes)
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _run_all(runner, todo: list, out: Path, jobs: int, bar, failures: list) -> None:
    """Runs ``todo`` with ``jobs`` at once, appending the runs that fail to ``failures`` as they end. On an
    interruption no new run starts and the running ones are stopped (their checkpoints stay, so the next
    call resumes them)."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(runner.run, run, out, state): run for run, state in todo}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    run = pending.pop(future)
                    attempt = future.result()
                    if attempt is None:
                        continue
                    if attempt["returncode"] != 0:
                        failures.append(run)
                        bar.write(
                            f"failed ({attempt['returncode']}): {run['run_dir']} (see "
                            f"{out / run['run_dir'] / 'train.log'})"
                        )
                    bar.update(1)
                    bar.set_postfix_str(run["run_dir"])
        except BaseException:
            # before the pool waits for its threads: no new run starts, the running ones stop (their
            # checkpoints stay, so the next call resumes them)
            for future in pending:
                future.cancel()
            runner.stop()
            raise


def execute(the_plan: dict, jobs=None, max_runs=None, rerun_changed=False, progress=True) -> dict:
    """Runs what is not finished yet and writes every output; returns the collected results."""
    from tqdm.auto import tqdm

    out = Path(the_plan["out"])
    runs = the_plan["runs"]
    states = [run_state(out / run["run_dir"], run["expected"]) for run in runs]
    stale = [(run, detail) for run, (state, detail) in zip(runs, states) if state == "stale"]
    if stale and not rerun_changed:
        run, detail = stale[0]
        raise SuiteError(
            f"{out / run['run_dir']}: holds a run with another configuration ({detail}); use another "
            f"--out, or pass --rerun-changed to run it again ({len(stale)} such run(s))"
        )
    todo = [(run, state) for run, (state, _) in zip(runs, states) if state != "done"]
    if max_runs is not None:
        todo = todo[:max_runs]
    out.mkdir(parents=True, exist_ok=True)
    suite_file = out / "suite.json"
    previous = read_json(suite_file) or {}
    invocation = {"argv": sys.argv, "start": time.time(), "git": git_state(), "runs_started": len(todo)}
    record = {key: the_plan[key] for key in ("config_path", "preset", "out", "root", "runs")}
    record["config"] = the_plan["config"]
    record["invocations"] = previous.get("invocations", []) + [invocation]
    write_json(suite_file, record)

    runner = Runner()
    failures = []
    done_before = len(runs) - len([s for s, _ in states if s != "done"])
    bar = tqdm(
        total=len(runs),
        initial=done_before,
        desc=the_plan["config"]["name"],
        unit="run",
        disable=not progress,
        file=sys.stderr,
    )
    jobs = jobs or the_plan["jobs"]

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old_handler = (
        signal.signal(signal.SIGTERM, interrupted) if threading.current_thread() is threading.main_thread() else None
    )
    try:
        _run_all(runner, todo, out, jobs, bar, failures)
    finally:
        bar.close()
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
        invocation["end"] = time.time()
        invocation["failed"] = [run["run_dir"] for run in failures]
        write_json(suite_file, record)
        collected = collect(out)
        write_outputs(out, collected)
    collected["failed"] = failures
    return collected
