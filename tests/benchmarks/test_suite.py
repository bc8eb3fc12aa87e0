"""The results suite (benchmarks/suite.py) on a tiny TU-format set the test writes itself."""

import json
import os
import random
from pathlib import Path

import pytest

from benchmarks import suite

NAME = "MUTAG"  # a name the TU loader accepts; the graphs are the test's own


def write_tu_set(root: Path, name: str = NAME, num_graphs: int = 40, seed: int = 0):
    """A few dozen small graphs in TUDataset's raw text layout (root/TU/NAME/raw/NAME_*.txt): class 0 are
    paths, class 1 are cycles, with 3 node labels."""
    rng = random.Random(seed)
    raw = root / "TU" / name / "raw"
    raw.mkdir(parents=True)
    edges, indicator, graph_labels, node_labels = [], [], [], []
    offset = 0
    for graph in range(num_graphs):
        label = graph % 2
        n = rng.randint(4, 7)
        pairs = [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if label else [])
        for a, b in pairs:
            edges += [(offset + a + 1, offset + b + 1), (offset + b + 1, offset + a + 1)]
        indicator += [graph + 1] * n
        node_labels += [rng.randint(0, 2) for _ in range(n)]
        graph_labels.append(label)
        offset += n
    (raw / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / f"{name}_graph_indicator.txt").write_text("".join(f"{g}\n" for g in indicator))
    (raw / f"{name}_graph_labels.txt").write_text("".join(f"{y}\n" for y in graph_labels))
    (raw / f"{name}_node_labels.txt").write_text("".join(f"{x}\n" for x in node_labels))


def tiny_config(path: Path, root: Path, **changes) -> Path:
    published = path.parent / "published.json"
    published.write_text(
        json.dumps(
            {
                "sources": {"paper": "A paper, table 1"},
                "results": {NAME: [{"model": "paper pLSTM", "mean": 0.8512, "std": 0.06, "source": "paper"}]},
            }
        )
    )
    config = {
        "name": "tiny",
        "root": str(root),
        "published": "published.json",
        "args": {"epochs": 2, "batch_size": 8, "threads": 1, "lr": 0.01},
        "datasets": {NAME: {"folds": 10, "run_folds": [0, 1], "label": "tiny TU"}},
        "models": {"plstm": {"model": "plstm", "label": "pLSTM", "args": {"hidden": 8, "layers": 1, "heads": 1}}},
        "presets": {"cpu": {"args": {"epochs": 2}}},
    }
    config.update(changes)
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def tiny(tmp_path):
    root = tmp_path / "data"
    write_tu_set(root)
    return tiny_config(tmp_path / "tiny.json", root), tmp_path / "out"


def test_suite_runs_resumes_and_renders(tiny, capsys):
    config, out = tiny
    argv = [str(config), "--preset", "cpu", "--out", str(out), "--no-progress"]
    # a suite stopped after its first run ...
    assert suite.main(argv + ["--max-runs", "1"]) == 0
    first = out / "runs" / NAME / "plstm" / "fold0-seed0" / "results.json"
    second = out / "runs" / NAME / "plstm" / "fold1-seed0" / "results.json"
    assert json.loads(first.read_text())["finished"] and not second.exists()
    first_mtime = os.stat(first).st_mtime_ns
    rows = json.loads((out / "runs.json").read_text())
    assert [r["status"] for r in rows] == ["done", "missing"]
    # ... continues where it stopped, without running the finished run again
    assert suite.main(argv) == 0
    assert os.stat(first).st_mtime_ns == first_mtime
    record = json.loads((first.parent / "suite_run.json").read_text())
    assert len(record["attempts"]) == 1
    assert json.loads(second.read_text())["finished"]

    rows = json.loads((out / "runs.json").read_text())
    assert [(r["fold"], r["status"]) for r in rows] == [(0, "done"), (1, "done")]
    results = [json.loads(p.read_text()) for p in (first, second)]
    assert [r["test"] for r in rows] == [r["metrics"]["test"] for r in results]
    assert all(r["config"]["epochs"] == 2 and r["config"]["hidden"] == 8 for r in results)
    (aggregate,) = json.loads((out / "aggregate.json").read_text())
    tests = [r["metrics"]["test"] for r in results]
    mean = sum(tests) / 2
    assert aggregate["runs"] == 2 and aggregate["test_mean"] == pytest.approx(mean)
    assert aggregate["test_std"] == pytest.approx(abs(tests[0] - tests[1]) / 2)
    assert aggregate["num_parameters"] == results[0]["num_parameters"]
    assert (out / "runs.csv").read_text().count("\n") == 3 and (out / "aggregate.csv").exists()

    table = (out / "results.md").read_text()
    assert f"{mean:.4f}" in table and "*0.8512 ± 0.0600*" in table and "A paper, table 1" in table
    assert f"{results[0]['num_parameters']:,}" in table and results[0]["git_commit"][:10] in table
    assert "--fold FOLD" in table and "2/2 runs finished" in table
    # render rebuilds the same markdown from the folder alone
    capsys.readouterr()
    assert suite.main(["render", str(out)]) == 0
    assert capsys.readouterr().out == table

    # a finished run folder with another configuration is refused, not silently overwritten
    changed = json.loads(config.read_text())
    changed["args"]["lr"] = 0.02
    config.write_text(json.dumps(changed))
    assert suite.main(argv) == 2
    assert "lr was 0.01, the suite asks for 0.02" in capsys.readouterr().err


def test_dry_run_prints_commands_and_states(tiny, capsys):
    config, out = tiny
    assert suite.main([str(config), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("[new] ") for line in lines)
    assert "--fold 0 --seed 0" in lines[0] and "--fold 1 --seed 0" in lines[1]
    assert "--hidden 8 --layers 1 --heads 1" in lines[0] and not out.exists()


def test_a_flag_of_two_values_takes_a_list(tmp_path, capsys):
    root = tmp_path / "data"
    write_tu_set(root, num_graphs=20)
    config = tiny_config(tmp_path / "pair.json", root, args={"transition_start": [0.95, 0.9999]})
    assert suite.main([str(config), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "--transition-start 0.95 0.9999" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epoch": 3}, "epoch: unknown key"),
        ({"datasets": {NAME: {"run_folds": [0]}}}, f"datasets.{NAME}.folds: missing"),
        ({"datasets": {NAME: {"folds": 10, "seed": [0]}}}, f"datasets.{NAME}.seed: unknown key"),
        ({"datasets": {"NOSUCHSET": {"folds": 10}}}, "datasets.NOSUCHSET: no TU data at"),
        ({"datasets": {"ogbg-molnosuch": {"seeds": [0]}}}, "datasets.ogbg-molnosuch: unknown OGB dataset"),
        ({"models": {"gat": {"args": {}}}}, "models.gat.model: unknown model 'gat'"),
        ({"args": {"warmup_epochs_typo": 5}}, "args.warmup_epochs_typo: the training CLI"),
        ({"args": {"fold": 1}}, "args.fold: is set by the suite"),
        ({"args": {"schedule": "linear"}}, "args.schedule: expected one of"),
        ({"args": {"transition_start": 0.9}}, "args.transition_start: --transition-start takes 2 value(s)"),
        ({"args": {"transition_start": [0.9]}}, "args.transition_start: --transition-start takes 2 value(s)"),
        ({"args": {"lr": [0.1, 0.2]}}, "args.lr: --lr takes 1 value(s)"),
        ({"args": {"transition_start": ["--lr", "1"]}}, "expected a number, string, bool or list of numbers"),
        ({"presets": {"cpu": {"models": ["gin"]}}}, "presets.cpu.models: 'gin' is not in models"),
        ({"published": "missing.json"}, "missing.json: published numbers file not found"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, capsys, change, message):
    root = tmp_path / "data"
    write_tu_set(root, num_graphs=20)
    config = tiny_config(tmp_path / "bad.json", root, **change)
    assert suite.main([str(config), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {config}: ") and message in error


def test_missing_config_and_preset(tiny, capsys):
    config, out = tiny
    assert suite.main([str(config.parent / "nope.json")]) == 2
    assert "nope.json: config file not found" in capsys.readouterr().err
    assert suite.main([str(config), "--preset", "huge", "--dry-run"]) == 2
    assert "presets.huge: no such preset" in capsys.readouterr().err
    assert suite.main(["render", str(out)]) == 2
    assert "suite.json: not found" in capsys.readouterr().err


def test_shipped_configs_load():
    for name in ("tu", "moleculenet", "molhiv", "lrgb"):
        config = suite.load_config(Path(suite.REPO) / "benchmarks" / "configs" / f"{name}.json")
        assert {"cpu", "full"} <= set(config["presets"]) and config["published_data"]["results"]


def test_git_state_ignores_the_results_folder(tmp_path, monkeypatch):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("a\n")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(suite.runner, "REPO", tmp_path)
    assert suite.git_state()["dirty"] is False
    (tmp_path / "results" / "table.md").write_text("b\n")
    assert suite.git_state()["dirty"] is False
    (tmp_path / "code.py").write_text("a = 2\n")
    assert suite.git_state()["dirty"] is True


@pytest.mark.parametrize(
    "changes, key",
    [
        # a list became several tokens: a config could move a run's output or add any flag
        ({"args": {"hidden": [8, "--out", "/elsewhere"]}}, "args.hidden"),
        ({"args": {"hidden": "--resume"}}, "args.hidden"),
        ({"args": {"root": "/elsewhere"}}, "args.root"),
        ({"args": {"overwrite": True}}, "args.overwrite"),
        ({"datasets": {"../../escape": {"folds": 10}}}, "datasets.../../escape"),
        ({"datasets": {"/abs": {"folds": 10}}}, "datasets./abs"),
        ({"presets": {"../../../x": {}}}, "presets.../../../x"),
        ({"name": ".."}, "name"),
        ({"models": {"../m": {"model": "plstm"}}}, "models.../m"),
    ],
)
def test_configs_cannot_reach_outside_the_results_folder(tmp_path, changes, key):
    path = tiny_config(tmp_path / "config.json", tmp_path / "data", **changes)
    with pytest.raises(suite.SuiteError, match=key.replace(".", r"\.").replace("/", "/")):
        config = suite.load_config(path)
        suite.plan(config, path, "cpu", tmp_path / "out", allow_download=True)


@pytest.mark.parametrize("drop", ["runs", "config", "preset"])
def test_render_of_an_incomplete_suite_file_names_what_is_missing(tmp_path, drop):
    record = {"config_path": "c.json", "preset": "cpu", "config": {}, "runs": []}
    del record[drop]
    (tmp_path / "suite.json").write_text(json.dumps(record))
    with pytest.raises(suite.SuiteError, match=f"missing key '{drop}'"):
        suite.render(tmp_path)
    (tmp_path / "suite.json").write_text(json.dumps({**record, drop: [] if drop == "runs" else {}, "runs": [{}]}))
    with pytest.raises(suite.SuiteError, match="incomplete run entry"):
        suite.render(tmp_path)


def test_the_planner_reads_the_training_parser_not_its_help(monkeypatch):
    import subprocess

    from plstm_geometric.train import registry

    def no_subprocess(*args, **kwargs):
        raise AssertionError("the planner must not start a process to learn the training flags")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    suite.cli_flags.cache_clear()
    flags = suite.cli_flags()
    assert flags["model"]["choices"] == list(registry.MODELS)
    assert flags["pool_norm"] == {
        "flag": "--pool-norm",
        "takes_value": True,
        "choices": ["batch", "none"],
        "values": None,
    }
    assert flags["transition_start"]["values"] == 2
    assert flags["resume"]["takes_value"] is False and "help" not in flags


def test_an_interrupted_suite_says_how_to_resume_instead_of_a_traceback(tiny, monkeypatch, capsys):
    from benchmarks.suite import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(cli, "execute", interrupted)
    config, out = tiny
    assert suite.main([str(config), "--preset", "cpu", "--out", str(out), "--no-progress"]) == 130
    assert "the same command resumes" in capsys.readouterr().err
