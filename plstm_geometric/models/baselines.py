"""Message-passing baselines for graph property prediction: GIN, GIN with a virtual node, GCN, and the
LRGB baselines GINE and GatedGCN.

They follow the reference GNNs of the OGB molecule examples (node embeddings of width 300, five layers,
batch norm after every convolution, dropout 0.5, the last layer's embedding mean-pooled and fed to one
linear layer), so numbers obtained with them are comparable to the OGB leaderboard, and they share the
constructor style and ``forward(data)`` of :class:`~plstm_geometric.models.PLSTMGraphModel`. GINE and
GatedGCN are the bond-aware message-passing baselines of LRGB (Dwivedi et al. 2022), residual by default
as in LRGB's configurations.
"""

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import GINConv, GINEConv, ResGatedGraphConv, global_add_pool

from ..nn.bond_gcn_conv import BondGCNConv
from ..nn.encoders import AtomEncoder, BondEncoder
from .common import check_graph_model_args, readout, reset_module

__all__ = ["GIN", "GINVirtual", "GCN", "GINE", "GatedGCN"]


def _mlp(channels: int) -> torch.nn.Sequential:
    """The two-layer perceptron of GIN: widen to 2x, batch norm, ReLU, project back."""
    return torch.nn.Sequential(
        torch.nn.Linear(channels, 2 * channels),
        torch.nn.BatchNorm1d(2 * channels),
        torch.nn.ReLU(),
        torch.nn.Linear(2 * channels, channels),
    )


class _MolGNN(torch.nn.Module):
    r"""Shared body of the baselines; subclasses choose the convolution through ``_make_conv``.

    Per layer :math:`\ell` (with :math:`\mathbf{v}` the virtual node's embedding of the node's graph,
    zero when ``virtual_node=False``):

    .. math::
        \mathbf{h}^{\ell+1} = \mathrm{Dropout}(\sigma(\mathrm{BN}(
        \mathrm{Conv}(\mathbf{h}^{\ell} + \mathbf{v}^{\ell})))) \;[+\, (\mathbf{h}^{\ell} + \mathbf{v}^{\ell})
        \text{ if residual}],

    :math:`\sigma` = ReLU except after the last layer. The virtual node collects
    :math:`\mathbf{v}^{\ell+1} = \mathrm{Dropout}(\mathrm{MLP}(\mathbf{v}^{\ell} + \sum_i (\mathbf{h}^{\ell}_i
    + \mathbf{v}^{\ell})))` (plus :math:`\mathbf{v}^{\ell}` if residual).
    """

    def __init__(
        self,
        hidden_channels: int = 300,
        out_channels: int = 1,
        num_layers: int = 5,
        dropout: float = 0.5,
        encoder: str = "ogb",
        in_channels: int | None = None,
        edge_dim: int | None = None,
        pool: str = "mean",
        residual: bool = False,
        virtual_node: bool = False,
    ):
        super().__init__()
        check_graph_model_args(hidden_channels, out_channels, num_layers, encoder, in_channels, pool, dropout)
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.dropout = dropout
        self.encoder = encoder
        self.in_channels = in_channels
        self.edge_dim = edge_dim
        self.pool = pool
        self.residual = residual
        self.virtual_node = virtual_node

        if encoder == "ogb":
            self.node_encoder = AtomEncoder(hidden_channels)
        else:
            self.node_encoder = torch.nn.Linear(in_channels, hidden_channels)
        # every layer embeds the bonds anew, as in OGB: the layers may want different bond features
        self.edge_encoders = torch.nn.ModuleList()
        if encoder == "ogb" or edge_dim is not None:
            for _ in range(num_layers):
                if encoder == "ogb":
                    self.edge_encoders.append(BondEncoder(hidden_channels))
                else:
                    self.edge_encoders.append(torch.nn.Linear(edge_dim, hidden_channels))
        self.convs = torch.nn.ModuleList([self._make_conv(hidden_channels) for _ in range(num_layers)])
        self.norms = torch.nn.ModuleList([torch.nn.BatchNorm1d(hidden_channels) for _ in range(num_layers)])
        if virtual_node:
            self.virtual_embedding = torch.nn.Embedding(1, hidden_channels)
            self.virtual_mlps = torch.nn.ModuleList(
                [
                    torch.nn.Sequential(
                        torch.nn.Linear(hidden_channels, 2 * hidden_channels),
                        torch.nn.BatchNorm1d(2 * hidden_channels),
                        torch.nn.ReLU(),
                        torch.nn.Linear(2 * hidden_channels, hidden_channels),
                        torch.nn.BatchNorm1d(hidden_channels),
                        torch.nn.ReLU(),
                    )
                    for _ in range(num_layers - 1)
                ]
            )
        self.head = torch.nn.Linear(hidden_channels, out_channels)
        self.reset_parameters()

    def _make_conv(self, channels: int) -> torch.nn.Module:
        raise NotImplementedError

    def _conv(self, layer: int, x: Tensor, edge_index: Tensor, edge_embedding: Tensor | None) -> Tensor:
        return self.convs[layer](x, edge_index, edge_embedding)

    def reset_parameters(self):
        reset_module(self.node_encoder)
        for module in [*self.edge_encoders, *self.convs, *self.norms, self.head]:
            reset_module(module)
        if self.virtual_node:
            # the virtual node starts from zero so that the first layer sees the plain node embeddings
            torch.nn.init.zeros_(self.virtual_embedding.weight)
            for mlp in self.virtual_mlps:
                reset_module(mlp)

    def _encode_nodes(self, x: Tensor) -> Tensor:
        if self.encoder == "ogb":
            if x.dim() != 2 or x.dtype != torch.long:
                raise TypeError(
                    f"data.x: expected long [N, F] atom features for encoder='ogb', got {x.dtype} {tuple(x.shape)}"
                )
            return self.node_encoder(x)
        return self.node_encoder(x.float())

    def _encode_edges(self, layer: int, edge_attr: Tensor | None) -> Tensor | None:
        if len(self.edge_encoders) == 0:
            return None
        if edge_attr is None:
            raise ValueError("data.edge_attr: required by this model (encoder='ogb' or edge_dim set), got None")
        if self.encoder == "ogb":
            return self.edge_encoders[layer](edge_attr)
        return self.edge_encoders[layer](edge_attr.float())

    def forward(self, data) -> Tensor:
        """Graph-level predictions ``[num_graphs, out_channels]`` for a PyG ``Batch`` (or single ``Data``)
        with ``x``, ``edge_index``, optional ``edge_attr`` and ``batch``."""
        x, edge_index = data.x, data.edge_index
        edge_attr = getattr(data, "edge_attr", None)
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = x.new_zeros(x.size(0), dtype=torch.long)
        num_graphs = getattr(data, "num_graphs", None)
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0

        h = self._encode_nodes(x)
        if self.virtual_node:
            virtual = self.virtual_embedding.weight.expand(num_graphs, -1)
        for layer in range(self.num_layers):
            if self.virtual_node:
                h = h + virtual[batch]
            out = self.norms[layer](self._conv(layer, h, edge_index, self._encode_edges(layer, edge_attr)))
            if layer < self.num_layers - 1:
                out = F.relu(out)
            out = F.dropout(out, self.dropout, training=self.training)
            if self.virtual_node and layer < self.num_layers - 1:
                # the layer's input already carries the virtual state; OGB adds it once more
                pooled = global_add_pool(h, batch, size=num_graphs) + virtual
                update = F.dropout(
                    self.virtual_mlps[layer](pooled),
                    self.dropout,
                    training=self.training,
                )
                virtual = virtual + update if self.residual else update
            h = out + h if self.residual else out
        return self.head(readout(self.pool, h, batch, num_graphs, data))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.hidden_channels}, {self.out_channels}, "
            f"num_layers={self.num_layers}, encoder={self.encoder!r}, pool={self.pool!r})"
        )


class GIN(_MolGNN):
    r"""Graph isomorphism network with bond features (the OGB ``gin`` baseline).

    Each layer is

    .. math::
        \mathbf{x}'_i = \mathrm{MLP}\Big((1 + \epsilon)\,\mathbf{x}_i
        + \sum_{j \in \mathcal{N}(i)} \mathrm{ReLU}(\mathbf{x}_j + \mathbf{e}_{ji})\Big)

    (:class:`~torch_geometric.nn.conv.GINEConv` with a trainable :math:`\epsilon`; without edge features
    the plain :class:`~torch_geometric.nn.conv.GINConv` sum of :math:`\mathbf{x}_j`), followed by batch
    norm, ReLU (not after the last layer) and dropout; see :class:`_MolGNN` for the stacking.

    Args:
        hidden_channels (int): node embedding width (OGB: 300).
        out_channels (int): outputs per graph (tasks or classes).
        num_layers (int): message-passing layers (OGB: 5).
        dropout (float): dropout after every layer (OGB: 0.5).
        encoder (str): ``"ogb"``: OGB atom / bond embeddings of integer features; ``"linear"``: linear maps
            of float features (``in_channels`` required, ``edge_dim`` optional).
        in_channels (int, optional): node feature width for ``encoder="linear"``.
        edge_dim (int, optional): edge feature width for ``encoder="linear"``; ``None`` ignores edges'
            features.
        pool (str): graph readout, ``"mean"``, ``"sum"`` or ``"max"``.
        residual (bool): add each layer's input to its output.
        virtual_node (bool): add a virtual node connected to all nodes of its graph.

    Shapes:
        data.x ``[N, F]`` (long for ``"ogb"``), data.edge_index ``[2, E]``, data.edge_attr ``[E, D]``,
        data.batch ``[N]`` -> ``[num_graphs, out_channels]``.
    """

    def _make_conv(self, channels: int) -> torch.nn.Module:
        if self.encoder == "ogb" or self.edge_dim is not None:
            return GINEConv(_mlp(channels), train_eps=True)
        return GINConv(_mlp(channels), train_eps=True)

    def _conv(self, layer, x, edge_index, edge_embedding):
        if edge_embedding is None:
            return self.convs[layer](x, edge_index)
        return self.convs[layer](x, edge_index, edge_embedding)


class GINVirtual(GIN):
    r"""GIN with a virtual node (the OGB ``gin-virtual`` baseline): :class:`GIN` with
    ``virtual_node=True``. The virtual node of each graph is updated between layers from the sum of its
    graph's node embeddings by a two-layer perceptron and added to every node before the next layer.
    Same arguments and shapes as :class:`GIN`."""

    def __init__(self, hidden_channels: int = 300, out_channels: int = 1, num_layers: int = 5, **kwargs):
        kwargs.setdefault("virtual_node", True)
        super().__init__(hidden_channels, out_channels, num_layers, **kwargs)


class GCN(_MolGNN):
    r"""Graph convolutional network with bond features (the OGB ``gcn`` baseline): layers are
    :class:`BondGCNConv`, stacked as in :class:`GIN` (batch norm, ReLU, dropout, optional virtual node).
    Same arguments and shapes as :class:`GIN`."""

    def _make_conv(self, channels: int) -> torch.nn.Module:
        return BondGCNConv(channels)


class _EdgeGNN(_MolGNN):
    """A baseline whose convolution needs edge features: OGB bond embeddings or ``edge_dim`` linear ones;
    residual connections by default, as in LRGB's configurations of these models."""

    def __init__(self, hidden_channels: int = 300, out_channels: int = 1, num_layers: int = 5, **kwargs):
        kwargs.setdefault("residual", True)
        if kwargs.get("encoder", "ogb") == "linear" and kwargs.get("edge_dim") is None:
            raise ValueError(
                f"edge_dim: required by {self.__class__.__name__} with encoder='linear' (its "
                f"convolution reads edge features), got None"
            )
        super().__init__(hidden_channels, out_channels, num_layers, **kwargs)


class GINE(_EdgeGNN):
    r"""GIN with edge features (LRGB's ``GINE`` baseline, Hu et al. 2020): each layer is

    .. math::
        \mathbf{x}'_i = \mathrm{MLP}\Big((1 + \epsilon)\,\mathbf{x}_i
        + \sum_{j \in \mathcal{N}(i)} \mathrm{ReLU}(\mathbf{x}_j + \mathbf{e}_{ji})\Big)

    (:class:`~torch_geometric.nn.conv.GINEConv`, trainable :math:`\epsilon`, :math:`\mathbf{e}_{ji}` the
    layer's own bond embedding), followed by batch norm, ReLU (not after the last layer), dropout and, by
    default, a residual connection; see :class:`_MolGNN` for the stacking. Unlike :class:`GIN` it always
    reads edge features, so ``encoder="linear"`` needs ``edge_dim``. Same arguments and shapes as
    :class:`GIN`, with ``residual=True`` by default.
    """

    def _make_conv(self, channels: int) -> torch.nn.Module:
        return GINEConv(_mlp(channels), train_eps=True)


class GatedGCN(_EdgeGNN):
    r"""Residual gated graph convolutions with edge features (LRGB's ``GatedGCN`` baseline, Bresson and
    Laurent 2017): each layer is :class:`~torch_geometric.nn.conv.ResGatedGraphConv`,

    .. math::
        \mathbf{x}'_i = \mathbf{W}_1 \mathbf{x}_i + \sum_{j \in \mathcal{N}(i)} \eta_{i,j} \odot
        \mathbf{W}_2 \mathbf{x}_j, \qquad
        \eta_{i,j} = \sigma(\mathbf{W}_3 \mathbf{x}_i + \mathbf{W}_4 \mathbf{x}_j
        + \mathbf{W}_5 \mathbf{e}_{ji}),

    with the layer's own bond embedding :math:`\mathbf{e}_{ji}` in the gate (the edge embeddings are not
    updated from layer to layer, unlike the original GatedGCN), followed by batch norm, ReLU (not after
    the last layer), dropout and, by default, a residual connection. Same arguments and shapes as
    :class:`GIN`, with ``residual=True`` by default; ``encoder="linear"`` needs ``edge_dim``.
    """

    def _make_conv(self, channels: int) -> torch.nn.Module:
        return ResGatedGraphConv(channels, channels, edge_dim=channels)

    def _conv(self, layer, x, edge_index, edge_embedding):
        return self.convs[layer](x, edge_index, edge_embedding)
