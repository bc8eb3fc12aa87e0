"""The long-range benchmark's configuration: which tasks, depths, models and seeds a preset trains."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from .models import MODELS
from .tasks import TaskSpec

RUN_KEYS = ("steps", "batch_size", "lr", "weight_decay", "warmup", "eval_every")


@dataclass(frozen=True)
class PlannedRun:
    spec: TaskSpec
    model: str
    seed: int
    sizes: dict = field(hash=False)
    train_args: dict = field(hash=False)
    model_args: dict = field(hash=False)

    @property
    def name(self) -> str:
        """The run's folder below ``runs/``: task-family-depth / model / seed (plain names only)."""
        return f"{self.spec.task}-{self.spec.family}-{self.spec.depth}/{self.model}/seed{self.seed}"


def load_config(path: Path) -> dict:
    config = json.loads(Path(path).read_text())
    for key in ("sizes", "train", "models", "tasks", "presets"):
        if key not in config:
            raise ValueError(f"{path}: missing key {key!r}")
    unknown = set(config["models"]) - set(MODELS)
    if unknown:
        raise ValueError(f"{path}: unknown models {sorted(unknown)}; known: {sorted(MODELS)}")
    return config


def plan_runs(config: dict, preset: str, only: list[str] | None = None) -> list[PlannedRun]:
    """Every run of ``preset``: its task entries (task, family, depths), each model, each seed. A preset
    may override ``sizes``, ``train`` and per-depth steps (``steps_by_depth``)."""
    if preset not in config["presets"]:
        raise ValueError(f"preset: expected one of {sorted(config['presets'])}, got {preset!r}")
    settings = config["presets"][preset]
    sizes = {**config["sizes"], **settings.get("sizes", {})}
    train = {**config["train"], **settings.get("train", {})}
    unknown = set(train) - set(RUN_KEYS)
    if unknown:
        raise ValueError(f"train: unknown keys {sorted(unknown)}; known: {RUN_KEYS}")
    models = only if only is not None else list(config["models"])
    for name in models:
        if name not in config["models"]:
            raise ValueError(f"--only: expected names from {sorted(config['models'])}, got {name!r}")
    runs = []
    for entry in settings.get("tasks", config["tasks"]):
        for depth in entry["depths"]:
            spec = TaskSpec(entry["task"], entry["family"], int(depth))
            steps = settings.get("steps_by_depth", {}).get(str(depth), train["steps"])
            for name in models:
                for seed in settings.get("seeds", [0]):
                    runs.append(
                        PlannedRun(
                            spec, name, seed, sizes, {**train, "steps": steps}, config["models"][name].get("args", {})
                        )
                    )
    return runs
