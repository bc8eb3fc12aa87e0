"""The GPU check's CPU quick mode, its caps and its flushing (benchmarks/gpu_check/)."""

import json
import subprocess
import sys
import time

import pytest
import torch

from benchmarks import backends, gpu_check
from benchmarks.data import load_graphs
from benchmarks.gpu_check import runner
from plstm_geometric.functional import dag

ROW_KEYS = {"workload", "method", "metric", "value", "unit", "status"}


def read_report(out):
    return json.loads((out / "gpu_check.json").read_text())


def item(report, name):
    return next(entry for entry in report["items"] if entry["name"] == name)


def check_rows(rows):
    for row in rows:
        assert ROW_KEYS <= set(row)
        if row["status"] == "ok":
            assert isinstance(row["value"], float) and row["value"] == row["value"], row
        else:
            assert row["value"] is None and row["status"].startswith(("error: ", "skipped: ")), row


@pytest.mark.slow
def test_quick_cpu_run_records_every_item(tmp_path):
    returned = gpu_check.main(["--device", "cpu", "--quick", "--no-isolate", "--out", str(tmp_path)])
    report = read_report(tmp_path)
    assert report == json.loads(json.dumps(returned))
    assert [entry["name"] for entry in report["items"]] == list(gpu_check.CAPS)
    head = report["header"]
    for key in ("device", "torch", "torch_geometric", "triton", "cuda", "commit", "date", "caps_s"):
        assert key in head
    assert head["mode"] == "quick" and head["torch"] == torch.__version__
    for entry in report["items"]:
        assert entry["status"] != "pending" and entry["status"] != "running"
        check_rows(entry["rows"])
        # Every item has measured something, or says why not.
        assert entry["rows"] or entry["error"] or entry["status"].startswith("skipped"), entry
    assert item(report, "gpu_tests")["status"] == "skipped: no CUDA"
    for name in ("dag", "grid", "chain", "scan", "lstm", "training"):
        entry = item(report, name)
        assert entry["status"] == "ok", (entry["error"], entry["traceback"])
        assert any(row["status"] == "ok" for row in entry["rows"])
        # On CPU every measurement runs, except the Triton paths, which need CUDA.
        assert all(row["status"] == "ok" or row["status"].startswith("skipped: ") for row in entry["rows"]), name
    dag_item = item(report, "dag")
    methods = {(row["workload"], row["method"]) for row in dag_item["rows"] if row["metric"] == "fwd_bwd_ms"}
    for workload in ("nci16", "peptides2"):
        # every backend of the registry has a row: measured, or skipped with the reason
        assert {(workload, backend) for backend in dag.BACKENDS if backend != "auto"} <= methods
        assert dag_item["info"][workload]["levels"] >= 1
    triton_rows = [row for row in dag_item["rows"] if row["method"] in backends.triton_backends(dag)]
    assert triton_rows and all(row["status"] == "skipped: needs CUDA" for row in triton_rows)
    deviations = [row for row in dag_item["rows"] if "max_abs_diff_vs_levels" in row]
    assert {row["method"] for row in deviations} == set(backends.timed(dag, torch.device("cpu")))
    assert all(row["max_abs_diff_vs_levels"] < 1e-4 for row in deviations)
    training = {row["method"] for row in item(report, "training")["rows"] if row["status"] == "ok"}
    assert {"PLSTMGraphModel", "PLSTMGraphModel (peptides-func)", "PLSTMVis"} == training
    markdown = (tmp_path / "gpu_check.md").read_text()
    for name in gpu_check.CAPS:
        assert f"| {name} |" in markdown
    assert head["commit"] in markdown


def fake_item(rows_before, then):
    def run_item(run, out):
        for index in range(rows_before):
            run.add("fake", f"method {index}", "ms", 1.0, "ms")
        then()
        return "ok"

    return run_item


def test_cap_cut_keeps_what_was_measured(tmp_path, monkeypatch):
    # The first item is cut by its cap while sleeping (the hard cap, SIGALRM); the second finds the run's
    # budget spent. Both leave a valid JSON with what they measured.
    monkeypatch.setitem(gpu_check.ITEMS, "grid", fake_item(2, lambda: time.sleep(30)))
    monkeypatch.setitem(gpu_check.ITEMS, "chain", fake_item(1, lambda: None))
    start = time.time()
    gpu_check.main(
        [
            "--device",
            "cpu",
            "--quick",
            "--no-isolate",
            "--out",
            str(tmp_path),
            "--items",
            "grid",
            "chain",
            "--cap",
            "grid=1.5",
            "--budget",
            "2",
        ]
    )
    assert time.time() - start < 15
    report = read_report(tmp_path)
    grid = item(report, "grid")
    assert grid["status"] == "partial: cap" and len(grid["rows"]) == 2 and grid["cap_s"] == 1.5
    check_rows(grid["rows"])
    assert item(report, "chain")["status"] == "skipped: cap"
    assert "partial: cap" in (tmp_path / "gpu_check.md").read_text()


def test_interrupted_run_leaves_valid_json(tmp_path, monkeypatch):
    def interrupt():
        raise KeyboardInterrupt

    monkeypatch.setitem(gpu_check.ITEMS, "lstm", fake_item(1, interrupt))
    with pytest.raises(KeyboardInterrupt):
        gpu_check.main(
            ["--device", "cpu", "--quick", "--no-isolate", "--out", str(tmp_path), "--items", "lstm", "scan"]
        )
    report = read_report(tmp_path)
    lstm = item(report, "lstm")
    assert lstm["status"] == "interrupted" and lstm["rows"][0]["method"] == "method 0"
    assert item(report, "scan")["status"] == "pending"


def test_item_error_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    def fail():
        raise RuntimeError("no kernel image is available")

    monkeypatch.setitem(gpu_check.ITEMS, "scan", fake_item(0, fail))
    monkeypatch.setitem(gpu_check.ITEMS, "lstm", fake_item(1, lambda: None))
    gpu_check.main(["--device", "cpu", "--quick", "--no-isolate", "--out", str(tmp_path), "--items", "scan", "lstm"])
    report = read_report(tmp_path)
    scan = item(report, "scan")
    assert scan["status"] == "error" and "no kernel image" in scan["error"] and scan["traceback"]
    assert item(report, "lstm")["status"] == "ok"


def test_isolated_item_is_killed_at_its_cap(tmp_path, monkeypatch):
    # The item's process cannot even import torch within a tenth of a second: the parent kills it (no
    # grace here) and records the item as cut.
    monkeypatch.setattr(runner, "KILL_GRACE_S", 0)
    monkeypatch.setattr(runner, "POLL_S", 0.05)
    (tmp_path / "logs").mkdir()
    updates = []
    start = time.time()
    record = gpu_check.run_item_isolated("lstm", torch.device("cpu"), True, time.time() + 0.1, tmp_path, updates.append)
    assert time.time() - start < 10
    assert record["status"] == "skipped: cap" and record["rows"] == [] and updates[-1] is record


@pytest.mark.slow
def test_isolated_item_runs_in_its_own_process(tmp_path):
    gpu_check.main(["--device", "cpu", "--quick", "--isolate", "--out", str(tmp_path), "--items", "lstm"])
    lstm = item(read_report(tmp_path), "lstm")
    assert lstm["status"] == "ok", lstm
    assert {row["method"] for row in lstm["rows"]} == {"GILRLSTM", "nn.LSTM"}
    check_rows(lstm["rows"])


def test_cap_option_is_checked():
    with pytest.raises(ValueError, match="--cap"):
        gpu_check.parse_caps(["gird=3"], quick=False)
    with pytest.raises(ValueError, match="--cap"):
        gpu_check.parse_caps(["grid=soon"], quick=False)
    assert gpu_check.parse_caps(["grid=3"], quick=True)["grid"] == 3.0


def test_shipped_batches_are_consistent():
    data = load_graphs("nci1024", 128)
    assert data.num_graphs == 128 and int(data.batch.max()) == 127
    assert data.x.dtype == data.edge_index.dtype == data.edge_attr.dtype == torch.long
    assert data.x.size(1) == 9 and data.edge_attr.size(1) == 3 and data.edge_attr.size(0) == data.edge_index.size(1)
    assert int(data.edge_index.max()) < data.num_nodes
    # Edges stay within their graph.
    assert torch.equal(data.batch[data.edge_index[0]], data.batch[data.edge_index[1]])
    peptides = load_graphs("peptides64")
    assert peptides.num_graphs == 64 and peptides.num_nodes > 64 * 100
    with pytest.raises(ValueError, match="num_graphs"):
        load_graphs("peptides64", 65)


def test_shipped_molecules_match_the_script():
    pytest.importorskip("rdkit")
    pytest.importorskip("ogb")
    from benchmarks import make_gpu_data

    built = make_gpu_data.featurise(make_gpu_data.nci_smiles()[:40], 8)
    shipped = load_graphs("nci1024", 8)
    assert torch.equal(built["x"].long(), shipped.x)
    assert torch.equal(built["edge_index"].long(), shipped.edge_index)
    assert torch.equal(built["edge_attr"].long(), shipped.edge_attr)


def test_pytest_summary_is_counted():
    counts = gpu_check.pytest_counts("= 17 passed, 2 failed, 1 skipped, 506 deselected, 3 errors in 41.20s =")
    assert counts == {"passed": 17, "failed": 2, "skipped": 1, "deselected": 506, "error": 3}
    assert gpu_check.pytest_counts("1 error in 0.5s") == {"error": 1}
    assert gpu_check.pytest_counts("/usr/bin/python: No module named pytest") == {}


def test_the_module_command_keeps_its_flags_and_files(tmp_path):
    # `python -m benchmarks.gpu_check --out DIR --commit SHA` as docs/benchmarks.md gives it (CPU, one item).
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path), "--commit", "abc1234"]
    command += ["--device", "cpu", "--quick", "--no-isolate", "--items", "lstm"]
    result = subprocess.run(command, cwd=runner.ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = read_report(tmp_path)
    assert report["header"]["commit"] == "abc1234" and item(report, "lstm")["status"] == "ok"
    assert "commit abc1234" in (tmp_path / "gpu_check.md").read_text()


def test_a_run_in_this_process_leaves_its_thread_count_and_grad_mode(tmp_path, monkeypatch):
    seen = []

    def record(run, out):
        seen.append((torch.get_num_threads(), torch.is_grad_enabled()))
        run.add("fake", "method", "ms", 1.0, "ms")
        return "ok"

    monkeypatch.setitem(gpu_check.ITEMS, "lstm", record)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gpu_check.main(["--device", "cpu", "--quick", "--no-isolate", "--out", str(tmp_path), "--items", "lstm"])
        # quick CPU runs use one thread, and give the caller's setting back
        assert seen == [(1, True)] and torch.get_num_threads() == 2 and torch.is_grad_enabled()
    finally:
        torch.set_num_threads(threads)
