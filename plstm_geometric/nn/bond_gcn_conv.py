"""BondGCNConv: the graph convolution with edge embeddings of the OGB molecule examples (the GCN baseline's
layer)."""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import degree

__all__ = ["BondGCNConv"]


class BondGCNConv(MessagePassing):
    r"""Graph convolution with edge features, as used by the OGB molecule examples.

    .. math::
        \mathbf{x}'_i = \sum_{j \in \mathcal{N}(i)} \frac{1}{\sqrt{\hat d_i \hat d_j}}
        \mathrm{ReLU}(\mathbf{W}\mathbf{x}_j + \mathbf{e}_{ji})
        + \frac{1}{\hat d_i} \mathrm{ReLU}(\mathbf{W}\mathbf{x}_i + \mathbf{r}),
        \qquad \hat d_i = 1 + \deg(i),

    with :math:`\mathbf{e}_{ji}` an edge embedding computed outside (``None`` drops the term) and
    :math:`\mathbf{r}` a learned root embedding standing in for the self-loop's missing edge feature.
    PyG's :class:`~torch_geometric.nn.conv.GCNConv` only accepts scalar edge weights, hence this layer.

    Args:
        channels (int): input and output width.

    Shapes:
        x ``[N, channels]``, edge_index ``[2, E]``, edge_embedding ``[E, channels]`` or ``None``
        -> ``[N, channels]``.
    """

    def __init__(self, channels: int):
        super().__init__(aggr="add")
        self.channels = channels
        self.lin = torch.nn.Linear(channels, channels)
        self.root = torch.nn.Parameter(torch.empty(1, channels))
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.lin.reset_parameters()
        torch.nn.init.zeros_(self.root)

    def forward(self, x: Tensor, edge_index: Tensor, edge_embedding: Optional[Tensor] = None) -> Tensor:
        x = self.lin(x)
        row, col = edge_index
        deg = degree(row, x.size(0), dtype=x.dtype) + 1
        deg_inv_sqrt = deg.pow(-0.5)
        norm = deg_inv_sqrt[row] * deg_inv_sqrt[col]
        out = self.propagate(edge_index, x=x, edge_embedding=edge_embedding, norm=norm)
        return out + F.relu(x + self.root) / deg.view(-1, 1)

    def message(self, x_j: Tensor, edge_embedding: Optional[Tensor], norm: Tensor) -> Tensor:
        if edge_embedding is not None:
            x_j = x_j + edge_embedding
        return norm.view(-1, 1) * F.relu(x_j)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels})"
