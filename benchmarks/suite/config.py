"""Suite configs: reading one and checking its structure, and the published numbers it cites.

The format is described in :mod:`benchmarks.suite`. Every name that becomes a path (the config's name,
dataset, model and preset names) is a plain name, and every flag value a scalar: a config never moves a
run's files outside the suite's ``--out``.
"""

import json
import re
from pathlib import Path

TOP_KEYS = {"name", "description", "root", "published", "display", "args", "datasets", "models", "presets"}
DATASET_KEYS = {"label", "kind", "folds", "run_folds", "seeds", "args"}
MODEL_KEYS = {"model", "label", "args"}
PRESET_KEYS = {"description", "datasets", "models", "args", "dataset_args", "model_args", "seeds", "run_folds", "jobs"}
DISPLAY_KEYS = {"scale", "digits"}
KINDS = ("tu", "ogb", "other")
# flags the suite sets itself for every run
SUITE_FLAGS = {"dataset", "model", "fold", "seed", "out", "resume", "overwrite", "no_progress"}


class SuiteError(ValueError):
    """A config, preset or results folder the suite cannot use; the message names the file and key."""


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
        # one value per flag, or a list of numbers for a flag of several values (--transition-start LOW HIGH):
        # a list of strings could become further flags
        numbers = isinstance(value, list) and all(
            isinstance(item, (int, float)) and not isinstance(item, bool) for item in value
        )
        if not isinstance(value, (int, float, str, bool)) and value is not None and not numbers:
            _fail(source, f"{key}.{name}", f"expected a number, string, bool or list of numbers, got {value!r}")
        if isinstance(value, str) and value.startswith("-"):
            _fail(source, f"{key}.{name}", f"expected a value, not a flag, got {value!r}")


def default_kind(name: str) -> str:
    if name.startswith("ogbg-"):
        return "ogb"
    if name == "nci-tpsa" or name.startswith("peptides"):
        return "other"
    return "tu"


def _check_dataset(source, name, entry) -> None:
    """Checks one entry of ``datasets`` and fills in its ``kind``."""
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


def _check_preset(source, name, preset, config) -> None:
    """Checks one entry of ``presets`` against the config's datasets and models."""
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
        _check_dataset(source, name, entry)
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
        _check_preset(source, name, preset, config)
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
