"""benchmarks/depth.py on the results of a tiny suite run (the TU-format set of test_suite)."""

import json

import pytest
import torch

from benchmarks import depth, suite
from tests.benchmarks.test_suite import NAME, tiny_config, write_tu_set


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("depth")
    root = tmp / "data"
    write_tu_set(root, num_graphs=60)
    models = {
        "plstm": {"model": "plstm", "label": "pLSTM", "args": {"hidden": 8, "layers": 2, "heads": 1}},
        "gcn": {"model": "gcn", "label": "GCN", "args": {"hidden": 8, "layers": 2}},
    }
    datasets = {NAME: {"folds": 10, "run_folds": [0], "label": "tiny TU"}}
    config = tiny_config(tmp / "tiny.json", root, models=models, datasets=datasets)
    out = tmp / "out"
    assert suite.main([str(config), "--preset", "cpu", "--out", str(out), "--no-progress"]) == 0
    return out


def test_depth_bins_cover_every_depth_once():
    values = torch.tensor([3, 3, 4, 7, 9, 12, 12, 20])
    bins = depth.depth_bins(values)
    assert bins[0][0] == 3 and bins[-1][1] == 20
    assert all(b[0] == a[1] + 1 for a, b in zip(bins, bins[1:]))
    assert sum(int(((values >= lo) & (values <= hi)).sum()) for lo, hi in bins) == len(values)
    assert depth.depth_bins(torch.tensor([5, 5, 5])) == [(5, 5)]


def test_by_depth_and_timing_of_a_results_folder(results, capsys):
    depth.main([str(results), "--steps", "1"])
    report = json.loads((results / "depth.json").read_text())
    by_model = {row["model"]: row for row in report["by_depth"]}
    assert sorted(by_model) == ["gcn", "plstm"]
    for row in by_model.values():
        assert sum(b["graphs"] for b in row["bins"]) == 6  # the validation fold of 60 graphs
        assert all(0.0 <= b["acc"] <= 1.0 for b in row["bins"])
        assert all(b["loss"] is None for b in row["bins"])  # multiclass: predictions are classes
    # the depths are those of the forward sweep of each validation graph (paths and cycles of 4-7 atoms)
    lows = [b["depth"][0] for b in by_model["plstm"]["bins"]]
    assert lows[0] >= 2 and by_model["plstm"]["bins"][-1]["depth"][1] <= 7
    timing = {(row["model"], row["backend"]): row for row in report["timing"]}
    assert set(timing) == {("gcn", "")} | {("plstm", backend) for backend in depth.BACKENDS}
    assert all(row["status"] == "ok" and row["epoch_s"] > 0 for row in timing.values())
    assert all(row["epoch_graphs"] == 48 for row in timing.values())  # 8 of 10 folds train
    text = (results / "depth.md").read_text()
    assert "| plstm | levels |" in text and "/ gcn |" in text and text in capsys.readouterr().out


def test_a_folder_without_finished_runs_or_run_name_is_a_clear_error(results, tmp_path):
    with pytest.raises(SystemExit, match="no finished runs"):
        depth.main([str(tmp_path)])
    with pytest.raises(SystemExit, match="--run seed7"):
        depth.main([str(results), "--run", "seed7"])
