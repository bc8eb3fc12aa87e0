import numpy as np
import pytest
import torch
from ogb.graphproppred import Evaluator

from plstm_geometric.datasets import OGBStyleEvaluator


@pytest.mark.parametrize(
    "ogb_name, metric, num_tasks",
    [("ogbg-mollipo", "rmse", 1), ("ogbg-moltox21", "rocauc", 12), ("ogbg-molpcba", "ap", 128)],
)
def test_scores_like_ogb(ogb_name, metric, num_tasks):
    generator = torch.Generator().manual_seed(0)
    y_true = torch.randint(0, 2, (40, num_tasks), generator=generator).float()
    y_true[::7, 0] = float("nan")  # missing labels are ignored
    y_pred = torch.randn(40, num_tasks, generator=generator)
    ours = OGBStyleEvaluator("mine", num_tasks, metric).eval({"y_true": y_true, "y_pred": y_pred})
    theirs = Evaluator(ogb_name).eval({"y_true": y_true, "y_pred": y_pred})
    assert ours.keys() == theirs.keys() == {metric}
    assert ours[metric] == pytest.approx(theirs[metric], rel=1e-12)


def test_rmse_on_labelled_entries():
    y_true = np.array([[1.0], [np.nan], [3.0]])
    y_pred = np.array([[2.0], [100.0], [1.0]])
    rmse = OGBStyleEvaluator("mine", 1, "rmse").eval({"y_true": y_true, "y_pred": y_pred})["rmse"]
    assert rmse == pytest.approx(np.sqrt((1.0 + 4.0) / 2))


def test_shape_is_checked_like_ogb():
    evaluator = OGBStyleEvaluator("mine", 2, "acc")
    with pytest.raises(RuntimeError, match="Number of tasks"):
        evaluator.eval({"y_true": np.zeros((3, 1)), "y_pred": np.zeros((3, 1))})


@pytest.mark.parametrize(
    "num_tasks, metric, error",
    [(0, "rmse", ValueError), (1, "mae", ValueError), (1.5, "rmse", TypeError), (True, "rmse", TypeError)],
)
def test_bad_arguments(num_tasks, metric, error):
    with pytest.raises(error, match=r"(num_tasks|eval_metric): expected"):
        OGBStyleEvaluator("mine", num_tasks, metric)
