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

from plstm_geometric.datasets import build_ogb_dataset, load_dataset
from plstm_geometric.datasets.embedded import nci_tpsa_frame
from plstm_geometric.train import graph
from plstm_geometric.train.cli import parse_args
from plstm_geometric.train.errors import Diverged, RunError
from plstm_geometric.train.files import RunFolder
from plstm_geometric.train.graph import main, run
from plstm_geometric.train.loop import learning_rate
from plstm_geometric.train.tasks import TargetScaler, is_better, loss_function

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The embedded nci-tpsa set, built once for this module."""
    for package in ("rdkit", "ogb"):
        pytest.importorskip(package, reason="the embedded nci-tpsa set is built with RDKit and OGB")
    path = tmp_path_factory.mktemp("datasets")
    load_dataset("nci-tpsa", str(path))
    return str(path)


def tiny(root, out, model="gin", epochs=2, *extra):
    # one thread: tiny tensors on a shared machine are many times faster without OpenMP synchronisation
    return [
        "--root",
        root,
        "--out",
        str(out),
        "--model",
        model,
        "--epochs",
        str(epochs),
        "--hidden",
        "16",
        "--layers",
        "2",
        "--heads",
        "2",
        "--max-train-graphs",
        "48",
        "--max-eval-graphs",
        "21",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--no-progress",
        *extra,
    ]


def read_log(out):
    with open(Path(out) / "log.csv") as file:
        return list(csv.DictReader(file))


def subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("model", ["plstm", "gin", "gin-virtual", "gcn", "gine", "gatedgcn"])
def test_each_model_writes_results_log_and_plot(root, tmp_path, model):
    results = run(tiny(root, tmp_path, model))
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
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 2


def test_target_scaler_ignores_missing_labels():
    y = torch.tensor([[1.0, float("nan")], [3.0, 10.0], [5.0, 14.0]])
    scaler = TargetScaler(y)
    assert torch.allclose(scaler.mean, torch.tensor([3.0, 12.0]))
    assert torch.allclose(scaler.std, torch.tensor([2.0, 2.0**1.5]))
    assert torch.allclose(scaler.unscale(scaler.scale(y[1:])), y[1:])


def test_losses_leave_out_missing_labels():
    out = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    y = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([0.5, 2.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])
    )
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


def test_a_nan_best_is_always_replaced_and_never_chosen():
    nan = float("nan")
    for metric in ("rmse", "rocauc"):
        assert is_better(metric, 5.0, nan) and is_better(metric, -1.0, float("inf"))
        assert not is_better(metric, nan, None) and not is_better(metric, nan, 1.0)
        assert not is_better(metric, float("inf"), None)


def test_resume_refuses_a_different_configuration(root, tmp_path):
    run(tiny(root, tmp_path, "gcn", 1))
    with pytest.raises(RunError, match="--resume.*hidden"):
        run(tiny(root, tmp_path, "gcn", 1, "--resume", "--hidden", "8"))


def test_killed_run_resumes_from_its_checkpoint(root, tmp_path):
    epochs = 6
    reference = run(tiny(root, tmp_path / "reference", "gin", epochs))

    # a run killed hard (SIGKILL: no cleanup at all) once its epoch-2 checkpoint is on disk
    killed = tmp_path / "killed"
    checkpoint = killed / "checkpoint.pt"
    process = subprocess.Popen(
        [sys.executable, "-m", "plstm_geometric.train", *tiny(root, killed, "gin", epochs)],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, seen = time.monotonic() + 120, None
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.exists() and checkpoint.stat().st_mtime_ns != seen:
                seen = checkpoint.stat().st_mtime_ns
                if torch.load(checkpoint, weights_only=True)["epoch"] >= 2:
                    process.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()
    stopped_after = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 2 <= stopped_after < epochs, "the run was not interrupted before its end"
    assert not json.loads((killed / "results.json").read_text())["finished"]

    resumed = run(tiny(root, killed, "gin", epochs, "--resume"))
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
    # Equivalence needs a model without batch statistics (pLSTM without its pooled batch norm: layer norms
    # only) and no dropout, and
    # the same optimisation steps: one full batch of 32 graphs in one process equals two processes with
    # 16 graphs each, since DDP averages the two half-batch mean gradients. 21 evaluation graphs split
    # 11 / 10 over the processes check that gathering restores every prediction exactly once.
    common = [
        "--model",
        "plstm",
        "--pool-norm",
        "none",
        "--dropout",
        "0",
        "--hidden",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--epochs",
        "2",
        "--max-train-graphs",
        "32",
        "--max-eval-graphs",
        "21",
        "--root",
        root,
        "--threads",
        "1",
        "--no-progress",
    ]
    single = run([*common, "--batch-size", "32", "--out", str(tmp_path / "single")])
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "plstm_geometric.train",
        *common,
        "--batch-size",
        "16",
        "--out",
        str(tmp_path / "ddp"),
    ]
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
    results = run(tiny(root, tmp_path, model, 2, "--device", "cuda"))
    assert results["device"].startswith("cuda:0 (")
    assert all(math.isfinite(value) for value in results["metrics"].values())
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]["head.weight"].device.type == "cuda"


# ---------------------------------------------------------------------------------------------- flags
@pytest.mark.parametrize(
    "flags, name",
    [
        (["--grad-clip", "0"], "--grad-clip"),
        (["--grad-clip", "-1"], "--grad-clip"),
        (["--max-train-graphs", "0"], "--max-train-graphs"),
        (["--max-train-graphs", "-5"], "--max-train-graphs"),
        (["--max-train-graphs", "1"], "--max-train-graphs"),
        (["--max-eval-graphs", "0"], "--max-eval-graphs"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "1"], "--batch-size"),
        (["--lr", "0"], "--lr"),
        (["--lr", "-1e-3"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--dropout", "1"], "--dropout"),
        (["--dropout", "nan"], "--dropout"),
        (["--threads", "0"], "--threads"),
        (["--threads", "100000"], "--threads"),
        (["--model", "gin", "--pool-norm", "none"], "--pool-norm"),
        (["--model", "gin", "--first-sweep", "reverse"], "--first-sweep"),
        (["--first-sweep", "sideways"], "--first-sweep"),
        (["--model", "gcn", "--normalize-over", "incoming"], "--normalize-over"),
        (["--normalize-over", "both"], "--normalize-over"),
        (["--model", "gine", "--transition-start", "0.9", "0.99"], "--transition-start"),
        (["--transition-start", "0.9", "1.0"], "--transition-start"),
        (["--transition-start", "0.99", "0.9"], "--transition-start"),
        (["--transition-start", "-0.1", "0.9"], "--transition-start"),
        (["--transition-start", "0.9"], "--transition-start"),
        (["--hidden", "0"], "--hidden"),
        (["--heads", "-2"], "--heads"),
        (["--seed", "-1"], "--seed"),
        (["--num-workers", "-1"], "--num-workers"),
        (["--epochs", "two"], "--epochs"),
        (["--fold", "1"], "--fold"),
        (["--dataset", "MUTAG", "--fold", "10"], "--fold"),
        (["--pool", "max"], "--pool"),
        (["--device", "tpu"], "--device"),
        (["--device", "banana"], "--device"),
    ],
)
def test_meaningless_flags_are_argparse_errors(capsys, flags, name):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(flags)
    assert exit_info.value.code == 2
    assert name in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_a_clear_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--device", "cuda"])
    assert exit_info.value.code == 2
    assert "--device" in (err := capsys.readouterr().err) and "no CUDA" in err


def test_help_shows_defaults_and_one_thread(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10)" in help_text and "(default: nci-tpsa)" in help_text and "(default: 0.001)" in help_text
    assert parse_args([]).threads == 1 and "The default is 1" in help_text


def test_no_arguments_is_the_main_job():
    args = parse_args([])
    assert (args.dataset, args.model, args.root, args.threads) == ("nci-tpsa", "plstm", "datasets", 1)
    # the package runs as a module (its __main__) and as the console script's function
    completed = subprocess.run(
        [sys.executable, "-m", "plstm_geometric.train", "--epochs", "0"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2 and "--epochs" in completed.stderr


def test_unknown_dataset_is_a_clear_error(root, tmp_path, capsys):
    # an unknown name is a flag error (exit status 2), found before anything is loaded or written
    with pytest.raises(SystemExit) as info:
        main(tiny(root, tmp_path, "gin", 1, "--dataset", "no-such-set"))
    err = capsys.readouterr().err
    assert info.value.code == 2 and "error: --dataset: " in err and "'no-such-set'" in err and "build-ogb" in err
    assert not (tmp_path / "results.json").exists()


def test_one_training_graph_is_refused(root, tmp_path, monkeypatch):
    real_load = graph.load_dataset
    monkeypatch.setattr(graph, "load_dataset", lambda name, root: real_load(name, root)[:30])
    dataset = real_load("nci-tpsa", root)
    split = dataset.get_idx_split()
    # a dataset whose training split holds one graph: the limit flags cannot express it, a small set can
    monkeypatch.setattr(
        type(dataset),
        "get_idx_split",
        lambda self, *a, **k: {"train": split["train"][:1], "valid": split["valid"][:3], "test": split["test"][:3]},
    )
    with pytest.raises(RunError, match="1 training graph.*at least 2"):
        run(tiny(root, tmp_path, "gin", 1))


# ---------------------------------------------------------------------------------------------- divergence
def test_a_diverged_run_stops_with_an_error_and_keeps_a_finite_best(root, tmp_path, monkeypatch, capsys):
    real = graph.loss_function

    def poisoned(task, metric, scaler):
        loss_fn, calls = real(task, metric, scaler), []

        def loss(out, y):
            calls.append(1)
            # the weights become NaN in the second epoch (3 batches of 16 per epoch)
            return loss_fn(out, y) * (float("nan") if len(calls) > 3 else 1.0)

        return loss

    monkeypatch.setattr(graph, "loss_function", poisoned)
    with pytest.raises(Diverged, match="epoch 2: train_loss nan.*diverged"):
        run(tiny(root, tmp_path / "raised", "gin", 3))
    assert main(tiny(root, tmp_path, "gin", 3)) == 1
    assert "the run diverged" in capsys.readouterr().err

    def no_nan(text):
        raise AssertionError(f"results.json holds {text}")

    results = json.loads((tmp_path / "results.json").read_text(), parse_constant=no_nan)
    assert results["best_epoch"] == 1 and not results["finished"]
    assert all(math.isfinite(value) for value in results["metrics"].values())
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert [row["train_loss"] for row in read_log(tmp_path)][1] == "nan"


# ---------------------------------------------------------------------------------------------- resume
def test_a_finished_run_is_extended_with_more_epochs(root, tmp_path):
    first = run(tiny(root, tmp_path, "gcn", 2))
    assert first["finished"] and first["epochs_completed"] == 2
    log_before = read_log(tmp_path)
    extended = run(tiny(root, tmp_path, "gcn", 4, "--resume"))
    log = read_log(tmp_path)
    assert extended["epochs_completed"] == 4 and [int(row["epoch"]) for row in log] == [1, 2, 3, 4]
    assert log[:2] == log_before
    # the cosine schedule of a 4-epoch run from its third epoch on (a warm restart to lr * (1 + cos(pi/2)) / 2)
    args = parse_args(tiny(root, tmp_path, "gcn", 4))
    assert [float(row["lr"]) for row in log[2:]] == pytest.approx([learning_rate(args, 3), learning_rate(args, 4)])
    assert learning_rate(args, 3) == pytest.approx(0.5e-3)
    with pytest.raises(RunError, match="after epoch 4.*--epochs 4 or more"):
        run(tiny(root, tmp_path, "gcn", 3, "--resume"))


class Payload:
    """Unpickling runs ``command`` (a real payload, as an attacker would write it)."""

    def __init__(self, kind, marker):
        self.kind, self.marker = kind, str(marker)

    def __reduce__(self):
        if self.kind == "os.system":
            return os.system, (f"touch {self.marker}",)
        if self.kind == "exec":
            import builtins

            return builtins.exec, (f"open({self.marker!r}, 'w').close()",)
        return subprocess.Popen, (["touch", self.marker],)


@pytest.mark.parametrize("kind", ["os.system", "exec", "Popen"])
def test_resume_never_runs_code_from_a_checkpoint(root, tmp_path, kind):
    out, marker = tmp_path / "run", tmp_path / "created-by-payload"
    run(tiny(root, out, "gcn", 1))
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    checkpoint["history"][0]["note"] = Payload(kind, marker)
    torch.save(checkpoint, out / "checkpoint.pt")

    with pytest.raises(RunError) as error:
        run(tiny(root, out, "gcn", 2, "--resume"))
    message = str(error.value)
    assert str(out / "checkpoint.pt") in message and "refused to load" in message and "delete" in message
    time.sleep(0.2)  # a Popen payload would have had time to create its file
    assert not marker.exists()
    # the payload is real: a full unpickling runs it
    torch.load(out / "checkpoint.pt", weights_only=False)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "no config", "not a dict"])
def test_a_damaged_checkpoint_is_a_clear_error_naming_the_file(root, tmp_path, damage, capsys):
    run(tiny(root, tmp_path, "gcn", 1))
    path = tmp_path / "checkpoint.pt"
    content = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage\xff" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "no config":
        checkpoint = torch.load(path, weights_only=True)
        del checkpoint["config"]
        torch.save(checkpoint, path)
    else:
        torch.save([1, 2, 3], path)
    assert main(tiny(root, tmp_path, "gcn", 2, "--resume")) == 1
    err = capsys.readouterr().err
    assert f"error: {path}: damaged" in err and "delete" in err and "Traceback" not in err


def _damage_field(checkpoint, field):
    if field == "config":
        checkpoint["config"] = "lr=0.1"
    elif field == "epoch":
        checkpoint["epoch"] = "1"
    elif field == "epoch 0":
        checkpoint["epoch"] = 0
    elif field == "history longer":
        checkpoint["history"] = checkpoint["history"] * 2
    elif field == "history row":
        checkpoint["history"][0] = {"epoch": 1, "train_loss": "low"}
    elif field == "best":
        checkpoint["best"] = {"epoch": 7, "valid": 1.0, "state": checkpoint["model"]}
    elif field == "best not a dict":
        checkpoint["best"] = [1]
    elif field == "rng":
        checkpoint["rng"] = {"torch": 1}
    elif field == "model":
        checkpoint["model"] = {"head.weight": 3}


@pytest.mark.parametrize(
    "field",
    ["config", "epoch", "epoch 0", "history longer", "history row", "best", "best not a dict", "rng", "model"],
)
def test_a_checkpoint_with_a_damaged_field_is_a_clear_error(root, tmp_path, field, capsys):
    run(tiny(root, tmp_path, "gcn", 1))
    path = tmp_path / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=True)
    _damage_field(checkpoint, field)
    torch.save(checkpoint, path)
    assert main(tiny(root, tmp_path, "gcn", 3, "--resume")) == 1
    err = capsys.readouterr().err
    assert f"{path}" in err and "damaged checkpoint" in err and "Traceback" not in err, err
    assert not (tmp_path / ".lock").exists()  # a failed run leaves no lock behind


def test_the_run_prints_a_header_and_its_result_on_stdout(root, tmp_path, capsys):
    assert main(tiny(root, tmp_path / "run", "gcn", 1)) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("dataset nci-tpsa: train/valid/test 48/21/21 graphs, regression, metric rmse")
    assert lines[1].startswith("model gcn: ") and "parameters" in lines[1]
    assert lines[2].startswith("device cpu, 1 thread(s)")
    assert lines[3] == f"run folder {tmp_path / 'run'}"
    assert (
        lines[4].startswith("best epoch 1: train rmse") and lines[5] == f"results: {tmp_path / 'run' / 'results.json'}"
    )
    assert "epoch   1  loss" in err and "epoch   1  loss" not in out  # progress goes to stderr


def test_an_os_error_is_reported_without_a_traceback(root, tmp_path, monkeypatch, capsys):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "log.csv"))

    monkeypatch.setattr(graph, "write_csv", full_disk)
    assert main(tiny(root, tmp_path, "gcn", 1)) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'log.csv'}: No space left on device" in err and "Traceback" not in err
    assert not (tmp_path / ".lock").exists()


# ---------------------------------------------------------------------------------------------- run folder
def test_two_runs_on_one_folder_do_not_race(root, tmp_path):
    with RunFolder(tmp_path):  # another run holds the folder
        with pytest.raises(RunError, match="in use by another training run"):
            run(tiny(root, tmp_path, "gcn", 1))
        assert not (tmp_path / "results.json").exists()
    # another process holding it: the lock is the kernel's, across processes
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from plstm_geometric.train.files import "
            "RunFolder; f = RunFolder(sys.argv[1]); f.lock(); print('locked', flush=True); "
            "time.sleep(60)",
            str(tmp_path),
        ],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(tiny(root, tmp_path, "gcn", 1)) == 1
    finally:
        holder.kill()
        holder.wait()
    # once the holder is gone (killed: the kernel releases its lock), the folder is free again
    assert run(tiny(root, tmp_path, "gcn", 1))["finished"]


# ---------------------------------------------------------------------------------------------- datasets
def test_a_dataset_built_under_a_new_name_trains_by_that_name(tmp_path):
    frame = nci_tpsa_frame().head(60)
    build_ogb_dataset(frame, "my-set", tmp_path, target_columns=["tpsa"])
    dataset = load_dataset("my-set", str(tmp_path))
    assert (len(dataset), dataset.task_type, dataset.eval_metric) == (60, "regression", "rmse")
    binary = frame.assign(active=(frame["tpsa"] > 40).astype(int))
    build_ogb_dataset(binary, "my-binary", tmp_path, target_columns=["active"])
    assert load_dataset("my-binary", str(tmp_path)).eval_metric == "rocauc"
    for bad in ("..", "../my-set", "/etc", ""):
        with pytest.raises(ValueError, match="name"):
            load_dataset(bad, str(tmp_path))
    results = run(
        [
            "--dataset",
            "my-set",
            "--root",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--model",
            "gin",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--batch-size",
            "16",
            "--no-progress",
        ]
    )
    assert results["finished"] and results["metric"] == "rmse" and sum(results["num_graphs"].values()) == 60


def test_warmup_epochs_ramp_up_then_follow_the_cosine():
    args = parse_args(["--epochs", "10", "--warmup-epochs", "2", "--lr", "1.0"])
    rates = [learning_rate(args, epoch) for epoch in range(1, 11)]
    assert rates[:2] == [0.5, 1.0]
    assert rates[2] == 1.0 and all(a > b for a, b in zip(rates[2:], rates[3:]))
    plain = parse_args(["--epochs", "10", "--lr", "1.0"])
    assert learning_rate(plain, 1) == 1.0 and abs(learning_rate(plain, 6) - 0.5) < 1e-12


@pytest.mark.parametrize(
    "argv",
    [["--epochs", "3", "--warmup-epochs", "3"], ["--epochs", "5", "--warmup-epochs", "1", "--schedule", "constant"]],
)
def test_meaningless_warmup_is_refused(argv, capsys):
    with pytest.raises(SystemExit) as error:
        parse_args(argv)
    assert error.value.code == 2 and "--warmup-epochs" in capsys.readouterr().err


@pytest.mark.parametrize("layers", [1, 2])
def test_plstm_runs_read_graphs_with_their_structure_precomputed(root, tmp_path, layers):
    from torch_geometric.loader import DataLoader

    from plstm_geometric.train.processes import Processes

    args = parse_args(tiny(root, tmp_path / "run", "plstm", 1, "--layers", str(layers)))
    data = graph.prepare_data(args, Processes("cpu"))
    used = torch.cat(list(data.split.values())).unique()
    assert isinstance(data.graphs, graph.PreparedGraphs) and len(data.graphs) == len(used)
    torch.manual_seed(0)
    model = graph.build_model(args, data.dataset, data.out_channels).eval()
    index = data.split["valid"]
    prepared = next(iter(DataLoader(data.graphs[index], batch_size=len(index))))
    plain = next(iter(DataLoader(data.dataset[index], batch_size=len(index))))
    assert "dag_edge_index" in prepared and "dag_edge_index" not in plain
    assert "line_edge_index_d_forward" in prepared and ("line_edge_index_d_reverse" in prepared) == (layers > 1)
    with torch.no_grad():
        torch.testing.assert_close(model(prepared), model(plain), rtol=1e-6, atol=1e-6)
    # the baselines read the dataset itself
    baseline = graph.prepare_data(parse_args(tiny(root, tmp_path / "gin", "gin")), Processes("cpu"))
    assert baseline.graphs is baseline.dataset


def test_a_finished_run_is_kept_unless_overwrite_is_asked(root, tmp_path, capsys):
    assert run(tiny(root, tmp_path, "gcn", 1))["finished"]
    before = (tmp_path / "results.json").read_bytes(), (tmp_path / "checkpoint.pt").read_bytes()
    assert main(tiny(root, tmp_path, "gcn", 1)) == 1
    err = capsys.readouterr().err
    assert "holds a finished run" in err and "--overwrite" in err and "--resume" in err
    assert ((tmp_path / "results.json").read_bytes(), (tmp_path / "checkpoint.pt").read_bytes()) == before
    assert not (tmp_path / ".lock").exists()  # a refused or finished run leaves no lock behind
    assert run(tiny(root, tmp_path, "gcn", 1, "--overwrite"))["finished"]


def test_the_lock_file_is_never_written_through_a_symlink(root, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").symlink_to(outside)
    with pytest.raises(RunError, match="lock file"):
        run(tiny(root, out, "gcn", 1))
    assert outside.read_text() == "keep me"


def test_the_layer_flags_reach_the_model_and_its_prepared_sweeps():
    from plstm_geometric.train.graph import build_model

    flags = ["--first-sweep", "reverse", "--normalize-over", "incoming", "--transition-start", "0.95", "0.9999"]
    args = parse_args(["--layers", "3", "--hidden", "16", "--heads", "2", *flags])
    assert args.transition_start == (0.95, 0.9999)
    sample = torch.zeros(3, 9, dtype=torch.long)
    dataset = [type("Graph", (), {"x": sample, "edge_attr": torch.zeros(2, 3, dtype=torch.long)})()]
    model = build_model(args, dataset, 1)
    assert [block.reverse for block in model.blocks] == [True, False, True]
    conv = model.blocks[0].conv_p
    assert (conv.normalize_over, conv.transition_start) == ("incoming", (0.95, 0.9999))
    # without the flags: the layer's defaults
    plain_args = parse_args(["--hidden", "16", "--heads", "2"])
    assert plain_args.first_sweep == "forward"  # recorded as resolved
    plain = build_model(plain_args, dataset, 1)
    assert [block.reverse for block in plain.blocks] == [False, True]
    assert plain.blocks[0].conv_p.normalize_over == "outgoing"
