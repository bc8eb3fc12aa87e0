"""The training command line answers --help and refuses bad flags without importing torch; its model
choices and per-model flags come from the model registry."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plstm_geometric.train import registry
from plstm_geometric.train.cli import build_parser, parse_args

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.parametrize(
    "argv", [["--help"], ["--heads", "5"], ["--model", "nope"], ["--model", "gin", "--backend", "levels"]]
)
def test_help_and_flag_errors_do_not_import_torch(argv):
    # what makes --help and a refused flag fast is that nothing imports torch before the flags are checked
    code = (
        "import sys\nfrom plstm_geometric.train.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print('torch' in sys.modules, code)"
    )
    result = _run(code)
    imported, code = result.stdout.split()[-2:]
    assert imported == "False", result.stderr
    assert code == ("0" if argv == ["--help"] else "2")


def test_model_choices_and_defaults_come_from_the_registry():
    choices = next(action.choices for action in build_parser()._actions if action.dest == "model")
    assert tuple(choices) == tuple(registry.MODELS)
    for name, spec in registry.MODELS.items():
        args = parse_args(["--model", name])
        assert (args.hidden, args.layers, args.dropout) == (spec.hidden, spec.layers, spec.dropout)


def test_the_registry_matches_the_models_it_builds():
    from plstm_geometric.models import graph_model

    assert registry.PLSTM_POOLS == graph_model.PLSTM_POOLS and registry.POOL_NORMS == graph_model.POOL_NORMS
    assert registry.FIRST_SWEEPS == graph_model.FIRST_SWEEPS and registry.FIRST_SWEEP == graph_model.FIRST_SWEEP
    for spec in registry.MODELS.values():
        model = registry.build_model(spec.name, 8, 1, 2, dropout=0.0, pool=spec.pools[0], encoder="ogb")
        assert isinstance(model, spec.model_class())
    with pytest.raises(ValueError, match="backend: --model gin does not take it"):
        registry.build_model("gin", 8, 1, 2, dropout=0.0, pool="mean", encoder="ogb", backend="levels")
    with pytest.raises(ValueError, match="model: expected one of"):
        registry.model_spec("gat")


def test_backend_reaches_every_layer():
    from plstm_geometric.functional.dag import BACKENDS

    for backend in BACKENDS:
        model = registry.build_model("plstm", 8, 1, 2, dropout=0.0, pool="mean", encoder="ogb", backend=backend)
        convs = [m for m in model.modules() if type(m).__name__ == "PLSTMConv"]
        assert convs and all(conv.backend == backend for conv in convs)
    with pytest.raises(SystemExit):
        parse_args(["--backend", "quick"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--heads", "5"], "--heads: expected a divisor of --hidden (64), got 5"),
        (["--model", "gin", "--pool-norm", "none"], "--pool-norm: only --model plstm takes it"),
        (["--model", "plstm", "--pool", "max"], "--pool: expected mean or sum with --model plstm"),
        (["--backend", "quick"], "--backend: expected one of auto"),
    ],
)
def test_flag_errors_name_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("spelling", ["nci_tpsa", "NCI-TPSA", "nci-tpsa"])
def test_a_dataset_spelling_trains_as_its_canonical_name(spelling, tmp_path):
    # the folder name the CLI's own error message offers used to train with other defaults (mean pooling)
    args = parse_args(["--dataset", spelling, "--root", str(tmp_path)])
    assert args.dataset == "nci-tpsa" and args.pool == "sum" and args.out.endswith("nci-tpsa-plstm-0")


def test_an_unknown_dataset_is_a_flag_error_listing_the_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(["--dataset", "nope", "--root", str(tmp_path)])
    assert info.value.code == 2 and "--dataset: " in capsys.readouterr().err


def test_training_asks_for_huge_pages_before_torch_allocates_unless_told_otherwise():
    # torch reads THP_MEM_ALLOC_ENABLE once, at its first allocation: main sets it before torch is imported
    code = (
        "import os, sys\nfrom plstm_geometric.train.cli import main\n"
        "try:\n    main(['--heads', '5'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    )
    result = _run(code)
    assert result.stdout.split()[-2:] == ["False", "1"], result.stderr
    told = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "THP_MEM_ALLOC_ENABLE": "0"},
    )
    assert told.stdout.split()[-1] == "0", told.stderr
