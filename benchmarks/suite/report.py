"""A suite's results: the per-run rows and per (dataset, model) aggregates, their files, and the markdown
table beside the published numbers."""

import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from plstm_geometric.train.files import read_json, write_csv, write_json
from plstm_geometric.train.record import RecordError, config_mismatch, read_record

from .config import SuiteError


def _mean_std(values):
    if not values:
        return None, None
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def collect(out) -> dict:
    """Per-run rows and per (dataset, model) aggregates of a results folder (finished runs only count)."""
    out = Path(out)
    suite = read_json(out / "suite.json")
    if suite is None:
        raise SuiteError(f"{out / 'suite.json'}: not found or not valid JSON (is {out} a suite results folder?)")
    missing = [key for key in ("config", "config_path", "preset", "runs") if key not in suite]
    bad_run = next(
        (
            run
            for run in suite.get("runs", [])
            if not isinstance(run, dict)
            or any(key not in run for key in ("dataset", "model_key", "model", "run_dir", "expected"))
        ),
        None,
    )
    if missing or bad_run is not None:
        what = f"missing key {missing[0]!r}" if missing else f"an incomplete run entry {bad_run!r}"[:200]
        raise SuiteError(f"{out / 'suite.json'}: {what}; rerun the suite to write it again")
    rows = []
    for run in suite["runs"]:
        run_dir = out / run["run_dir"]
        try:
            results = read_record(run_dir) or {}
            status = "missing"
        except RecordError:
            results, status = {}, "stale"  # a record this library cannot read describes no run of this suite
        record = read_json(run_dir / "suite_run.json") or {"attempts": []}
        if results:
            mismatch = config_mismatch(results, run["expected"])
            status = "stale" if mismatch else ("done" if results["finished"] else "partial")
        metrics = results.get("metrics", {}) if status == "done" else {}
        times = results.get("epoch_times_s", [])
        rows.append(
            {
                "dataset": run["dataset"],
                "model_key": run["model_key"],
                "model": run["model"],
                "fold": run["fold"],
                "seed": run["seed"],
                "status": status,
                "metric": results.get("metric"),
                "lower_is_better": results.get("lower_is_better"),
                "train": metrics.get("train"),
                "valid": metrics.get("valid"),
                "test": metrics.get("test"),
                "best_epoch": results.get("best_epoch") if status == "done" else None,
                "epochs": results.get("epochs_completed"),
                "num_parameters": results.get("num_parameters"),
                "epoch_time_s": sum(times) / len(times) if times else None,
                "wall_s": sum(a["wall_s"] for a in record["attempts"]) if record["attempts"] else None,
                "device": results.get("device"),
                "git_commit": results.get("git_commit"),
                "run_dir": run["run_dir"],
                "command": " ".join(run["command"]),
            }
        )
    return {"suite": suite, "rows": rows, "aggregate": _aggregate(rows)}


def _aggregate(rows: list) -> list:
    """Per (dataset, model): finished runs, mean and standard deviation of each split's metric, parameters,
    time per epoch and wall time."""
    aggregate = []
    for (dataset, key), group in itertools.groupby(
        sorted(rows, key=lambda r: (r["dataset"], r["model_key"])), key=lambda r: (r["dataset"], r["model_key"])
    ):
        group = list(group)
        done = [r for r in group if r["status"] == "done"]
        entry = {
            "dataset": dataset,
            "model_key": key,
            "model": group[0]["model"],
            "runs": len(done),
            "planned": len(group),
            "metric": next((r["metric"] for r in group if r["metric"]), None),
            "lower_is_better": next((r["lower_is_better"] for r in group if r["metric"]), None),
        }
        for split in ("train", "valid", "test"):
            entry[f"{split}_mean"], entry[f"{split}_std"] = _mean_std([r[split] for r in done])
        params = sorted({r["num_parameters"] for r in group if r["num_parameters"] is not None})
        entry["num_parameters"] = params[0] if len(params) == 1 else (params or None)
        times = [r["epoch_time_s"] for r in done if r["epoch_time_s"] is not None]
        entry["epoch_time_s"] = sum(times) / len(times) if times else None
        entry["wall_s"] = sum(r["wall_s"] or 0.0 for r in group)
        entry["epochs"] = sorted({r["epochs"] for r in done if r["epochs"] is not None})
        aggregate.append(entry)
    return aggregate


def write_outputs(out: Path, collected: dict):
    write_json(out / "runs.json", collected["rows"])
    write_csv(out / "runs.csv", collected["rows"])
    write_json(out / "aggregate.json", collected["aggregate"])
    write_csv(out / "aggregate.csv", collected["aggregate"])
    (out / "results.md").write_text(render(out, collected))


def _display(config, metric):
    entry = config.get("display", {}).get(metric, {})
    return entry.get("scale", 1), entry.get("digits", 4 if entry.get("scale", 1) == 1 else 1)


def _cell(mean, std, scale, digits, bold=False):
    if mean is None:
        return "–"
    text = f"{mean * scale:.{digits}f}" + (f" ± {std * scale:.{digits}f}" if std is not None else "")
    return f"**{text}**" if bold else text


def _duration(seconds):
    if seconds is None:
        return "–"
    return (
        f"{seconds / 3600:.2f} h"
        if seconds >= 3600
        else (f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s")
    )


@dataclass
class _Table:
    """What every part of a results section reads: the datasets and models in plan order, the aggregates
    by (dataset, model), each dataset's metric and direction, labels and published numbers."""

    config: dict
    datasets: list
    model_keys: list
    by: dict
    metric_of: dict
    lower_of: dict
    label: dict
    model_label: dict
    published: dict

    @classmethod
    def of(cls, suite: dict, rows: list, aggregate: list) -> "_Table":
        config = suite["config"]
        datasets = list(dict.fromkeys(r["dataset"] for r in rows))
        model_keys = list(dict.fromkeys(r["model_key"] for r in rows))

        def first(d, key):
            return next((a[key] for a in aggregate if a["dataset"] == d and a["metric"]), None)

        return cls(
            config=config,
            datasets=datasets,
            model_keys=model_keys,
            by={(a["dataset"], a["model_key"]): a for a in aggregate},
            metric_of={d: first(d, "metric") for d in datasets},
            lower_of={d: first(d, "lower_is_better") for d in datasets},
            label={d: config["datasets"].get(d, {}).get("label", d) for d in datasets},
            model_label={k: config["models"].get(k, {}).get("label", k) for k in model_keys},
            published=config.get("published_data", {}),
        )

    @property
    def metrics(self) -> set:
        return {m for m in self.metric_of.values() if m}

    @property
    def with_average(self) -> bool:
        """One metric in one direction over several datasets: an average column means something."""
        return len(self.metrics) == 1 and len(set(self.lower_of.values())) == 1 and len(self.datasets) > 1

    def display(self, dataset: str):
        return _display(self.config, self.metric_of[dataset])


def _heading(table: _Table, preset) -> list:
    config = table.config
    lines = [f"## {config['name']}" + (f" (`{preset}` preset)" if preset else ""), ""]
    if config.get("description"):
        lines += [config["description"], ""]
    if preset and config.get("presets", {}).get(preset, {}).get("description"):
        lines += [config["presets"][preset]["description"], ""]
    return lines


def _our_rows(table: _Table) -> list:
    header = ["model"] + [
        f"{table.label[d]} ({table.metric_of[d] or '?'} {'↓' if table.lower_of[d] else '↑'})" for d in table.datasets
    ]
    if table.with_average:
        header.append("avg")
    lines = [
        "Test metric at each run's best-validation epoch, mean ± standard deviation (population) over "
        "the folds or seeds; the best of our models per dataset in bold. Published numbers in italics.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    best = {}
    for d in table.datasets:
        means = [(table.by[(d, k)]["test_mean"], k) for k in table.model_keys if (d, k) in table.by]
        means = [(mean, k) for mean, k in means if mean is not None]
        if means:
            best[d] = (min if table.lower_of[d] else max)(means)[1]
    for k in table.model_keys:
        cells, means = [table.model_label[k]], []
        for d in table.datasets:
            entry = table.by.get((d, k))
            if entry is None:
                cells.append("–")
                continue
            text = _cell(entry["test_mean"], entry["test_std"], *table.display(d), bold=best.get(d) == k)
            if entry["runs"] != entry["planned"]:
                text += f" ({entry['runs']}/{entry['planned']} runs)"
            cells.append(text)
            means.append(entry["test_mean"] if entry["runs"] == entry["planned"] else None)
        if table.with_average:
            scale, digits = _display(table.config, next(iter(table.metrics)))
            cells.append(f"{sum(means) / len(means) * scale:.{digits}f}" if means and None not in means else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _published_rows(table: _Table) -> list:
    """The published numbers' rows (italics, with numbered sources), then the list of sources."""
    results = table.published.get("results", {})
    published_models = list(dict.fromkeys(row["model"] for d in table.datasets for row in results.get(d, [])))
    used_sources, lines = [], []
    for name in published_models:
        cells, means = [f"*{name}*"], []
        for d in table.datasets:
            row = next((r for r in results.get(d, []) if r["model"] == name), None)
            if row is None:
                cells.append("")
                means.append(None)
                continue
            if row["source"] not in used_sources:
                used_sources.append(row["source"])
            scale, digits = table.display(d)
            factor = scale / row.get("scale", 1)
            text = f"{row['mean'] * factor:.{digits}f}"
            if row.get("std") is not None:
                text += f" ± {row['std'] * factor:.{digits}f}"
            cells.append(f"*{text}* [{used_sources.index(row['source']) + 1}]")
            means.append(row["mean"] / row.get("scale", 1))
        if table.with_average:
            scale, digits = _display(table.config, next(iter(table.metrics)))
            cells.append(f"*{sum(means) / len(means) * scale:.{digits}f}*" if None not in means else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for i, key in enumerate(used_sources, 1):
        lines.append(f"[{i}] {table.published['sources'][key]}")
    if used_sources:
        lines.append("")
    return lines


def _details(table: _Table) -> list:
    """Per (dataset, model): parameters, runs, epochs, validation and test, time per epoch, wall time."""
    lines = [
        "| dataset | model | params | runs | epochs | valid | test | s / epoch | wall time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in table.datasets:
        scale, digits = table.display(d)
        for k in table.model_keys:
            entry = table.by.get((d, k))
            if entry is None:
                continue
            params = entry["num_parameters"]
            params = (
                f"{params:,}" if isinstance(params, int) else (", ".join(f"{p:,}" for p in params) if params else "–")
            )
            epochs = ", ".join(str(e) for e in entry["epochs"]) or "–"
            lines.append(
                f"| {table.label[d]} | {table.model_label[k]} | {params} | {entry['runs']}/{entry['planned']} | "
                f"{epochs} | {_cell(entry['valid_mean'], entry['valid_std'], scale, digits)} | "
                f"{_cell(entry['test_mean'], entry['test_std'], scale, digits)} | "
                f"{entry['epoch_time_s']:.2f} | {_duration(entry['wall_s'])} |"
                if entry["epoch_time_s"] is not None
                else f"| {table.label[d]} | {table.model_label[k]} | {params} | {entry['runs']}/{entry['planned']} "
                f"| {epochs} | – | – | – | {_duration(entry['wall_s'])} |"
            )
    lines.append("")
    return lines


def _provenance(suite: dict, rows: list) -> list:
    """How to rerun the table, the commit(s) and device(s) it came from, and the command of every run."""
    preset = suite.get("preset")
    invocations = suite.get("invocations", [])
    commits = sorted({r["git_commit"] for r in rows if r["git_commit"]})
    devices = sorted({r["device"] for r in rows if r["device"]})
    total = sum(r["wall_s"] or 0.0 for r in rows)
    suite_command = (
        "python -m benchmarks.suite "
        + os.path.relpath(suite["config_path"])
        + (f" --preset {preset}" if preset else "")
        + f" --out {suite['out']}"
    )
    lines = [
        "Rerun (resumes; finished runs are kept):",
        "",
        f"    {suite_command}",
        "",
        f"Commit: {', '.join(f'`{c[:10]}`' for c in commits) or 'unknown'}"
        + (" (the checkout had uncommitted changes)" if any(i.get("git", {}).get("dirty") for i in invocations) else "")
        + f"; device: {', '.join(devices) or 'unknown'}; wall time of all runs: {_duration(total)}"
        + f" ({sum(r['status'] == 'done' for r in rows)}/{len(rows)} runs finished).",
        "",
    ]
    templates = []
    for run in suite["runs"]:
        command = [Path(run["command"][0]).name] + run["command"][1:]
        text = " ".join(command).replace(run["run_dir"], "RUN_DIR")
        if run["fold"] is not None:
            text = text.replace(f"--fold {run['fold']} ", "--fold FOLD ")
        text = text.replace(f"--seed {run['seed']} ", "--seed SEED ")
        text = re.sub(r"--out \S+", "--out RUN_DIR", text)
        if text not in templates:
            templates.append(text)
    lines += ["The runs (FOLD, SEED as planned; RUN_DIR = runs/DATASET/MODEL/[foldFOLD-]seedSEED):", ""]
    lines += [f"    {t}" for t in templates]
    lines.append("")
    return lines


def render(out, collected=None) -> str:
    """The markdown section of a results folder: our numbers beside the published ones, commands, commit,
    wall time and parameter counts."""
    collected = collected or collect(Path(out))
    suite, rows = collected["suite"], collected["rows"]
    table = _Table.of(suite, rows, collected["aggregate"])
    lines = _heading(table, suite.get("preset")) + _our_rows(table) + _published_rows(table)
    return "\n".join(lines + _details(table) + _provenance(suite, rows))
