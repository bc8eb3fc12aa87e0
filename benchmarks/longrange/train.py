"""Training and evaluation of one model on one long-range task: a fixed step budget, model selection on
validation accuracy, the test accuracy of the selected step reported once."""

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from plstm_geometric.transforms import PreparePLSTM

from .models import build_model, count_parameters
from .tasks import TaskSpec, make_dataset

# Seeds of the three splits: every model of a task sees the same graphs.
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


def make_splits(spec: TaskSpec, sizes: dict[str, int], prepare: bool) -> dict[str, list]:
    splits = {name: make_dataset(spec, sizes[name], SPLIT_SEEDS[name]) for name in SPLIT_SEEDS}
    if prepare:  # pLSTM: the DAG structures of every graph computed once, as the training CLI does
        prepare_plstm = PreparePLSTM()
        splits = {name: prepare_plstm.prepare_many(graphs) for name, graphs in splits.items()}
    return splits


@torch.no_grad()
def accuracy(model: torch.nn.Module, graphs: list, batch_size: int) -> float:
    model.eval()
    correct = 0
    for batch in DataLoader(graphs, batch_size=batch_size):
        correct += int((model(batch).argmax(dim=-1) == batch.y).sum())
    model.train()
    return correct / max(1, len(graphs))


def learning_rate(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to zero at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_task(
    spec: TaskSpec,
    model_name: str,
    seed: int,
    steps: int,
    sizes: dict[str, int],
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    warmup: int = 20,
    clip: float = 1.0,
    eval_every: int = 25,
    model_args: dict | None = None,
    log=print,
) -> dict:
    """Trains ``model_name`` for ``steps`` AdamW steps on fresh batches of the training split; returns the
    record of the run (validation curve, best validation accuracy and its step, test accuracy there)."""
    torch.manual_seed(seed)
    model = build_model(model_name, **(model_args or {}))
    splits = make_splits(spec, sizes, prepare=model_name == "plstm")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(splits["train"], batch_size=batch_size, shuffle=True, generator=generator)
    history, best, best_state = [], (-1.0, 0), None
    start, step = time.perf_counter(), 0
    while step < steps:
        for batch in loader:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, lr, warmup)
            loss = F.cross_entropy(model(batch), batch.y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            step += 1
            if step % eval_every == 0 or step == steps:
                val = accuracy(model, splits["val"], 2 * batch_size)
                history.append({"step": step, "loss": loss.item(), "val_acc": val})
                name = f"{spec.task}/{spec.family}/{spec.depth} {model_name}"
                log(f"{name} step {step} loss {loss.item():.4f} val {val:.3f}")
                if val > best[0]:
                    best, best_state = (val, step), copy.deepcopy(model.state_dict())
            if step >= steps:
                break
    model.load_state_dict(best_state)
    test = accuracy(model, splits["test"], 2 * batch_size)
    return {
        "task": spec.task,
        "family": spec.family,
        "depth": spec.depth,
        "model": model_name,
        "seed": seed,
        "parameters": count_parameters(model),
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "model_args": model_args or {},
        "sizes": sizes,
        "best_val_acc": best[0],
        "best_step": best[1],
        "test_acc": test,
        "wall_s": time.perf_counter() - start,
        "history": history,
    }
