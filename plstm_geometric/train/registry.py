r"""The models the graph training command line knows: one entry per ``--model`` name.

An entry says which class builds the model (imported on first use, so that ``--help`` and flag errors
never import torch), its default sizes, the readouts it supports, the flags only it takes, and whether the
run precomputes its pLSTM structures (:class:`~plstm_geometric.transforms.PreparePLSTM`) once. The command
line's ``--model`` choices, its per-model defaults and :mod:`benchmarks.suite`'s checks all read this
table: adding a model to the command line is its class plus one entry here.
"""

import importlib
from dataclasses import dataclass

__all__ = ["MODELS", "PLSTM_POOLS", "POOL_NORMS", "ModelSpec", "build_model", "model_spec"]

# the readouts and pooled normalisations of PLSTMGraphModel (a test checks they match the model's own)
PLSTM_POOLS = ("mean", "sum")
POOL_NORMS = ("batch", "none")
FIRST_SWEEPS = ("forward", "reverse")
FIRST_SWEEP = "forward"
NORMALIZE_OVER = ("outgoing", "incoming")
ALL_POOLS = ("mean", "sum", "max")


@dataclass(frozen=True)
class ModelSpec:
    r"""One ``--model`` of the training command line.

    Args:
        name (str): the ``--model`` value.
        constructor (str): ``"module:attribute"`` of the class, called as
            ``cls(hidden, out_channels, layers, dropout=, encoder=, in_channels=, edge_dim=, pool=, **options)``.
        hidden, layers (int), dropout (float): the defaults of ``--hidden``, ``--layers`` and ``--dropout``.
        pools (tuple): the ``--pool`` values it supports.
        options (tuple): the flags only this model takes (their values are passed to the constructor).
        prepared (bool): whether the run precomputes the pLSTM structure of every graph once.
        description (str): one line for ``--help``.
    """

    name: str
    constructor: str
    hidden: int
    layers: int
    dropout: float
    pools: tuple = ALL_POOLS
    options: tuple = ()
    prepared: bool = False
    description: str = ""

    def model_class(self):
        module, attribute = self.constructor.split(":")
        return getattr(importlib.import_module(module), attribute)


# Baselines follow OGB's GNN recipe (hidden 300, 5 layers, dropout 0.5); pLSTM's sizes keep it under the
# baselines' parameter count at the same width (see the configs in benchmarks/configs for the tables' sizes).
MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "plstm",
            "plstm_geometric.models:PLSTMGraphModel",
            hidden=64,
            layers=2,
            dropout=0.0,
            pools=PLSTM_POOLS,
            options=("heads", "pool_norm", "backend", "first_sweep", "normalize_over", "transition_start"),
            prepared=True,
            description="pLSTM blocks (P then D mode; forward, then reversed from the second block on)",
        ),
        ModelSpec("gin", "plstm_geometric.models:GIN", 300, 5, 0.5, description="GIN with bond features"),
        ModelSpec("gin-virtual", "plstm_geometric.models:GINVirtual", 300, 5, 0.5, description="GIN, virtual node"),
        ModelSpec("gcn", "plstm_geometric.models:GCN", 300, 5, 0.5, description="GCN with bond features"),
        ModelSpec("gine", "plstm_geometric.models:GINE", 300, 5, 0.5, description="GINE"),
        ModelSpec("gatedgcn", "plstm_geometric.models:GatedGCN", 300, 5, 0.5, description="residual gated GCN"),
    )
}


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; a ``ValueError`` listing the known names otherwise."""
    if name not in MODELS:
        raise ValueError(f"model: expected one of {tuple(MODELS)}, got {name!r}")
    return MODELS[name]


def build_model(
    name: str,
    hidden: int,
    out_channels: int,
    layers: int,
    *,
    dropout: float,
    pool: str,
    encoder: str,
    in_channels=None,
    edge_dim=None,
    **options,
):
    """The model ``name`` built with the given sizes; ``options`` are the flags of its
    :attr:`ModelSpec.options` (a flag it does not take raises a ``ValueError`` naming it)."""
    spec = model_spec(name)
    foreign = sorted(set(options) - set(spec.options))
    if foreign:
        raise ValueError(f"{foreign[0]}: --model {name} does not take it (it takes {spec.options or 'none'})")
    kwargs = {key: value for key, value in options.items() if value is not None}
    return spec.model_class()(
        hidden,
        out_channels,
        layers,
        dropout=dropout,
        encoder=encoder,
        in_channels=in_channels,
        edge_dim=edge_dim,
        pool=pool,
        **kwargs,
    )
