import json

import numpy as np
import pytest
import torch

from benchmarks.longrange.__main__ import main
from benchmarks.longrange.plan import PlannedRun, load_config, plan_runs
from benchmarks.longrange.tasks import FAMILIES, TASKS, TaskSpec, make_dataset, make_graph
from plstm_geometric.graph import dagify, node_levels


def longest_path_to(edge_index, num_nodes, start, query):
    """Length of the longest directed path start -> query in the DAG (-1 when query is unreachable)."""
    best = [-1] * num_nodes
    best[start] = 0
    for u, v in sorted(edge_index.t().tolist()):  # every edge goes from lower to higher index
        if best[u] >= 0:
            best[v] = max(best[v], best[u] + 1)
    return best[query]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("depth", [1, 7])
def test_graphs_are_topologically_numbered_and_start_reaches_query_at_depth(family, depth):
    rng = np.random.default_rng(0)
    for _ in range(5):
        data = make_graph(TaskSpec("copy", family, depth), rng)
        n = data.num_nodes
        dag = dagify(data.edge_index, n)
        assert dag.size(1) * 2 == data.edge_index.size(1)
        assert bool((dag[0] < dag[1]).all())
        start = int(data.x[:, 1].argmax())
        query = int(data.x[:, 2].argmax())
        assert data.x[:, 1].sum() == 1 and data.x[:, 2].sum() == 1
        assert int(data.readout_mask.nonzero()) == query
        # the start is a DAG source and the query is exactly `depth` levels below it
        assert not bool((dag[1] == start).any())
        levels = node_levels(dag, n)
        assert int(levels[query]) - int(levels[start]) == depth
        assert longest_path_to(dag, n, start, query) == depth


def test_labels_follow_the_task_definitions():
    for task in TASKS:
        for data in make_dataset(TaskSpec(task, "path", 5), 40, seed=3):
            start, query = int(data.x[:, 1].argmax()), int(data.x[:, 2].argmax())
            expected = int(data.x[start, 0])
            if task == "combine":
                expected ^= int(data.x[query, 0])
            assert int(data.y) == expected
    labels = torch.cat([d.y for d in make_dataset(TaskSpec("copy", "tree", 4), 400, seed=0)])
    assert 0.4 < labels.float().mean() < 0.6


def test_splits_differ_and_are_reproducible():
    spec = TaskSpec("copy", "layered", 4)
    a, b = make_dataset(spec, 3, seed=0), make_dataset(spec, 3, seed=0)
    c = make_dataset(spec, 3, seed=1)
    assert all(torch.equal(x.edge_index, y.edge_index) and torch.equal(x.x, y.x) for x, y in zip(a, b))
    assert not all(x.num_nodes == y.num_nodes and torch.equal(x.x, y.x) for x, y in zip(a, c))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(task="copyy", family="path", depth=3), "task"),
        (dict(task="copy", family="ring", depth=3), "family"),
        (dict(task="copy", family="path", depth=0), "depth"),
        (dict(task="copy", family="path", depth=True), "depth"),
        (dict(task="copy", family="layered", depth=3, width=0), "width"),
    ],
)
def test_task_spec_refuses_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TaskSpec(**kwargs)


def tiny_config(tmp_path):
    config = {
        "sizes": {"train": 16, "val": 8, "test": 8},
        "train": {"steps": 3, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "warmup": 1, "eval_every": 2},
        "models": {"plstm": {"args": {"hidden": 8}}, "gcn": {"args": {"hidden": 8, "layers": 2}}},
        "tasks": [{"task": "combine", "family": "path", "depths": [2, 4]}],
        "presets": {"tiny": {}},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_run_writes_records_resumes_and_renders(tmp_path, capsys):
    config, out = tiny_config(tmp_path), tmp_path / "out"
    assert main(["run", "--config", str(config), "--preset", "tiny", "--out", str(out)]) == 0
    records = sorted(out.glob("runs/*/*/*/results.json"))
    assert len(records) == 4
    record = json.loads(records[0].read_text())
    assert record["finished"] and record["steps"] == 3 and 0.0 <= record["test_acc"] <= 1.0
    assert record["parameters"] > 0 and record["history"][-1]["step"] == 3
    assert (out / "longrange.md").exists() and (out / "longrange.png").stat().st_size > 0
    capsys.readouterr()
    # a second run trains nothing: every run is finished
    assert main(["run", "--config", str(config), "--preset", "tiny", "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("done already") == 4
    assert "| plstm |" in (out / "longrange.md").read_text()


def test_plan_refuses_unknown_names(tmp_path):
    config = load_config(tiny_config(tmp_path))
    with pytest.raises(ValueError, match="preset"):
        plan_runs(config, "gpu")
    with pytest.raises(ValueError, match="--only"):
        plan_runs(config, "tiny", ["gat"])
    runs = plan_runs(config, "tiny", ["gcn"])
    assert [r.name for r in runs] == ["combine-path-2/gcn/seed0", "combine-path-4/gcn/seed0"]
    assert all(isinstance(r, PlannedRun) for r in runs)
