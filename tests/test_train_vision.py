import json
import math

import pytest

from plstm_geometric.train import vision
from plstm_geometric.train.files import RunFolder
from plstm_geometric.train.record import read_record
from plstm_geometric.train.vision import build_parser, main, run, train_vision, warmup_cosine

# APE objects are fixed in pixels (30 px border, radius up to 30), so 160 px is about the smallest useful size.
TINY = [
    "--image-size",
    "160",
    "--test-sizes",
    "160",
    "192",
    "--train-samples",
    "8",
    "--test-samples",
    "4",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--patch-size",
    "16",
    "--dim",
    "32",
    "--heads",
    "2",
    "--depth",
    "1",
    "--device",
    "cpu",
]


def check_results(results, model):
    assert set(results["accuracy"]) == {"160", "192"}
    for size in ("160", "192"):
        # 4 test samples: accuracies are multiples of 1/4.
        assert results["accuracy"][size] * 4 in (0, 1, 2, 3, 4)
        assert math.isfinite(results["test_loss"][size])
    assert len(results["train_loss"]) == len(results["epoch_times"]) == 1
    assert results["num_parameters"] > 0
    assert results["config"]["model"] == model and results["device"] == "cpu"


def test_vit_end_to_end_writes_json(tmp_path):
    out = tmp_path / "run"
    results = run(["--model", "vit", "--out", str(out), *TINY])
    check_results(results, "vit")
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert read_record(out)["kind"] == "vision" and read_record(out)["config"]["model"] == "vit"
    assert results["model"].startswith("ViT(")


def test_train_vision_from_dict_is_deterministic():
    config = dict(
        model="vit",
        image_size=160,
        test_sizes=[160],
        train_samples=8,
        test_samples=4,
        epochs=2,
        batch_size=4,
        dim=32,
        heads=2,
        depth=1,
        device="cpu",
        seed=3,
    )
    first, second = train_vision(config), train_vision(config)
    assert first["train_loss"] == second["train_loss"]
    assert first["test_loss"] == second["test_loss"]
    assert len(first["train_loss"]) == 2


def test_plstm_end_to_end(tmp_path):
    assert main(["--model", "plstm", "--out", str(tmp_path), *TINY]) == 0
    check_results(json.loads((tmp_path / "results.json").read_text()), "plstm")


def test_warmup_cosine_schedule():
    total, warmup = 100, 10
    factors = [warmup_cosine(step, total, warmup) for step in range(total + 1)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(factors[:10], factors[1:10]))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[55] == pytest.approx(0.5) and factors[total] == pytest.approx(0.0)
    assert warmup_cosine(0, 10, 0) == 1.0


def test_bad_config():
    with pytest.raises(ValueError, match="unknown option"):
        train_vision({"learning_rate": 1.0})
    with pytest.raises(ValueError, match="model"):
        train_vision({"model": "resnet"})
    with pytest.raises(ValueError, match="epochs"):
        train_vision({"epochs": 0})
    with pytest.raises(TypeError, match="args_or_config"):
        train_vision(["--model", "vit"])


@pytest.mark.parametrize(
    "flags, name",
    [
        (["--lr", "0"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--warmup-fraction", "1"], "--warmup-fraction"),
        (["--threads", "0"], "--threads"),
        (["--test-sizes", "0"], "--test-sizes"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_meaningless_flags_are_argparse_errors(capsys, flags, name):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(flags)
    assert exit_info.value.code == 2 and name in capsys.readouterr().err


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: 20)" in help_text and "The default is 1" in help_text


def test_a_locked_run_folder_is_refused(tmp_path, capsys):
    with RunFolder(tmp_path):
        assert main(["--model", "vit", "--out", str(tmp_path), *TINY]) == 1
    assert "in use by another training run" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_a_diverged_run_stops_with_an_error(tmp_path, monkeypatch, capsys):
    real = vision.F.cross_entropy
    monkeypatch.setattr(vision.F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    assert main(["--model", "vit", "--out", str(tmp_path), *TINY]) == 1
    assert "the run diverged" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()
