"""What a dataset's task asks of training: its loss, its metric and which way is better, target scaling.

The task comes from the dataset (``task_type`` and ``eval_metric``, as OGB's datasets give them); the
metric is computed by the dataset's own OGB-style evaluator.
"""

import math

import torch
import torch.nn.functional as F

__all__ = ["LOWER_IS_BETTER", "TargetScaler", "evaluate", "is_better", "labels", "loss_function", "task_of"]

LOWER_IS_BETTER = ("rmse", "mae")


def task_of(dataset) -> str:
    task = getattr(dataset, "task_type", None)
    if task not in ("regression", "binary classification", "multiclass classification"):
        raise ValueError(
            f"dataset.task_type: expected 'regression', 'binary classification' or "
            f"'multiclass classification', got {task!r}"
        )
    return task


def labels(dataset, index: torch.Tensor) -> torch.Tensor:
    """Float labels ``[len(index), num_tasks]`` (NaN where missing) of an ``InMemoryDataset``, whose ``y``
    holds one row per graph (read directly: collating the graphs would be slow on large sets)."""
    return dataset.y.view(len(dataset), -1)[index].float()


class TargetScaler:
    r"""Standardises regression targets with the training split's per-task mean and standard deviation,
    :math:`\tilde y = (y - \mu) / \sigma`, so that one learning rate suits targets of any scale; metrics are
    computed after undoing it."""

    def __init__(self, y_train: torch.Tensor):
        self.mean = torch.nanmean(y_train, dim=0)
        centred = torch.where(torch.isnan(y_train), torch.zeros_like(y_train), y_train - self.mean)
        count = (~torch.isnan(y_train)).sum(dim=0).clamp(min=2)
        self.std = (centred.pow(2).sum(dim=0) / (count - 1)).sqrt().clamp(min=1e-8)

    def scale(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean.to(y.device)) / self.std.to(y.device)

    def unscale(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std.to(y.device) + self.mean.to(y.device)


def loss_function(task: str, metric: str, scaler):
    """Training loss; labels that are NaN (missing in OGB's multi-task sets) are left out, as in OGB."""

    def regression(out, y):
        y = scaler.scale(y.view(out.shape).float())
        known = ~torch.isnan(y)
        error = out[known] - y[known]
        return error.abs().mean() if metric == "mae" else error.pow(2).mean()

    def binary(out, y):
        y = y.view(out.shape).float()
        known = ~torch.isnan(y)
        return F.binary_cross_entropy_with_logits(out[known], y[known])

    def multiclass(out, y):
        return F.cross_entropy(out, y.view(-1).long())

    return {"regression": regression, "binary classification": binary, "multiclass classification": multiclass}[task]


def evaluate(dataset, y_true, y_pred) -> float:
    """The dataset's OGB metric (``dataset.eval_metric``) through its OGB-style evaluator; NaN when the
    predictions are not finite (a diverged model)."""
    if not torch.isfinite(y_pred).all():
        return math.nan
    evaluator = dataset.evaluator
    return float(evaluator.eval({"y_true": y_true.numpy(), "y_pred": y_pred.numpy()})[dataset.eval_metric])


def is_better(metric: str, value: float, best) -> bool:
    """Whether ``value`` is a better validation score than ``best``: a non-finite value never is, and
    anything finite beats a missing or non-finite best."""
    if value is None or not math.isfinite(value):
        return False
    if best is None or not math.isfinite(best):
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best
