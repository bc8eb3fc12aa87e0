import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from plstm_geometric.datasets import load_dataset
from plstm_geometric.train.graph import TargetScaler, is_better, loss_function, main, run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The embedded nci-tpsa set, built once for this module."""
    path = tmp_path_factory.mktemp("datasets")
    load_dataset("nci-tpsa", str(path))
    return str(path)


def tiny(root, out, model="gin", epochs=2, *extra):
    # one thread: tiny tensors on a shared machine are many times faster without OpenMP synchronisation
    return ["--root", root, "--out", str(out), "--model", model, "--epochs", str(epochs), "--hidden", "16",
            "--layers", "2", "--heads", "2", "--max-train-graphs", "48", "--max-eval-graphs", "21",
            "--batch-size", "16", "--threads", "1", "--no-progress", *extra]


def read_log(out):
    with open(Path(out) / "log.csv") as file:
        return list(csv.DictReader(file))


def subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("model", ["plstm", "gin", "gin-virtual", "gcn"])
def test_each_model_writes_results_log_and_plot(root, tmp_path, model):
    results = main(tiny(root, tmp_path, model))
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert results["finished"] and results["model"] == model and results["metric"] == "rmse"
    assert results["num_graphs"] == {"train": 48, "valid": 21, "test": 21}
    assert results["num_parameters"] > 0 and len(results["epoch_times_s"]) == 2
    assert set(results["metrics"]) == {"train", "valid", "test"}
    assert all(math.isfinite(value) and value > 0 for value in results["metrics"].values())

    log = read_log(tmp_path)
    assert [int(row["epoch"]) for row in log] == [1, 2]
    valid = [float(row["valid_rmse"]) for row in log]
    # rmse: the best epoch is the one with the lowest validation error, and its numbers are reported
    assert results["best_epoch"] == 1 + valid.index(min(valid))
    assert results["metrics"]["valid"] == pytest.approx(min(valid), rel=1e-6)
    assert results["metrics"]["test"] == pytest.approx(float(log[results["best_epoch"] - 1]["test_rmse"]), rel=1e-6)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 2


def test_target_scaler_ignores_missing_labels():
    y = torch.tensor([[1.0, float("nan")], [3.0, 10.0], [5.0, 14.0]])
    scaler = TargetScaler(y)
    assert torch.allclose(scaler.mean, torch.tensor([3.0, 12.0]))
    assert torch.allclose(scaler.std, torch.tensor([2.0, 2.0 ** 1.5]))
    assert torch.allclose(scaler.unscale(scaler.scale(y[1:])), y[1:])


def test_losses_leave_out_missing_labels():
    out = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    y = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([0.5, 2.0, 0.0]),
                                                                   torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(loss_function("binary classification", "rocauc", None)(out, y), expected)
    scaler = TargetScaler(torch.tensor([[0.0, 0.0], [2.0, 4.0]]))  # mean (1, 2), std (sqrt 2, sqrt 8)
    scaled = (y - scaler.mean) / scaler.std
    regression = loss_function("regression", "rmse", scaler)(out, y)
    known = ~torch.isnan(y)
    assert torch.allclose(regression, (out[known] - scaled[known]).pow(2).mean())
    assert torch.allclose(loss_function("regression", "mae", scaler)(out, y), (out[known] - scaled[known]).abs().mean())


def test_model_selection_direction():
    assert is_better("rmse", 1.0, 2.0) and not is_better("rmse", 3.0, 2.0)
    assert is_better("rocauc", 0.9, 0.8) and not is_better("ap", 0.1, 0.2)
    assert is_better("acc", 0.0, None)


def test_resume_refuses_a_different_configuration(root, tmp_path):
    main(tiny(root, tmp_path, "gcn", 1))
    with pytest.raises(ValueError, match="--resume.*hidden"):
        main(tiny(root, tmp_path, "gcn", 1, "--resume", "--hidden", "8"))


def test_killed_run_resumes_from_its_checkpoint(root, tmp_path):
    epochs = 6
    reference = main(tiny(root, tmp_path / "reference", "gin", epochs))

    # a run killed hard (SIGKILL: no cleanup at all) once its epoch-2 checkpoint is on disk
    killed = tmp_path / "killed"
    checkpoint = killed / "checkpoint.pt"
    process = subprocess.Popen([sys.executable, "-m", "plstm_geometric.train", *tiny(root, killed, "gin", epochs)],
                               cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, seen = time.monotonic() + 120, None
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.exists() and checkpoint.stat().st_mtime_ns != seen:
                seen = checkpoint.stat().st_mtime_ns
                if torch.load(checkpoint, weights_only=False)["epoch"] >= 2:
                    process.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()
    stopped_after = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 2 <= stopped_after < epochs, "the run was not interrupted before its end"
    assert not json.loads((killed / "results.json").read_text())["finished"]

    resumed = main(tiny(root, killed, "gin", epochs, "--resume"))
    log = read_log(killed)
    assert [int(row["epoch"]) for row in log] == list(range(1, epochs + 1))
    # the interrupted epoch is redone from the checkpoint's weights, optimizer and RNG states: the end
    # result is that of the uninterrupted run
    assert resumed["best_epoch"] == reference["best_epoch"]
    for split in ("train", "valid", "test"):
        assert resumed["metrics"][split] == pytest.approx(reference["metrics"][split], rel=1e-5)
    for row, reference_row in zip(log, read_log(tmp_path / "reference")):
        assert float(row["train_loss"]) == pytest.approx(float(reference_row["train_loss"]), rel=1e-5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_matches_a_single_process(root, tmp_path):
    # Equivalence needs a model without batch statistics (pLSTM: layer norm only) and no dropout, and
    # the same optimisation steps: one full batch of 32 graphs in one process equals two processes with
    # 16 graphs each, since DDP averages the two half-batch mean gradients. 21 evaluation graphs split
    # 11 / 10 over the processes check that gathering restores every prediction exactly once.
    common = ["--model", "plstm", "--dropout", "0", "--hidden", "16", "--layers", "1", "--heads", "2",
              "--epochs", "2", "--max-train-graphs", "32", "--max-eval-graphs", "21", "--root", root, "--threads", "1",
              "--no-progress"]
    single = main([*common, "--batch-size", "32", "--out", str(tmp_path / "single")])
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(free_port()), "-m", "plstm_geometric.train", *common,
               "--batch-size", "16", "--out", str(tmp_path / "ddp")]
    completed = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert ddp["world_size"] == 2 and ddp["num_graphs"] == single["num_graphs"]
    assert ddp["best_epoch"] == single["best_epoch"]
    for split in ("train", "valid", "test"):
        assert ddp["metrics"][split] == pytest.approx(single["metrics"][split], rel=1e-4)
    for row, single_row in zip(read_log(tmp_path / "ddp"), read_log(tmp_path / "single")):
        for key in ("train_loss", "valid_rmse", "test_rmse"):
            assert float(row[key]) == pytest.approx(float(single_row[key]), rel=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("model", ["plstm", "gin-virtual"])
def test_runs_on_cuda(root, tmp_path, model):
    results = main(tiny(root, tmp_path, model, 2, "--device", "cuda"))
    assert results["device"].startswith("cuda:0 (")
    assert all(math.isfinite(value) for value in results["metrics"].values())
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]["head.weight"].device.type == "cuda"
