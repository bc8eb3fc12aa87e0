r"""The run record: the one definition of a run folder's ``results.json``.

The training CLIs write it, :mod:`benchmarks.suite` decides from it whether a run is done, stale or to be
resumed, and the depth and long-range benchmarks read it; none of them spells its keys on its own. A record
is a JSON object with a ``schema`` name and a ``schema_version``; :func:`read_record` checks every field
it holds against :data:`FIELDS` and upgrades older versions, so a reader sees one shape or a
:class:`RecordError` naming the file and the field.

Versions:

* 1: the graph trainer's record before the schema had a name (no ``schema``/``schema_version`` keys).
  Read as version 2 with ``kind`` ``"graph"``.
* 2: ``schema``, ``schema_version`` and ``kind`` (``"graph"``, ``"vision"``, ``"sequence"``,
  ``"longrange"``) added; the other fields unchanged. Fields outside :data:`FIELDS` are what one kind
  of run alone reports; they are kept as written.
"""

import json
import math
from pathlib import Path

from .files import finite_or_none, write_json

__all__ = [
    "FIELDS",
    "KINDS",
    "RECORD_FILE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "RecordError",
    "config_mismatch",
    "make_record",
    "read_record",
    "run_state",
    "write_record",
]

RECORD_FILE = "results.json"
SCHEMA = "plstm_geometric.run"
SCHEMA_VERSION = 2
KINDS = ("graph", "vision", "sequence", "longrange")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional(check):
    return lambda value: value is None or check(value)


def _metrics(value) -> bool:
    # a diverged split is stored as null (JSON has no NaN); anything else is a number
    return isinstance(value, dict) and all(isinstance(k, str) and (v is None or _number(v)) for k, v in value.items())


def _counts(value) -> bool:
    return isinstance(value, dict) and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values())


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# field -> (required, check). ``config`` holds the run's arguments: what decides whether two runs are the
# same run (see :func:`config_mismatch`).
FIELDS = {
    "schema": (True, lambda v: v == SCHEMA),
    "schema_version": (True, lambda v: v == SCHEMA_VERSION),
    "kind": (True, lambda v: v in KINDS),
    "config": (True, lambda v: isinstance(v, dict)),
    "finished": (True, lambda v: isinstance(v, bool)),
    "metric": (False, _optional(lambda v: isinstance(v, str))),
    "lower_is_better": (False, _optional(lambda v: isinstance(v, bool))),
    "metrics": (False, _optional(_metrics)),
    "best_epoch": (False, _optional(_int)),
    "epochs_completed": (False, _optional(_int)),
    "epoch_times_s": (False, _optional(lambda v: isinstance(v, list) and all(_number(x) for x in v))),
    "num_parameters": (False, _optional(_int)),
    "num_graphs": (False, _optional(_counts)),
    "dataset": (False, _optional(lambda v: isinstance(v, str))),
    "model": (False, _optional(lambda v: isinstance(v, str))),
    "task_type": (False, _optional(lambda v: isinstance(v, str))),
    "device": (False, _optional(lambda v: isinstance(v, str))),
    "world_size": (False, _optional(_int)),
    "torch_version": (False, _optional(lambda v: isinstance(v, str))),
    "git_commit": (False, _optional(lambda v: isinstance(v, str))),
}


class RecordError(ValueError):
    """A ``results.json`` that is not a run record of a version this library reads; names file and field."""


def _check(record: dict, where: str) -> dict:
    for name, (required, check) in FIELDS.items():
        if name not in record:
            if required:
                raise RecordError(f"{where}: missing field {name!r}")
            continue
        if not check(record[name]):
            raise RecordError(f"{where}: field {name!r} has an unexpected value {record[name]!r:.200}")
    return record


def make_record(kind: str, config: dict, finished: bool, extra: dict | None = None, **fields) -> dict:
    r"""A run record of the current version, checked field by field.

    Args:
        kind (str): which trainer wrote it, one of :data:`KINDS`.
        config (dict): the run's arguments (JSON-serialisable).
        finished (bool): whether the run completed and its final metrics are in ``metrics``.
        extra (dict, optional): what only this kind of run reports (the sign task's steps to solve, the
            APE task's accuracy per image size), kept as top-level fields beside the common ones; a name
            it shares with :data:`FIELDS` must hold a value of that field's type.
        **fields: the optional fields of :data:`FIELDS`.

    Raises:
        ValueError: an unknown field, or a value of the wrong type (the message names it).
    """
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"fields: expected names from FIELDS, got {unknown}")
    record = finite_or_none(dict(extra or {}))
    record.update({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": kind, "config": config})
    record.update(finite_or_none(fields))
    record["finished"] = finished
    try:
        return _check(record, "record")
    except RecordError as error:
        raise ValueError(str(error)) from None


def write_record(folder, record: dict) -> Path:
    """Writes ``record`` (from :func:`make_record`) atomically to ``<folder>/results.json``: a reader never
    sees half a file. Returns the path."""
    path = Path(folder) / RECORD_FILE
    write_json(path, _check(dict(record), str(path)))
    return path


def read_record(folder_or_file):
    r"""The run record in a run folder (or at a ``results.json`` path), upgraded to the current version;
    ``None`` when there is none.

    Raises:
        RecordError: the file is not valid JSON, not a run record, of a newer version than this library
            reads, or has a field of the wrong type.
    """
    path = Path(folder_or_file)
    if path.is_dir() or path.name != RECORD_FILE:
        path = path / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(f"{path}: not a readable JSON file ({error}); delete it to run again") from None
    if not isinstance(record, dict):
        raise RecordError(f"{path}: expected a JSON object, got {type(record).__name__}")
    version = record.get("schema_version", 1)
    if version == 1 and "schema" not in record:
        record = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "graph", **record}
    elif not _int(version) or version > SCHEMA_VERSION:
        raise RecordError(
            f"{path}: schema_version {version!r}; this library reads versions up to {SCHEMA_VERSION}: upgrade it"
        )
    config = record.get("config")
    if isinstance(config, dict) and config.get("model") == "plstm" and "first_sweep" not in config:
        # recorded before the first block's direction was a choice: it always swept forward
        record["config"] = {**config, "first_sweep": "forward"}
    return _check(record, str(path))


def _same(recorded, wanted) -> bool:
    if isinstance(wanted, list):
        return (
            isinstance(recorded, list)
            and len(recorded) == len(wanted)
            and all(_same(r, w) for r, w in zip(recorded, wanted))
        )
    if _number(wanted) and _number(recorded):
        return math.isclose(float(recorded), float(wanted), rel_tol=1e-12, abs_tol=0.0)
    return recorded == wanted


def config_mismatch(record: dict, expected: dict):
    """The first ``(key, recorded, expected)`` on which a record's configuration differs from ``expected``
    (only the keys of ``expected`` are compared), else ``None``."""
    recorded = record.get("config", {})
    for key, value in expected.items():
        if key not in recorded or not _same(recorded[key], value):
            return key, recorded.get(key, "<absent>"), value
    return None


def run_state(run_dir, expected: dict, checkpoint: str = "checkpoint.pt"):
    r"""What a run folder holds for the run configured as ``expected``:

    * ``("done", None)``: a finished run of that configuration;
    * ``("resume", None)``: an unfinished one (a record or only a checkpoint), which ``--resume`` continues;
    * ``("stale", detail)``: a run of another configuration, or a record this library cannot read;
    * ``("new", None)``: nothing.
    """
    run_dir = Path(run_dir)
    try:
        record = read_record(run_dir)
    except RecordError as error:
        return "stale", str(error)
    if record is not None:
        mismatch = config_mismatch(record, expected)
        if mismatch:
            return "stale", "{} was {!r}, the suite asks for {!r}".format(*mismatch)
        return ("done", None) if record["finished"] else ("resume", None)
    if (run_dir / checkpoint).exists():
        return "resume", None
    return "new", None
