"""benchmarks/epoch.py: a pLSTM model and a baseline of a suite config, trained side by side."""

import pytest

from benchmarks import epoch
from tests.benchmarks.test_suite import NAME, tiny_config, write_tu_set


@pytest.fixture
def config(tmp_path):
    root = tmp_path / "data"
    write_tu_set(root, num_graphs=40)
    models = {
        "plstm": {"model": "plstm", "label": "pLSTM", "args": {"hidden": 8, "layers": 2, "heads": 1}},
        "gcn": {"model": "gcn", "label": "GCN", "args": {"hidden": 12, "layers": 3}},
    }
    return tiny_config(tmp_path / "tiny.json", root, models=models)


def test_both_models_train_as_the_suite_plans_them(config, capsys):
    argv = ["--config", str(config), "--dataset", NAME, "--models", "plstm", "gcn", "--steps", "2"]
    rows = epoch.main([*argv, "--warmup-steps", "1"])
    (row,) = rows
    assert row["warmup_steps"] == 1
    plstm, gcn = row["models"]["plstm"], row["models"]["gcn"]
    # the sizes and batch size of the config's runs, not the training CLI's defaults
    assert (plstm["hidden"], plstm["layers"], gcn["hidden"], gcn["layers"]) == (8, 2, 12, 3)
    assert plstm["batch_size"] == gcn["batch_size"] == 8
    # 8 of the 10 folds train: 32 graphs in batches of 8
    assert plstm["steps_per_epoch"] == gcn["steps_per_epoch"] == 4
    assert row["ratio_mean"] == pytest.approx(plstm["mean_step_s"] / gcn["mean_step_s"])
    assert plstm["epoch_s"] == pytest.approx(plstm["mean_step_s"] * 4)
    assert "| MUTAG | plstm |" in capsys.readouterr().out


def test_a_pair_the_config_does_not_plan_is_refused(config):
    with pytest.raises(SystemExit, match="no run of 'gin'"):
        epoch.main(["--config", str(config), "--dataset", NAME, "--models", "plstm", "gin", "--steps", "1"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0"], "--steps"),
        (["--warmup-steps", "-1"], "--warmup-steps"),
        (["--threads", "0"], "--threads"),
        (["--config", "x.json"], "go together"),
    ],
)
def test_bad_flags_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        epoch.parse_args(argv)
    assert message in capsys.readouterr().err
