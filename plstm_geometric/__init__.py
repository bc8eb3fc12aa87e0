"""pLSTM and parallel linear recurrences for PyTorch Geometric."""

__version__ = "0.1.0"
