"""Transforms that precompute the pLSTM structure of a graph once (:class:`PreparePLSTM`) and the data
class that batches it (:class:`PLSTMData`)."""

from ..graph.structure import PLSTMStructure
from .data import PLSTMData
from .prepare import PreparePLSTM

__all__ = ["PLSTMData", "PreparePLSTM", "PLSTMStructure"]
