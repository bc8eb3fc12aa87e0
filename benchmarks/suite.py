"""Rerun a whole results table: datasets x models x (folds or seeds), one training subprocess per run.

    python -m benchmarks.suite benchmarks/configs/tu.json --preset cpu --out results/tu-cpu
    python -m benchmarks.suite benchmarks/configs/tu.json --preset cpu --out results/tu-cpu --dry-run
    python -m benchmarks.suite render results/tu-cpu [results/moleculenet-cpu ...] > section.md

Every run is ``python -m plstm_geometric.train --dataset D --model M [--fold k] --seed s --out RUN_DIR ...``
with the flags the config gives. The suite resumes: a run whose ``results.json`` says it finished with the
configuration the suite asks for is not run again; a run with a checkpoint is continued with ``--resume``.
Under ``--out`` it writes ``runs/<dataset>/<model>/<fold|seed>/`` (the training CLI's run folders),
``runs.csv``/``runs.json`` (one row per fold or seed), ``aggregate.csv``/``aggregate.json`` (mean and
population standard deviation over folds/seeds of the metrics at each run's best-validation epoch),
``suite.json`` (the resolved plan: commands, commit, invocations) and ``results.md`` (the table beside the
published numbers, with commands, commit, wall time and parameter counts). ``render`` rebuilds the
markdown from a results folder alone.

Config (JSON). Top-level keys:

* ``name`` (str, required), ``description`` (str), ``root`` (data root, default ``datasets``),
  ``published`` (path of a JSON of published numbers, relative to the config file),
  ``display`` (per metric: ``{"rocauc": {"scale": 100, "digits": 1}}``), ``args`` (training flags of
  every run, e.g. ``{"epochs": 100, "batch_size": 64}``: a key ``k`` is the flag ``--k`` with ``_`` as
  ``-``; ``true`` for a flag without a value);
* ``datasets`` (required): ``{NAME: {"label", "kind", "folds", "run_folds", "seeds", "args"}}``;
  ``kind`` is ``tu``, ``ogb`` or ``other`` (default from the name: ``ogbg-*`` is ``ogb``, ``nci-tpsa``
  and ``peptides-*`` are ``other``, anything else ``tu``); a ``tu`` set needs ``folds`` (the protocol's
  fold count) and runs ``run_folds`` (default: all), each with every seed of ``seeds`` (default
  ``[0]``); other sets run their ``seeds``;
* ``models`` (required): ``{KEY: {"model": CLI model name, "label", "args"}}``;
* ``presets``: ``{NAME: {"description", "datasets": [subset], "models": [subset], "args",
  "dataset_args": {NAME: args}, "model_args": {KEY: args}, "seeds", "run_folds", "jobs"}}``.

A run's flags are merged in this order (later wins): ``args``, the dataset's ``args``, the model's
``args``, the preset's ``args``, its ``dataset_args`` and its ``model_args``. Every flag is checked
against ``python -m plstm_geometric.train --help`` before anything runs.
"""

import argparse
import csv
import functools
import importlib.util
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_MODULE = "plstm_geometric.train"
TOP_KEYS = {"name", "description", "root", "published", "display", "args", "datasets", "models", "presets"}
DATASET_KEYS = {"label", "kind", "folds", "run_folds", "seeds", "args"}
MODEL_KEYS = {"model", "label", "args"}
PRESET_KEYS = {"description", "datasets", "models", "args", "dataset_args", "model_args", "seeds", "run_folds", "jobs"}
DISPLAY_KEYS = {"scale", "digits"}
KINDS = ("tu", "ogb", "other")
# flags the suite sets itself for every run
SUITE_FLAGS = {"dataset", "model", "fold", "seed", "out", "resume", "overwrite", "no_progress"}
# flags that change how a run is executed, not what it computes: not compared when deciding whether a run
# folder holds the run the suite asks for
OPERATIONAL_FLAGS = {"root", "out", "threads", "device", "num_workers", "resume", "overwrite", "no_progress"}


class SuiteError(ValueError):
    """A config, preset or results folder the suite cannot use; the message names the file and key."""


# ---------------------------------------------------------------------------------------------- the CLI
@functools.cache
def cli_flags() -> dict:
    """The training CLI's flags from its ``--help``: ``{dest: {"flag", "takes_value", "choices"}}``."""
    result = subprocess.run(
        [sys.executable, "-m", TRAIN_MODULE, "--help"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=os.getcwd(),
        timeout=300,
    )
    if result.returncode != 0:
        raise SuiteError(f"python -m {TRAIN_MODULE} --help failed ({result.returncode}): {result.stderr[-2000:]}")
    flags = {}
    options = result.stdout.split("options:", 1)[-1]
    for match in re.finditer(r"^\s{2}(--[a-z0-9][a-z0-9-]*)(?: (\{[^}]*\}|[A-Z][A-Z0-9_]*))?", options, re.M):
        flag, value = match.group(1), match.group(2)
        if flag == "--help":
            continue
        choices = value[1:-1].split(",") if value and value.startswith("{") else None
        flags[flag[2:].replace("-", "_")] = {"flag": flag, "takes_value": value is not None, "choices": choices}
    if "dataset" not in flags or "model" not in flags:
        raise SuiteError(f"python -m {TRAIN_MODULE} --help: found no --dataset/--model flags in {result.stdout!r}")
    return flags


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
def _fail(source, key, message):
    raise SuiteError(f"{source}: {key}: {message}")


def _check_keys(source, where, entry, allowed):
    if not isinstance(entry, dict):
        _fail(source, where, f"expected an object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        _fail(
            source, f"{where}.{unknown[0]}" if where else unknown[0], f"unknown key (expected one of {sorted(allowed)})"
        )


def _check_int_list(source, key, value, low=0):
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value)
    ):
        _fail(source, key, f"expected a non-empty list of ints >= {low}, got {value!r}")
    if len(set(value)) != len(value):
        _fail(source, key, f"expected distinct values, got {value!r}")


# Names that become folder names (the config's, its presets', datasets' and models'): plain names only, so
# that no name can lead a run, a log or a lock outside the results folder.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def _check_name(source, key, name) -> None:
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name) or ".." in name:
        _fail(source, key, f"expected a plain name (letters, digits, '.', '_', '+', '-'; no '..' or '/'), got {name!r}")


def _check_args(source, key, args):
    if not isinstance(args, dict):
        _fail(source, key, f"expected an object of training flags, got {type(args).__name__}")
    for name, value in args.items():
        if name in SUITE_FLAGS or name == "root":
            _fail(source, f"{key}.{name}", "is set by the suite for every run; remove it")
        # one value per flag: a list would become several command-line tokens, i.e. further flags
        if not isinstance(value, (int, float, str, bool)) and value is not None:
            _fail(source, f"{key}.{name}", f"expected a number, string or bool, got {value!r}")
        if isinstance(value, str) and value.startswith("-"):
            _fail(source, f"{key}.{name}", f"expected a value, not a flag, got {value!r}")


def default_kind(name: str) -> str:
    if name.startswith("ogbg-"):
        return "ogb"
    if name == "nci-tpsa" or name.startswith("peptides"):
        return "other"
    return "tu"


def load_config(path) -> dict:
    """Reads and checks a suite config (the structure only; flags and data are checked by :func:`plan`)."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise SuiteError(f"{source}: config file not found")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SuiteError(f"{source}: not valid JSON: {error}") from None
    _check_keys(source, "", config, TOP_KEYS)
    for key in ("name", "datasets", "models"):
        if key not in config:
            _fail(source, key, "missing (required)")
    _check_name(source, "name", config["name"])
    _check_args(source, "args", config.setdefault("args", {}))
    display = config.setdefault("display", {})
    if not isinstance(display, dict):
        _fail(source, "display", "expected an object {metric: {scale, digits}}")
    for metric, entry in display.items():
        _check_keys(source, f"display.{metric}", entry, DISPLAY_KEYS)
    if not isinstance(config["datasets"], dict) or not config["datasets"]:
        _fail(source, "datasets", "expected a non-empty object {name: {...}}")
    for name, entry in config["datasets"].items():
        where = f"datasets.{name}"
        _check_name(source, where, name)
        _check_keys(source, where, entry, DATASET_KEYS)
        kind = entry.setdefault("kind", default_kind(name))
        if kind not in KINDS:
            _fail(source, f"{where}.kind", f"expected one of {KINDS}, got {kind!r}")
        if kind == "tu":
            if "folds" not in entry:
                _fail(
                    source,
                    f"{where}.folds",
                    "missing: a TU dataset needs the fold count of its protocol (10 for the protocol of Errica et al.)",
                )
            if not isinstance(entry["folds"], int) or isinstance(entry["folds"], bool) or entry["folds"] < 3:
                _fail(source, f"{where}.folds", f"expected an int >= 3, got {entry['folds']!r}")
        elif "folds" in entry or "run_folds" in entry:
            _fail(source, f"{where}.folds", f"only TU datasets have folds (kind is {kind!r}); use seeds")
        if "run_folds" in entry:
            _check_int_list(source, f"{where}.run_folds", entry["run_folds"])
        if "seeds" in entry:
            _check_int_list(source, f"{where}.seeds", entry["seeds"])
        _check_args(source, f"{where}.args", entry.setdefault("args", {}))
    if not isinstance(config["models"], dict) or not config["models"]:
        _fail(source, "models", "expected a non-empty object {key: {model, label, args}}")
    for key, entry in config["models"].items():
        where = f"models.{key}"
        _check_keys(source, where, entry, MODEL_KEYS)
        _check_name(source, where, key)
        entry.setdefault("model", key)
        _check_args(source, f"{where}.args", entry.setdefault("args", {}))
    presets = config.setdefault("presets", {})
    if not isinstance(presets, dict):
        _fail(source, "presets", "expected an object {name: {...}}")
    for name, preset in presets.items():
        where = f"presets.{name}"
        _check_name(source, where, name)
        _check_keys(source, where, preset, PRESET_KEYS)
        for group, known in (("datasets", config["datasets"]), ("models", config["models"])):
            subset = preset.get(group)
            if subset is not None:
                if not isinstance(subset, list) or not subset:
                    _fail(source, f"{where}.{group}", f"expected a non-empty list, got {subset!r}")
                for item in subset:
                    if item not in known:
                        _fail(source, f"{where}.{group}", f"{item!r} is not in {group} ({sorted(known)})")
        _check_args(source, f"{where}.args", preset.get("args", {}))
        for group, known in (("dataset_args", config["datasets"]), ("model_args", config["models"])):
            entries = preset.get(group, {})
            if not isinstance(entries, dict):
                _fail(source, f"{where}.{group}", "expected an object {name: args}")
            for item, args in entries.items():
                if item not in known:
                    _fail(source, f"{where}.{group}.{item}", f"not in {group.split('_')[0]}s ({sorted(known)})")
                _check_args(source, f"{where}.{group}.{item}", args)
        for key in ("seeds", "run_folds"):
            if key in preset:
                _check_int_list(source, f"{where}.{key}", preset[key])
        if "jobs" in preset and (not isinstance(preset["jobs"], int) or preset["jobs"] < 1):
            _fail(source, f"{where}.jobs", f"expected a positive int, got {preset['jobs']!r}")
    if "published" in config:
        if not isinstance(config["published"], str):
            _fail(source, "published", f"expected a path, got {config['published']!r}")
        published = path.parent / config["published"]
        if not published.is_file():
            _fail(source, "published", f"{published}: published numbers file not found")
        config["published_data"] = load_published(published)
    return config


def load_published(path) -> dict:
    """``{"sources": {key: text}, "results": {dataset: [{"model", "mean", "std", "scale", "source"}]}}``."""
    source = str(path)
    if not Path(path).is_file():
        raise SuiteError(f"{source}: published numbers file not found")
    try:
        published = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise SuiteError(f"{source}: not valid JSON: {error}") from None
    _check_keys(source, "", published, {"sources", "results", "notes"})
    sources = published.get("sources", {})
    for dataset, rows in published.get("results", {}).items():
        if not isinstance(rows, list):
            _fail(source, f"results.{dataset}", "expected a list of {model, mean, std, scale, source}")
        for i, row in enumerate(rows):
            _check_keys(
                source, f"results.{dataset}[{i}]", row, {"model", "mean", "std", "scale", "source", "params", "note"}
            )
            for key in ("model", "mean", "source"):
                if key not in row:
                    _fail(source, f"results.{dataset}[{i}].{key}", "missing (required)")
            if row["source"] not in sources:
                _fail(source, f"results.{dataset}[{i}].source", f"{row['source']!r} is not in sources")
    return published


# ---------------------------------------------------------------------------------------------- plan
def _flag_args(source, key, args, flags) -> list:
    """Command-line tokens of ``args``, checked against the training CLI's flags."""
    tokens = []
    for name, value in args.items():
        if name not in flags:
            _fail(
                source,
                f"{key}.{name}",
                f"the training CLI (python -m {TRAIN_MODULE}) has no --{name.replace('_', '-')} flag",
            )
        flag = flags[name]
        if value is None:
            continue
        if not flag["takes_value"]:
            if not isinstance(value, bool):
                _fail(source, f"{key}.{name}", f"{flag['flag']} takes no value: expected true or false, got {value!r}")
            tokens += [flag["flag"]] if value else []
            continue
        if isinstance(value, bool):
            _fail(source, f"{key}.{name}", f"{flag['flag']} takes a value, got {value!r}")
        if flag["choices"] is not None and str(value) not in flag["choices"]:
            _fail(source, f"{key}.{name}", f"expected one of {flag['choices']}, got {value!r}")
        tokens += [flag["flag"], str(value)]
    return tokens


def data_problem(name: str, kind: str, root: str):
    """Why the data of ``name`` is not in ``root`` (``None`` when it is there)."""
    if kind == "tu":
        folder = Path(root) / "TU" / name
        if not ((folder / "raw" / f"{name}_A.txt").is_file() or (folder / "processed").is_dir()):
            return (
                f"no TU data at {folder}/raw/{name}_A.txt; copy the TUDataset text files there "
                f"(python -m plstm_geometric.datasets prepare {name}) or pass --allow-download"
            )
    elif kind == "ogb":
        folder = Path(root) / name.replace("-", "_")
        if not folder.is_dir():
            return (
                f"no dataset folder {folder}; build it offline (python -m plstm_geometric.datasets build-ogb "
                f"--csv CSV --name {name} --root {root}) or pass --allow-download"
            )
    return None


def ogb_names() -> list:
    spec = importlib.util.find_spec("ogb")
    if spec is None or spec.origin is None:
        return []
    master = Path(spec.origin).parent / "graphproppred" / "master.csv"
    if not master.is_file():
        return []
    with open(master, newline="") as file:
        header = next(csv.reader(file))
    return [name for name in header[1:] if name.startswith("ogbg-mol")]


def plan(config: dict, config_path, preset_name=None, out=None, root=None, allow_download=False, threads=None) -> dict:
    """The runs of ``config`` under ``preset_name``: every command, checked against the CLI and the data."""
    source = str(config_path)
    presets = config["presets"]
    if preset_name is not None and preset_name not in presets:
        raise SuiteError(f"{source}: presets.{preset_name}: no such preset (the config has {sorted(presets)})")
    preset = presets.get(preset_name, {}) if preset_name else {}
    root = root or config.get("root", "datasets")
    out = Path(
        out if out is not None else Path("results") / (config["name"] + (f"-{preset_name}" if preset_name else ""))
    )
    flags = cli_flags()
    known_ogb = ogb_names()
    dataset_names = preset.get("datasets", list(config["datasets"]))
    model_keys = preset.get("models", list(config["models"]))
    for key in model_keys:
        model = config["models"][key]["model"]
        if flags["model"]["choices"] is not None and model not in flags["model"]["choices"]:
            _fail(
                source,
                f"models.{key}.model",
                f"unknown model {model!r} (the training CLI offers {flags['model']['choices']})",
            )
    runs = []
    for name in dataset_names:
        entry = config["datasets"][name]
        kind = entry["kind"]
        if kind == "ogb" and known_ogb and name not in known_ogb:
            _fail(source, f"datasets.{name}", f"unknown OGB dataset (OGB lists {known_ogb})")
        if not allow_download:
            problem = data_problem(name, kind, root)
            if problem:
                _fail(source, f"datasets.{name}", problem)
        seeds = preset.get("seeds", entry.get("seeds", [0]))
        folds = [None]
        if kind == "tu":
            if entry["folds"] != 10 and "num_folds" not in flags:
                _fail(
                    source,
                    f"datasets.{name}.folds",
                    f"the training CLI splits TU sets into 10 folds (it has no --num-folds flag), got {entry['folds']}",
                )
            folds = preset.get("run_folds", entry.get("run_folds", list(range(entry["folds"]))))
            bad = [k for k in folds if k >= entry["folds"]]
            if bad:
                _fail(source, f"datasets.{name}.run_folds", f"folds {bad} are not below folds={entry['folds']}")
        for key in model_keys:
            model = config["models"][key]
            args = {}
            layers = [
                ("args", config["args"]),
                (f"datasets.{name}.args", entry["args"]),
                (f"models.{key}.args", model["args"]),
            ]
            if preset_name:
                layers += [
                    (f"presets.{preset_name}.args", preset.get("args", {})),
                    (f"presets.{preset_name}.dataset_args.{name}", preset.get("dataset_args", {}).get(name, {})),
                    (f"presets.{preset_name}.model_args.{key}", preset.get("model_args", {}).get(key, {})),
                ]
            for where, layer in layers:
                _flag_args(source, where, layer, flags)  # names the layer a bad flag came from
                args.update(layer)
            if threads is not None:
                args["threads"] = threads
            if "num_folds" in flags and kind == "tu":
                args["num_folds"] = entry["folds"]
            tokens = _flag_args(source, "args", args, flags)
            for fold, seed in itertools.product(folds, seeds):
                part = (f"fold{fold}" if fold is not None else "") + ("-" if fold is not None else "") + f"seed{seed}"
                run_dir = out / "runs" / name / key / part
                command = [
                    sys.executable,
                    "-m",
                    TRAIN_MODULE,
                    "--dataset",
                    name,
                    "--model",
                    model["model"],
                    "--root",
                    str(root),
                ]
                command += ["--fold", str(fold)] if fold is not None else []
                command += ["--seed", str(seed), "--out", str(run_dir), "--no-progress"] + tokens
                expected = {"dataset": name, "model": model["model"], "fold": fold, "seed": seed}
                expected.update({k: v for k, v in args.items() if k not in OPERATIONAL_FLAGS})
                runs.append(
                    {
                        "dataset": name,
                        "model_key": key,
                        "model": model["model"],
                        "fold": fold,
                        "seed": seed,
                        "run_dir": str(run_dir.relative_to(out)),
                        "command": command,
                        "expected": expected,
                    }
                )
    return {
        "config": config,
        "config_path": str(config_path),
        "preset": preset_name,
        "out": str(out),
        "root": str(root),
        "runs": runs,
        "jobs": preset.get("jobs", 1),
    }


# ---------------------------------------------------------------------------------------------- runs
def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _same(recorded, wanted) -> bool:
    if isinstance(wanted, list):
        return (
            isinstance(recorded, list)
            and len(recorded) == len(wanted)
            and all(_same(r, w) for r, w in zip(recorded, wanted))
        )
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool) and isinstance(recorded, (int, float)):
        return math.isclose(float(recorded), float(wanted), rel_tol=1e-12, abs_tol=0.0)
    return recorded == wanted


def config_mismatch(results: dict, expected: dict):
    """The first ``(key, recorded, expected)`` on which a run folder's configuration differs, else ``None``."""
    recorded = results.get("config", {})
    for key, value in expected.items():
        if key not in recorded or not _same(recorded[key], value):
            return key, recorded.get(key, "<absent>"), value
    return None


def run_state(run_dir: Path, expected: dict):
    """``("done" | "resume" | "new" | "stale", detail)`` of a run folder."""
    results = read_json(run_dir / "results.json")
    if results is not None:
        mismatch = config_mismatch(results, expected)
        if mismatch:
            return "stale", "{} was {!r}, the suite asks for {!r}".format(*mismatch)
        return ("done", None) if results.get("finished") else ("resume", None)
    if (run_dir / "checkpoint.pt").exists():
        return "resume", None
    return "new", None


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


def write_json(path: Path, data):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


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


# ---------------------------------------------------------------------------------------------- results
def _mean_std(values):
    if not values:
        return None, None
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def collect(out) -> dict:
    """Per-run rows and per (dataset, model) aggregates of a results folder (finished runs only count)."""
    out = Path(out)
    suite = read_json(out / "suite.json")
    if suite is None:
        raise SuiteError(f"{out / 'suite.json'}: not found or not valid JSON (is {out} a suite results folder?)")
    missing = [key for key in ("config", "config_path", "preset", "runs") if key not in suite]
    bad_run = next(
        (
            run
            for run in suite.get("runs", [])
            if not isinstance(run, dict)
            or any(key not in run for key in ("dataset", "model_key", "model", "run_dir", "expected"))
        ),
        None,
    )
    if missing or bad_run is not None:
        what = f"missing key {missing[0]!r}" if missing else f"an incomplete run entry {bad_run!r}"[:200]
        raise SuiteError(f"{out / 'suite.json'}: {what}; rerun the suite to write it again")
    rows = []
    for run in suite["runs"]:
        run_dir = out / run["run_dir"]
        results = read_json(run_dir / "results.json") or {}
        record = read_json(run_dir / "suite_run.json") or {"attempts": []}
        status = "missing"
        if results:
            mismatch = config_mismatch(results, run["expected"])
            status = "stale" if mismatch else ("done" if results.get("finished") else "partial")
        metrics = results.get("metrics", {}) if status == "done" else {}
        times = results.get("epoch_times_s", [])
        rows.append(
            {
                "dataset": run["dataset"],
                "model_key": run["model_key"],
                "model": run["model"],
                "fold": run["fold"],
                "seed": run["seed"],
                "status": status,
                "metric": results.get("metric"),
                "lower_is_better": results.get("lower_is_better"),
                "train": metrics.get("train"),
                "valid": metrics.get("valid"),
                "test": metrics.get("test"),
                "best_epoch": results.get("best_epoch") if status == "done" else None,
                "epochs": results.get("epochs_completed"),
                "num_parameters": results.get("num_parameters"),
                "epoch_time_s": sum(times) / len(times) if times else None,
                "wall_s": sum(a["wall_s"] for a in record["attempts"]) if record["attempts"] else None,
                "device": results.get("device"),
                "git_commit": results.get("git_commit"),
                "run_dir": run["run_dir"],
                "command": " ".join(run["command"]),
            }
        )
    aggregate = []
    for (dataset, key), group in itertools.groupby(
        sorted(rows, key=lambda r: (r["dataset"], r["model_key"])), key=lambda r: (r["dataset"], r["model_key"])
    ):
        group = list(group)
        done = [r for r in group if r["status"] == "done"]
        entry = {
            "dataset": dataset,
            "model_key": key,
            "model": group[0]["model"],
            "runs": len(done),
            "planned": len(group),
            "metric": next((r["metric"] for r in group if r["metric"]), None),
            "lower_is_better": next((r["lower_is_better"] for r in group if r["metric"]), None),
        }
        for split in ("train", "valid", "test"):
            entry[f"{split}_mean"], entry[f"{split}_std"] = _mean_std([r[split] for r in done])
        params = sorted({r["num_parameters"] for r in group if r["num_parameters"] is not None})
        entry["num_parameters"] = params[0] if len(params) == 1 else (params or None)
        times = [r["epoch_time_s"] for r in done if r["epoch_time_s"] is not None]
        entry["epoch_time_s"] = sum(times) / len(times) if times else None
        entry["wall_s"] = sum(r["wall_s"] or 0.0 for r in group)
        entry["epochs"] = sorted({r["epochs"] for r in done if r["epochs"] is not None})
        aggregate.append(entry)
    return {"suite": suite, "rows": rows, "aggregate": aggregate}


def _write_csv(path: Path, rows: list):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows([{k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows])
    os.replace(tmp, path)


def write_outputs(out: Path, collected: dict):
    write_json(out / "runs.json", collected["rows"])
    _write_csv(out / "runs.csv", collected["rows"])
    write_json(out / "aggregate.json", collected["aggregate"])
    _write_csv(out / "aggregate.csv", collected["aggregate"])
    (out / "results.md").write_text(render(out, collected))


def _display(config, metric):
    entry = config.get("display", {}).get(metric, {})
    return entry.get("scale", 1), entry.get("digits", 4 if entry.get("scale", 1) == 1 else 1)


def _cell(mean, std, scale, digits, bold=False):
    if mean is None:
        return "–"
    text = f"{mean * scale:.{digits}f}" + (f" ± {std * scale:.{digits}f}" if std is not None else "")
    return f"**{text}**" if bold else text


def _duration(seconds):
    if seconds is None:
        return "–"
    return (
        f"{seconds / 3600:.2f} h"
        if seconds >= 3600
        else (f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s")
    )


def render(out, collected=None) -> str:
    """The markdown section of a results folder: our numbers beside the published ones, commands, commit,
    wall time and parameter counts."""
    out = Path(out)
    collected = collected or collect(out)
    suite, rows, aggregate = collected["suite"], collected["rows"], collected["aggregate"]
    config = suite["config"]
    published = config.get("published_data", {})
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    model_keys = list(dict.fromkeys(r["model_key"] for r in rows))
    by = {(a["dataset"], a["model_key"]): a for a in aggregate}
    metric_of = {d: next((a["metric"] for a in aggregate if a["dataset"] == d and a["metric"]), None) for d in datasets}
    lower_of = {
        d: next((a["lower_is_better"] for a in aggregate if a["dataset"] == d and a["metric"]), None) for d in datasets
    }
    label = {d: config["datasets"].get(d, {}).get("label", d) for d in datasets}
    model_label = {k: config["models"].get(k, {}).get("label", k) for k in model_keys}
    preset = suite.get("preset")
    lines = [f"## {config['name']}" + (f" (`{preset}` preset)" if preset else ""), ""]
    if config.get("description"):
        lines += [config["description"], ""]
    if preset and config.get("presets", {}).get(preset, {}).get("description"):
        lines += [config["presets"][preset]["description"], ""]
    metrics = {m for m in metric_of.values() if m}
    same_metric = len(metrics) == 1 and len(set(lower_of.values())) == 1
    header = ["model"] + [f"{label[d]} ({metric_of[d] or '?'} {'↓' if lower_of[d] else '↑'})" for d in datasets]
    if same_metric and len(datasets) > 1:
        header.append("avg")
    lines += [
        "Test metric at each run's best-validation epoch, mean ± standard deviation (population) over "
        "the folds or seeds; the best of our models per dataset in bold. Published numbers in italics.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    best = {}
    for d in datasets:
        means = [
            (by[(d, k)]["test_mean"], k) for k in model_keys if by.get((d, k)) and by[(d, k)]["test_mean"] is not None
        ]
        if means:
            best[d] = (min if lower_of[d] else max)(means)[1]
    for k in model_keys:
        cells, means = [model_label[k]], []
        for d in datasets:
            entry = by.get((d, k))
            scale, digits = _display(config, metric_of[d])
            if entry is None:
                cells.append("–")
                continue
            text = _cell(entry["test_mean"], entry["test_std"], scale, digits, bold=best.get(d) == k)
            if entry["runs"] != entry["planned"]:
                text += f" ({entry['runs']}/{entry['planned']} runs)"
            cells.append(text)
            means.append(entry["test_mean"] if entry["runs"] == entry["planned"] else None)
        if same_metric and len(datasets) > 1:
            scale, digits = _display(config, next(iter(metrics)))
            cells.append(f"{sum(means) / len(means) * scale:.{digits}f}" if means and None not in means else "–")
        lines.append("| " + " | ".join(cells) + " |")
    results = published.get("results", {})
    published_models = list(dict.fromkeys(row["model"] for d in datasets for row in results.get(d, [])))
    used_sources = []
    for name in published_models:
        cells, means = [f"*{name}*"], []
        for d in datasets:
            row = next((r for r in results.get(d, []) if r["model"] == name), None)
            if row is None:
                cells.append("")
                means.append(None)
                continue
            if row["source"] not in used_sources:
                used_sources.append(row["source"])
            scale, digits = _display(config, metric_of[d])
            factor = scale / row.get("scale", 1)
            text = f"{row['mean'] * factor:.{digits}f}"
            if row.get("std") is not None:
                text += f" ± {row['std'] * factor:.{digits}f}"
            cells.append(f"*{text}* [{used_sources.index(row['source']) + 1}]")
            means.append(row["mean"] / row.get("scale", 1))
        if same_metric and len(datasets) > 1:
            scale, digits = _display(config, next(iter(metrics)))
            cells.append(f"*{sum(means) / len(means) * scale:.{digits}f}*" if None not in means else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for i, key in enumerate(used_sources, 1):
        lines.append(f"[{i}] {published['sources'][key]}")
    if used_sources:
        lines.append("")

    lines += [
        "| dataset | model | params | runs | epochs | valid | test | s / epoch | wall time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in datasets:
        scale, digits = _display(config, metric_of[d])
        for k in model_keys:
            entry = by.get((d, k))
            if entry is None:
                continue
            params = entry["num_parameters"]
            params = (
                f"{params:,}" if isinstance(params, int) else (", ".join(f"{p:,}" for p in params) if params else "–")
            )
            epochs = ", ".join(str(e) for e in entry["epochs"]) or "–"
            lines.append(
                f"| {label[d]} | {model_label[k]} | {params} | {entry['runs']}/{entry['planned']} | {epochs} | "
                f"{_cell(entry['valid_mean'], entry['valid_std'], scale, digits)} | "
                f"{_cell(entry['test_mean'], entry['test_std'], scale, digits)} | "
                f"{entry['epoch_time_s']:.2f} | {_duration(entry['wall_s'])} |"
                if entry["epoch_time_s"] is not None
                else f"| {label[d]} | {model_label[k]} | {params} | {entry['runs']}/{entry['planned']} | {epochs} "
                f"| – | – | – | {_duration(entry['wall_s'])} |"
            )
    lines.append("")

    invocations = suite.get("invocations", [])
    commits = sorted({r["git_commit"] for r in rows if r["git_commit"]})
    devices = sorted({r["device"] for r in rows if r["device"]})
    total = sum(r["wall_s"] or 0.0 for r in rows)
    suite_command = (
        "python -m benchmarks.suite "
        + os.path.relpath(suite["config_path"])
        + (f" --preset {preset}" if preset else "")
        + f" --out {suite['out']}"
    )
    lines += [
        "Rerun (resumes; finished runs are kept):",
        "",
        f"    {suite_command}",
        "",
        f"Commit: {', '.join(f'`{c[:10]}`' for c in commits) or 'unknown'}"
        + (" (the checkout had uncommitted changes)" if any(i.get("git", {}).get("dirty") for i in invocations) else "")
        + f"; device: {', '.join(devices) or 'unknown'}; wall time of all runs: {_duration(total)}"
        + f" ({sum(r['status'] == 'done' for r in rows)}/{len(rows)} runs finished).",
        "",
    ]
    templates = []
    for run in suite["runs"]:
        command = [Path(run["command"][0]).name] + run["command"][1:]
        text = " ".join(command).replace(run["run_dir"], "RUN_DIR")
        if run["fold"] is not None:
            text = text.replace(f"--fold {run['fold']} ", "--fold FOLD ")
        text = text.replace(f"--seed {run['seed']} ", "--seed SEED ")
        text = re.sub(r"--out \S+", "--out RUN_DIR", text)
        if text not in templates:
            templates.append(text)
    lines += ["The runs (FOLD, SEED as planned; RUN_DIR = runs/DATASET/MODEL/[foldFOLD-]seedSEED):", ""]
    lines += [f"    {t}" for t in templates]
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description=__doc__.split("\n\n")[0],
        epilog="python -m benchmarks.suite render RESULTS_DIR... prints the markdown of finished results folders.",
    )
    parser.add_argument("config", help="suite config (JSON), e.g. benchmarks/configs/tu.json")
    parser.add_argument("--preset", default=None, help="a preset of the config (e.g. cpu, full)")
    parser.add_argument("--out", default=None, help="results folder (default: results/<name>-<preset>)")
    parser.add_argument("--root", default=None, help="data root (default: the config's root, else datasets)")
    parser.add_argument("--jobs", type=int, default=None, help="runs at once (default: the preset's jobs, else 1)")
    parser.add_argument("--threads", type=int, default=None, help="--threads of every run (overrides the config)")
    parser.add_argument("--max-runs", type=int, default=None, help="start at most this many runs, then stop")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and each run's state, run nothing")
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="do not require the data under the root (the training CLI may download it)",
    )
    parser.add_argument(
        "--rerun-changed",
        action="store_true",
        help="run again, from scratch, runs whose folder holds another configuration",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "render":
            parser = argparse.ArgumentParser(
                prog="python -m benchmarks.suite render", description="Markdown of suite results folders, to stdout."
            )
            parser.add_argument("results", nargs="+", help="results folders written by the suite")
            args = parser.parse_args(argv[1:])
            print("\n".join(render(folder) for folder in args.results), end="")
            return 0
        args = run_parser().parse_args(argv)
        for name in ("jobs", "threads", "max_runs"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise SuiteError(f"--{name.replace('_', '-')}: expected a positive int, got {getattr(args, name)}")
        config = load_config(args.config)
        the_plan = plan(config, args.config, args.preset, args.out, args.root, args.allow_download, args.threads)
        if args.dry_run:
            out = Path(the_plan["out"])
            for run in the_plan["runs"]:
                state, detail = run_state(out / run["run_dir"], run["expected"])
                print(f"[{state}{': ' + detail if detail else ''}] {' '.join(run['command'])}")
            print(f"{len(the_plan['runs'])} runs into {out}", file=sys.stderr)
            return 0
        collected = execute(the_plan, args.jobs, args.max_runs, args.rerun_changed, not args.no_progress)
    except SuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finished = sum(r["status"] == "done" for r in collected["rows"])
    print(
        f"{finished}/{len(collected['rows'])} runs finished, {len(collected['failed'])} failed in this call; "
        f"table in {Path(the_plan['out']) / 'results.md'}",
        file=sys.stderr,
    )
    return 1 if collected["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
