"""The runs of a suite: every training command of a config under a preset, checked before anything runs.

A run's flags are checked against the training command line's own parser (its registry of models, their
flags and choices), never against its help text; the data of every dataset is looked for under the root.
"""

import csv
import functools
import importlib.util
import itertools
import sys
from pathlib import Path

from .config import SuiteError, _fail

TRAIN_MODULE = "plstm_geometric.train"
# flags that change how a run is executed, not what it computes: not compared when deciding whether a run
# folder holds the run the suite asks for
OPERATIONAL_FLAGS = {"root", "out", "threads", "device", "num_workers", "resume", "overwrite", "no_progress"}


@functools.cache
def cli_flags() -> dict:
    """The training command line's flags, read from its parser: ``{dest: {"flag", "takes_value", "choices"}}``
    (``--model``'s choices are the model registry's names)."""
    from plstm_geometric.train.cli import build_parser

    flags = {}
    for action in build_parser()._actions:
        long = [option for option in action.option_strings if option.startswith("--")]
        if not long or action.dest == "help":
            continue
        choices = None if action.choices is None else [str(choice) for choice in action.choices]
        values = action.nargs if isinstance(action.nargs, int) and action.nargs > 1 else None
        flags[action.dest] = {"flag": long[0], "takes_value": action.nargs != 0, "choices": choices, "values": values}
    return flags


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
        if flag.get("values") is not None or isinstance(value, list):
            # a flag of several values (--transition-start LOW HIGH) takes a list of that length
            if not (isinstance(value, list) and len(value) == flag.get("values")):
                _fail(
                    source, f"{key}.{name}", f"{flag['flag']} takes {flag.get('values') or 1} value(s), got {value!r}"
                )
            tokens += [flag["flag"], *(str(item) for item in value)]
            continue
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


def _check_models(source, config: dict, model_keys: list, flags: dict) -> None:
    choices = flags["model"]["choices"]
    for key in model_keys:
        model = config["models"][key]["model"]
        if choices is not None and model not in choices:
            _fail(source, f"models.{key}.model", f"unknown model {model!r} (the training CLI offers {choices})")


def _folds_and_seeds(source, name: str, entry: dict, preset: dict, flags: dict) -> tuple:
    """The folds (``[None]`` for a set without folds) and seeds the preset runs of dataset ``name``."""
    seeds = preset.get("seeds", entry.get("seeds", [0]))
    if entry["kind"] != "tu":
        return [None], seeds
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
    return folds, seeds


def _run_args(source, config: dict, preset_name, name: str, key: str, flags: dict) -> dict:
    """The flags of the runs of dataset ``name`` and model ``key``: the config's layers merged in order,
    each checked on its own so that an error names the layer a bad flag came from."""
    preset = config["presets"].get(preset_name, {}) if preset_name else {}
    layers = [
        ("args", config["args"]),
        (f"datasets.{name}.args", config["datasets"][name]["args"]),
        (f"models.{key}.args", config["models"][key]["args"]),
    ]
    if preset_name:
        layers += [
            (f"presets.{preset_name}.args", preset.get("args", {})),
            (f"presets.{preset_name}.dataset_args.{name}", preset.get("dataset_args", {}).get(name, {})),
            (f"presets.{preset_name}.model_args.{key}", preset.get("model_args", {}).get(key, {})),
        ]
    args = {}
    for where, layer in layers:
        _flag_args(source, where, layer, flags)
        args.update(layer)
    return args


def _run(name: str, key: str, model: str, fold, seed, args: dict, tokens: list, root, out: Path) -> dict:
    """One planned run: its folder, its command and the configuration its run record must hold."""
    part = (f"fold{fold}-" if fold is not None else "") + f"seed{seed}"
    run_dir = out / "runs" / name / key / part
    command = [sys.executable, "-m", TRAIN_MODULE, "--dataset", name, "--model", model, "--root", str(root)]
    command += ["--fold", str(fold)] if fold is not None else []
    command += ["--seed", str(seed), "--out", str(run_dir), "--no-progress"] + tokens
    expected = {"dataset": name, "model": model, "fold": fold, "seed": seed}
    expected.update({k: v for k, v in args.items() if k not in OPERATIONAL_FLAGS})
    return {
        "dataset": name,
        "model_key": key,
        "model": model,
        "fold": fold,
        "seed": seed,
        "run_dir": str(run_dir.relative_to(out)),
        "command": command,
        "expected": expected,
    }


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
    model_keys = preset.get("models", list(config["models"]))
    _check_models(source, config, model_keys, flags)
    runs = []
    for name in preset.get("datasets", list(config["datasets"])):
        entry = config["datasets"][name]
        if entry["kind"] == "ogb" and known_ogb and name not in known_ogb:
            _fail(source, f"datasets.{name}", f"unknown OGB dataset (OGB lists {known_ogb})")
        problem = None if allow_download else data_problem(name, entry["kind"], root)
        if problem:
            _fail(source, f"datasets.{name}", problem)
        folds, seeds = _folds_and_seeds(source, name, entry, preset, flags)
        for key in model_keys:
            args = _run_args(source, config, preset_name, name, key, flags)
            if threads is not None:
                args["threads"] = threads
            if "num_folds" in flags and entry["kind"] == "tu":
                args["num_folds"] = entry["folds"]
            tokens = _flag_args(source, "args", args, flags)
            model = config["models"][key]["model"]
            runs += [_run(name, key, model, f, s, args, tokens, root, out) for f, s in itertools.product(folds, seeds)]
    return {
        "config": config,
        "config_path": str(config_path),
        "preset": preset_name,
        "out": str(out),
        "root": str(root),
        "runs": runs,
        "jobs": preset.get("jobs", 1),
    }
