"""The long-range benchmark's table (markdown) and figure (PNG) from the records of a results folder."""

import json
from collections import defaultdict
from pathlib import Path

from .runner import RECORD


def load_records(out: Path) -> list[dict]:
    records = []
    for path in sorted(Path(out).glob(f"runs/*/*/*/{RECORD}")):
        if path.is_symlink():
            continue
        record = json.loads(path.read_text())
        if record.get("finished"):
            records.append(record)
    return records


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def table(records: list[dict]) -> str:
    """One markdown table per (task, family): a row per model, a column per depth, test accuracy (mean
    over seeds) with the parameter count, steps and total wall time of the model's runs."""
    groups = defaultdict(lambda: defaultdict(dict))
    for r in records:
        groups[(r["task"], r["family"])][r["model"]].setdefault(r["depth"], []).append(r)
    lines = []
    for (task, family), models in sorted(groups.items()):
        depths = sorted({d for runs in models.values() for d in runs})
        lines += [
            f"**{task}** on **{family}** graphs: test accuracy at the best-validation step (chance .50)",
            "",
            "| model | parameters | steps | " + " | ".join(f"depth {d}" for d in depths) + " | wall time |",
            "|---|---|---|" + "---|" * len(depths) + "---|",
        ]
        for model, runs in sorted(models.items()):
            every = [r for rs in runs.values() for r in rs]
            cells = []
            for depth in depths:
                rs = runs.get(depth)
                cells.append("" if not rs else f"{_mean([r['test_acc'] for r in rs]):.3f}")
            steps = sorted({r["steps"] for r in every})
            lines.append(
                f"| {model} | {every[0]['parameters']:,} | {'/'.join(map(str, steps))} | "
                + " | ".join(cells)
                + f" | {sum(r['wall_s'] for r in every) / 60:.1f} min |"
            )
        lines.append("")
    return "\n".join(lines)


def figure(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        groups[(r["task"], r["family"])][r["model"]][r["depth"]].append(r["test_acc"])
    keys = sorted(groups)
    models = sorted({model for group in groups.values() for model in group})
    colors = {model: f"C{i}" for i, model in enumerate(models)}
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for model, by_depth in sorted(groups[key].items()):
            depths = sorted(by_depth)
            ax.plot(depths, [_mean(by_depth[d]) for d in depths], marker="o", color=colors[model], label=model)
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_ylim(0.4, 1.02)
        ax.set_xlabel("depth (DAG levels between start and query)")
        ax.set_title(f"{key[0]} / {key[1]}")
    axes[0][0].set_ylabel("test accuracy")
    handles = [plt.Line2D([], [], color=colors[m], marker="o", label=m) for m in models]
    fig.legend(handles=handles, loc="upper center", ncol=len(models), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(out: Path) -> str:
    records = load_records(out)
    if not records:
        return f"{out}: no finished runs yet"
    commits = sorted({r.get("commit") or "unknown" for r in records})
    text = table(records) + f"\nCommits: {', '.join(commits)}.\n"
    (Path(out) / "longrange.md").write_text(text)
    figure(records, Path(out) / "longrange.png")
    return text
