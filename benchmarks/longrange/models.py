"""The models the long-range benchmark compares, by name: pLSTM and the message-passing baselines, all on
the tasks' float node features (linear encoders) and read out at the query node."""

from collections.abc import Callable

import torch

from plstm_geometric.models import GCN, GINE, GatedGCN, PLSTMGraphModel

from .tasks import NUM_FEATURES

NUM_CLASSES = 2


def _plstm(hidden: int, layers: int, **kwargs) -> torch.nn.Module:
    return PLSTMGraphModel(hidden, NUM_CLASSES, layers, encoder="linear", in_channels=NUM_FEATURES, **kwargs)


def _baseline(cls) -> Callable[..., torch.nn.Module]:
    def build(hidden: int, layers: int, **kwargs) -> torch.nn.Module:
        # no dropout: the tasks are noise-free and the training graphs are fresh draws
        kwargs.setdefault("dropout", 0.0)
        return cls(hidden, NUM_CLASSES, layers, encoder="linear", in_channels=NUM_FEATURES, edge_dim=1, **kwargs)

    return build


# name -> (constructor, default hidden size, default number of layers)
MODELS: dict[str, tuple[Callable[..., torch.nn.Module], int, int]] = {
    "plstm": (_plstm, 32, 2),
    "gcn": (_baseline(GCN), 64, 5),
    "gine": (_baseline(GINE), 48, 5),
    "gatedgcn": (_baseline(GatedGCN), 40, 5),
}


def build_model(name: str, hidden: int | None = None, layers: int | None = None, **kwargs) -> torch.nn.Module:
    if name not in MODELS:
        raise ValueError(f"model: expected one of {tuple(MODELS)}, got {name!r}")
    constructor, default_hidden, default_layers = MODELS[name]
    return constructor(hidden or default_hidden, layers or default_layers, **kwargs)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
