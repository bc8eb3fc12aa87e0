"""An OGB evaluator for datasets that OGB's master table does not list."""

from .chemistry import require

# The metrics of ogb.graphproppred.Evaluator that score (num_graphs, num_tasks) arrays.
METRICS = ("rocauc", "ap", "rmse", "acc")


class OGBStyleEvaluator:
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

    def eval(self, input_dict: dict) -> dict:
        """OGB's :meth:`Evaluator.eval`: :obj:`{eval_metric: score}` of :obj:`input_dict["y_pred"]`
        against :obj:`input_dict["y_true"]`."""
        return self._ogb_evaluator().eval(input_dict)

    @property
    def expected_input_format(self) -> str:
        return self._ogb_evaluator().expected_input_format

    @property
    def expected_output_format(self) -> str:
        return self._ogb_evaluator().expected_output_format

    def _ogb_evaluator(self):
        # OGB's class with its three attributes set by hand: its __init__ would look the name up in
        # OGB's master table. Imported here so that the datasets package imports without OGB.
        evaluator_class = require("ogb.graphproppred", "scoring with OGB's evaluator").Evaluator
        evaluator = evaluator_class.__new__(evaluator_class)
        evaluator.name, evaluator.num_tasks, evaluator.eval_metric = self.name, self.num_tasks, self.eval_metric
        return evaluator
