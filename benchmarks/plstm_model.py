"""``PLSTMGraphModel`` as the training CLI builds it (``build_model`` of :mod:`plstm_geometric.train`), with
the ``plstm_dag`` backend passed to its constructor: a benchmark never changes a built model's layers.

``tests/benchmarks/test_plstm_model.py`` checks that both give the same model for the same seed, so a
change of the CLI's model shows up there.
"""

import torch
from torch_geometric.data import Data

from plstm_geometric.models import PLSTMGraphModel

#: The pLSTM of the LRGB suite (``benchmarks/configs/lrgb.json``: hidden 112, 4 heads, 2 blocks of P+D,
#: mean pooling, no dropout; under LRGB's 500k-parameter budget) and Peptides-func's 10 binary tasks.
LRGB_PEPTIDES = {"hidden": 112, "layers": 2, "heads": 4, "pool": "mean", "dropout": 0.0, "out_channels": 10}


def plstm_graph_model(
    sample: Data,
    out_channels: int,
    hidden: int,
    layers: int,
    heads: int = 4,
    dropout: float = 0.0,
    pool: str = "mean",
    pool_norm: str = "batch",
    backend: str = "auto",
    **kwargs,
) -> PLSTMGraphModel:
    """The model for graphs like ``sample`` (a dataset's first graph): OGB encoders for integer node features,
    else linear maps of the node and (flattened) edge features, as the CLI chooses them; ``kwargs`` are
    further :class:`PLSTMGraphModel` arguments (``first_sweep``, ``normalize_over``, ...)."""
    encoder = "ogb" if sample.x.dtype == torch.long else "linear"
    in_channels = None if encoder == "ogb" else sample.num_node_features
    edge_attr = sample.edge_attr
    edge_dim = None if encoder == "ogb" or edge_attr is None else edge_attr.view(len(edge_attr), -1).size(1)
    return PLSTMGraphModel(
        hidden,
        out_channels,
        layers,
        heads=heads,
        pool_norm=pool_norm,
        dropout=dropout,
        encoder=encoder,
        in_channels=in_channels,
        edge_dim=edge_dim,
        pool=pool,
        backend=backend,
        **kwargs,
    )
