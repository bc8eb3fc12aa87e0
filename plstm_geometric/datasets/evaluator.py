"""An OGB evaluator for datasets that OGB's master table does not list."""

from ogb.graphproppred import Evaluator

# The metrics of ogb.graphproppred.Evaluator that score (num_graphs, num_tasks) arrays.
METRICS = ("rocauc", "ap", "rmse", "acc")


class OGBStyleEvaluator(Evaluator):
    r"""OGB's :class:`~ogb.graphproppred.Evaluator`, configured by hand instead of by name.

    OGB's evaluator looks its dataset up in OGB's master table, so it refuses the embedded
    :obj:`"nci-tpsa"` set, TU sets and rebuilt variants with another number of tasks. This one
    takes the metric and the number of tasks directly and scores with OGB's own code, so
    :obj:`eval({"y_true": ..., "y_pred": ...})` behaves exactly as OGB's: inputs of shape
    [num_graphs, num_tasks] (NumPy or torch), NaN labels ignored, the metric averaged over tasks.

    Args:
        name (str): the dataset's name (used in messages only).
        num_tasks (int): number of label columns.
        eval_metric (str): one of :obj:`"rocauc"`, :obj:`"ap"`, :obj:`"rmse"`, :obj:`"acc"`.
    """

    def __init__(self, name: str, num_tasks: int, eval_metric: str):
        # Deliberately no super().__init__(): it would look the name up in OGB's master table.
        if eval_metric not in METRICS:
            raise ValueError(f"eval_metric: expected one of {METRICS}, got {eval_metric!r}")
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int):
            raise TypeError(f"num_tasks: expected an int, got {type(num_tasks).__name__}")
        if num_tasks < 1:
            raise ValueError(f"num_tasks: expected a positive int, got {num_tasks!r}")
        self.name = name
        self.num_tasks = num_tasks
        self.eval_metric = eval_metric

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, num_tasks={self.num_tasks}, eval_metric={self.eval_metric!r})"
