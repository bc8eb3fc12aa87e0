r"""TU graph classification datasets and their 10-fold cross-validation protocol.

Protocol (stratified 10-fold cross-validation with an 8/1/1 train/valid/test partition per
fold): the graphs are cut into 10 stratified folds (shuffled with a fixed seed); run :math:`i`
tests on fold :math:`i`, validates on fold :math:`(i + 1) \bmod 10` and trains on the other 8.
Each run keeps the epoch with the best validation accuracy (the earliest on ties) and reports
its test accuracy; the result is the mean and standard deviation over the 10 runs
(:func:`best_validation_accuracy`).
"""
import os.path as osp
from typing import Dict, List, Sequence, Union

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from torch_geometric.datasets import TUDataset

from .evaluator import OGBStyleEvaluator

TU_NAMES = ("MUTAG", "NCI1", "PROTEINS", "PTC_FM")


def tu_folds(labels: Union[torch.Tensor, Sequence[int]], num_folds: int = 10,
             seed: int = 0) -> List[Dict[str, torch.Tensor]]:
    r"""Stratified cross-validation folds with a validation fold (see the module docstring).

    Args:
        labels: one class label per graph, shape [num_graphs].
        num_folds (int): number of folds (at least 3: one test, one valid, one train fold).
        seed (int): seed of the stratified shuffle.

    Returns:
        :obj:`num_folds` dicts with sorted long index tensors :obj:`"train"`, :obj:`"valid"`,
        :obj:`"test"`; run :obj:`i` tests on fold :obj:`i` and validates on fold
        :obj:`(i + 1) % num_folds`, so every graph is tested exactly once.
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 1:
        raise ValueError(f"labels must be one-dimensional [num_graphs], got shape {tuple(labels.shape)}")
    if not isinstance(num_folds, int) or not 3 <= num_folds <= labels.numel():
        raise ValueError(f"num_folds must be an int in [3, num_graphs={labels.numel()}], got {num_folds!r}")
    splitter = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    folds = [test for _, test in splitter.split(np.zeros(labels.numel()), labels.numpy())]
    runs = []
    for fold in range(num_folds):
        valid_fold = (fold + 1) % num_folds
        train = np.concatenate([folds[other] for other in range(num_folds)
                                if other not in (fold, valid_fold)])
        runs.append({
            "train": torch.from_numpy(np.sort(train)).long(),
            "valid": torch.from_numpy(np.sort(folds[valid_fold])).long(),
            "test": torch.from_numpy(np.sort(folds[fold])).long(),
        })
    return runs


def best_validation_accuracy(valid_accuracy, test_accuracy) -> Dict[str, torch.Tensor]:
    r"""Aggregates a cross-validation: test accuracy at each run's best validation epoch.

    Args:
        valid_accuracy: validation accuracy per run and epoch, shape [num_folds, num_epochs].
        test_accuracy: test accuracy per run and epoch, same shape.

    Returns:
        a dict with :obj:`"mean"` and :obj:`"std"` (population standard deviation, ddof=0) of
        the selected test accuracies (0-dim float64 tensors), :obj:`"per_fold"` (the selected
        test accuracy per run) and :obj:`"best_epoch"` (the earliest epoch with the highest
        validation accuracy per run).
    """
    valid_accuracy = torch.as_tensor(valid_accuracy, dtype=torch.float64)
    test_accuracy = torch.as_tensor(test_accuracy, dtype=torch.float64)
    if valid_accuracy.dim() != 2 or valid_accuracy.numel() == 0:
        raise ValueError(f"valid_accuracy must have shape [num_folds, num_epochs], got "
                         f"{tuple(valid_accuracy.shape)}")
    if test_accuracy.shape != valid_accuracy.shape:
        raise ValueError(f"test_accuracy must have the shape of valid_accuracy "
                         f"{tuple(valid_accuracy.shape)}, got {tuple(test_accuracy.shape)}")
    # argmax of (value == max) picks the first maximal epoch, whatever torch.argmax does on ties.
    best_epoch = (valid_accuracy == valid_accuracy.max(dim=1, keepdim=True).values).long().argmax(dim=1)
    per_fold = test_accuracy.gather(1, best_epoch.view(-1, 1)).view(-1)
    return {
        "mean": per_fold.mean(),
        "std": per_fold.std(unbiased=False),
        "per_fold": per_fold,
        "best_epoch": best_epoch,
    }


class TUGraphDataset(TUDataset):
    r"""A TU dataset (PyG's :class:`TUDataset`) with the OGB-like interface of this package.

    Files live in :obj:`root/TU/<name>/` (PyG downloads them when :obj:`raw/` is missing).
    Node features are PyG's defaults: one-hot node labels (:obj:`use_node_attr=False`).
    :obj:`y` is the class index, long [1] per graph.

    Args:
        name (str): a TU dataset name, e.g. :obj:`"MUTAG"` (see :obj:`TU_NAMES` for the
            ones used in the paper; any TU name works).
        root (str): the data root.
        transform, pre_transform (callable, optional): PyG transforms.

    Attributes:
        eval_metric: :obj:`"acc"`; task_type: :obj:`"multiclass classification"`;
        num_tasks: 1.
    """

    eval_metric = "acc"
    task_type = "multiclass classification"
    num_tasks = 1

    def __init__(self, name: str, root: str = "datasets", transform=None, pre_transform=None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a TU dataset name such as {TU_NAMES}, got {name!r}")
        super().__init__(osp.join(str(root), "TU"), name, transform, pre_transform)

    def get_idx_split(self, fold: int = 0, num_folds: int = 10, seed: int = 0) -> Dict[str, torch.Tensor]:
        """The train/valid/test indices of cross-validation run :obj:`fold` (see :func:`tu_folds`)."""
        if not isinstance(fold, int) or not 0 <= fold < num_folds:
            raise ValueError(f"fold must be an int in [0, {num_folds}), got {fold!r}")
        return tu_folds(self._data.y, num_folds=num_folds, seed=seed)[fold]

    @property
    def evaluator(self) -> OGBStyleEvaluator:
        """Accuracy the OGB way: :obj:`y_true`, :obj:`y_pred` (class indices) of shape [n, 1]."""
        return OGBStyleEvaluator(self.name, 1, "acc")
