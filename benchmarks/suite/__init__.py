"""Rerun a whole results table: datasets x models x (folds or seeds), one training subprocess per run.

    python -m benchmarks.suite benchmarks/configs/tu.json --preset cpu --out results/tu-cpu
    python -m benchmarks.suite benchmarks/configs/tu.json --preset cpu --out results/tu-cpu --dry-run
    python -m benchmarks.suite render results/tu-cpu [results/moleculenet-cpu ...] > section.md

Every run is ``python -m plstm_geometric.train --dataset D --model M [--fold k] --seed s --out RUN_DIR ...``
with the flags the config gives. The suite resumes: a run whose ``results.json`` says it finished with the
configuration the suite asks for is not run again; a run with a checkpoint is continued with ``--resume``.
Under ``--out`` it writes ``runs/<dataset>/<model>/<fold|seed>/`` (the training CLI's run folders),
``runs.csv``/``runs.json`` (one row per fold or seed), ``aggregate.csv``/``aggregate.json`` (mean and
population standard deviation over folds/seeds of the metrics at each run's best-validation epoch),
``suite.json`` (the resolved plan: commands, commit, invocations) and ``results.md`` (the table beside the
published numbers, with commands, commit, wall time and parameter counts). ``render`` rebuilds the
markdown from a results folder alone.

Config (JSON). Top-level keys:

* ``name`` (str, required), ``description`` (str), ``root`` (data root, default ``datasets``),
  ``published`` (path of a JSON of published numbers, relative to the config file),
  ``display`` (per metric: ``{"rocauc": {"scale": 100, "digits": 1}}``), ``args`` (training flags of
  every run, e.g. ``{"epochs": 100, "batch_size": 64}``: a key ``k`` is the flag ``--k`` with ``_`` as
  ``-``; ``true`` for a flag without a value);
* ``datasets`` (required): ``{NAME: {"label", "kind", "folds", "run_folds", "seeds", "args"}}``;
  ``kind`` is ``tu``, ``ogb`` or ``other`` (default from the name: ``ogbg-*`` is ``ogb``, ``nci-tpsa``
  and ``peptides-*`` are ``other``, anything else ``tu``); a ``tu`` set needs ``folds`` (the protocol's
  fold count) and runs ``run_folds`` (default: all), each with every seed of ``seeds`` (default
  ``[0]``); other sets run their ``seeds``;
* ``models`` (required): ``{KEY: {"model": CLI model name, "label", "args"}}``;
* ``presets``: ``{NAME: {"description", "datasets": [subset], "models": [subset], "args",
  "dataset_args": {NAME: args}, "model_args": {KEY: args}, "seeds", "run_folds", "jobs"}}``.

A run's flags are merged in this order (later wins): ``args``, the dataset's ``args``, the model's
``args``, the preset's ``args``, its ``dataset_args`` and its ``model_args``. Every flag is checked
against the training command line's parser (:func:`benchmarks.suite.plan.cli_flags`) before
anything runs.
"""

from .cli import main, run_parser
from .config import SuiteError, load_config, load_published
from .plan import cli_flags, plan
from .report import collect, render, write_outputs
from .runner import REPO, execute, git_state

__all__ = [
    "REPO",
    "SuiteError",
    "cli_flags",
    "collect",
    "execute",
    "git_state",
    "load_config",
    "load_published",
    "main",
    "plan",
    "render",
    "run_parser",
    "write_outputs",
]
