"""PLSTMBlock: a residual pre-norm block of a P-mode and a D-mode :class:`~plstm_geometric.nn.PLSTMConv`, each
followed by a feed-forward MLP; the unit :class:`~plstm_geometric.models.PLSTMGraphModel` stacks."""

import torch
from torch import Tensor

from ..graph.structure import PLSTMStructure
from .plstm_conv import PLSTMConv


class FeedForward(torch.nn.Sequential):
    """Two-layer GELU MLP ``channels -> hidden_channels -> channels`` with dropout on its output."""

    def __init__(self, channels: int, hidden_channels: int, dropout: float = 0.0):
        super().__init__(
            torch.nn.Linear(channels, hidden_channels),
            torch.nn.GELU(),
            torch.nn.Linear(hidden_channels, channels),
            torch.nn.Dropout(dropout),
        )


class PLSTMBlock(torch.nn.Module):
    r"""A residual pre-norm pLSTM block: a P-mode layer, an MLP, a D-mode layer and a second MLP,

    .. math::
        \mathbf{x} &\leftarrow \mathbf{x} + \mathrm{PLSTM}_P(\mathrm{LN}(\mathbf{x})), \quad
        \mathbf{x} \leftarrow \mathbf{x} + \mathrm{MLP}(\mathrm{LN}(\mathbf{x})), \\
        \mathbf{x} &\leftarrow \mathbf{x} + \mathrm{PLSTM}_D(\mathrm{LN}(\mathbf{x})), \quad
        \mathbf{x} \leftarrow \mathbf{x} + \mathrm{MLP}(\mathrm{LN}(\mathbf{x})),

    each sub-layer with its own LayerNorm and parameters. Both pLSTM layers sweep in the same direction
    (``reverse``); stacking blocks with alternating directions lets information travel both ways along
    the DAG, and every direction has both the propagation (P) and the diffusion (D) mode.

    Args:
        channels (int): feature size, kept through the block.
        heads (int): pLSTM heads. (default: :obj:`4`)
        edge_dim (int, optional): edge feature size passed to both layers. (default: :obj:`None`)
        reverse (bool): sweep against the DAG's edges. (default: :obj:`False`)
        mlp_ratio (float): hidden size of the MLPs relative to ``channels``. (default: :obj:`2.0`)
        dropout (float): dropout on every sub-layer's output before the residual sum. (default: :obj:`0.0`)
        **kwargs: further :class:`PLSTMConv` arguments (``orientation``, ``alpha``, ``normalize_over``,
            ``qk_channels``, ``v_channels``, ``bias``).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, \text{channels})`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge features :math:`(|\mathcal{E}|, \text{edge\_dim})` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, \text{channels})`
    """

    def __init__(
        self,
        channels: int,
        heads: int = 4,
        edge_dim: int | None = None,
        reverse: bool = False,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__()
        if not (isinstance(mlp_ratio, (int, float)) and not isinstance(mlp_ratio, bool) and 0 < mlp_ratio < 1e6):
            raise ValueError(f"mlp_ratio: expected a positive number, got {mlp_ratio!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.channels = channels
        self.heads = heads
        self.reverse = reverse
        hidden_channels = max(1, int(round(mlp_ratio * channels)))
        self.norm_p = torch.nn.LayerNorm(channels)
        self.conv_p = PLSTMConv(channels, channels, heads, mode="P", edge_dim=edge_dim, reverse=reverse, **kwargs)
        self.norm_mlp_p = torch.nn.LayerNorm(channels)
        self.mlp_p = FeedForward(channels, hidden_channels, dropout)
        self.norm_d = torch.nn.LayerNorm(channels)
        self.conv_d = PLSTMConv(channels, channels, heads, mode="D", edge_dim=edge_dim, reverse=reverse, **kwargs)
        self.norm_mlp_d = torch.nn.LayerNorm(channels)
        self.mlp_d = FeedForward(channels, hidden_channels, dropout)
        self.dropout = torch.nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self):
        for module in (self.norm_p, self.conv_p, self.norm_mlp_p, self.norm_d, self.conv_d, self.norm_mlp_d):
            module.reset_parameters()
        for mlp in (self.mlp_p, self.mlp_d):
            mlp[0].reset_parameters()
            mlp[2].reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor | None = None,
        order: Tensor | None = None,
        structure_p: PLSTMStructure | None = None,
        structure_d: PLSTMStructure | None = None,
    ) -> Tensor:
        r"""``structure_p``/``structure_d``: precomputed structures for the P and D layer (see
        :meth:`PLSTMConv.structure`); computed from ``edge_index`` (and ``order``) when omitted."""
        x = x + self.dropout(self.conv_p(self.norm_p(x), edge_index, edge_attr, order, structure_p))
        x = x + self.mlp_p(self.norm_mlp_p(x))
        x = x + self.dropout(self.conv_d(self.norm_d(x), edge_index, edge_attr, order, structure_d))
        x = x + self.mlp_d(self.norm_mlp_d(x))
        return x

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.channels}, heads={self.heads}{', reverse=True' if self.reverse else ''})"
        )
