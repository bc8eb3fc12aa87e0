"""Randomised hostile or careless suite configs and run folders: a config either plans runs that all stay
inside the suite's --out, or is refused with a SuiteError naming the file and key; never another error,
never a path outside."""

import copy
import json
import os
import random
from pathlib import Path

import pytest
from test_suite import tiny_config, write_tu_set  # the tiny TU set and config of the suite tests

from benchmarks import suite
from benchmarks.suite.config import SuiteError
from plstm_geometric.train.record import make_record, run_state, write_record

HOSTILE_NAMES = ["../../escape", "/abs/path", "a/b", "..", ".", "", " ", "-x", "--out", "n\x00ame", "ä/", 7, None]
HOSTILE_VALUES = [
    [8, "--out", "/elsewhere"],
    {"a": 1},
    "--resume",
    "-1",
    "8 --out /x",
    None,
    True,
    1e309,
    "nan",
    "",
]


def mutations(base: dict, rng: random.Random):
    """Yields (description, config) pairs: one hostile change each to a valid config."""
    for name in HOSTILE_NAMES:
        for where in ("name", "dataset", "model", "preset"):
            config = copy.deepcopy(base)
            if where == "name":
                config["name"] = name
            elif where == "dataset":
                config["datasets"] = {name: config["datasets"]["MUTAG"]} if isinstance(name, str) else name
            elif where == "model":
                config["models"] = {name: config["models"]["plstm"]} if isinstance(name, str) else name
            else:
                config["presets"] = {name: {}} if isinstance(name, str) else name
            yield f"{where} {name!r}", config
    flags = ["hidden", "epochs", "out", "resume", "root", "overwrite", "seed", "no_progress", "pool", "backend"]
    for _ in range(60):
        config = copy.deepcopy(base)
        layer = rng.choice(["top", "dataset", "model", "preset"])
        args = {
            "top": config["args"],
            "dataset": config["datasets"]["MUTAG"].setdefault("args", {}),
            "model": config["models"]["plstm"]["args"],
            "preset": config["presets"]["cpu"].setdefault("args", {}),
        }[layer]
        flag = rng.choice(flags + ["x" * rng.randint(1, 3)])
        args[flag] = rng.choice(HOSTILE_VALUES + [rng.randint(-3, 3)])
        yield f"{layer}.args.{flag}={args[flag]!r}", config
    for key in ("seeds", "run_folds", "folds", "jobs"):
        for value in (-1, [-1], ["0"], [True], 10**9, [10**9], "all", [], None):
            config = copy.deepcopy(base)
            target = config["presets"]["cpu"] if key in ("jobs",) else config["datasets"]["MUTAG"]
            target[key] = value
            yield f"{key}={value!r}", config


def test_no_config_escapes_out_or_fails_with_another_error(tmp_path):
    root = tmp_path / "data"
    write_tu_set(root)
    base = json.loads(tiny_config(tmp_path / "base.json", root).read_text())
    out = (tmp_path / "out").resolve()
    rng = random.Random(0)
    outcomes = {"planned": 0, "refused": 0}
    for number, (what, config) in enumerate(mutations(base, rng)):
        path = tmp_path / f"config{number}.json"
        path.write_text(json.dumps(config))
        try:
            loaded = suite.load_config(path)
            preset = next(iter(loaded["presets"]), None)
            the_plan = suite.plan(loaded, path, preset, out=str(out), root=str(root))
        except SuiteError as error:
            assert str(error).startswith(str(path)), (what, str(error))
            outcomes["refused"] += 1
            continue
        outcomes["planned"] += 1
        for run in the_plan["runs"]:
            run_dir = (out / run["run_dir"]).resolve()
            assert os.path.commonpath([out, run_dir]) == str(out), what
            command = run["command"]
            # the suite's own flags appear once, with the suite's values: a config cannot move or resume a run
            assert command.count("--out") == 1 and command[command.index("--out") + 1] == str(out / run["run_dir"])
            assert "--resume" not in command and "--overwrite" not in command, what
    assert outcomes["planned"] >= 5 and outcomes["refused"] > 50, outcomes


@pytest.mark.parametrize("seed", range(3))
def test_damaged_run_folders_are_stale_or_resumable_never_an_error(tmp_path, seed):
    """Whatever a run folder holds (a damaged, foreign or linked record, a directory where the file
    should be), the suite's run state is one of its four answers."""
    rng = random.Random(seed)
    contents = [
        b"",
        b"{",
        b"null",
        b"[]",
        b'{"finished": true}',
        json.dumps({"config": {"lr": 1}, "finished": "true"}).encode(),
        json.dumps({"schema_version": 99, "config": {}}).encode(),
        bytes(rng.getrandbits(8) for _ in range(64)),
    ]
    for number, content in enumerate(contents):
        run_dir = tmp_path / f"run{number}"
        run_dir.mkdir()
        (run_dir / "results.json").write_bytes(content)
        state, detail = run_state(run_dir, {"lr": 1})
        assert state in ("stale", "new", "resume"), (content, state)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "results.json").mkdir()  # a folder where the record should be
    assert run_state(linked, {"lr": 1})[0] == "new"
    good = tmp_path / "good"
    write_record(good.mkdir() or good, make_record("graph", {"lr": 1}, finished=True))
    assert run_state(good, {"lr": 1}) == ("done", None)
    assert Path(good / "results.json").is_file()
