"""MultiHeadRMSNorm: RMS normalisation of every head's output separately, with one learned scale per
channel (the norm pLSTM layers apply before their output projection)."""

import torch
from torch import Tensor

from ..checks import check_positive_int
from ..functional.norm import multi_head_rms_norm


class MultiHeadRMSNorm(torch.nn.Module):
    r"""RMS normalisation applied to each head separately.

    .. math::
        y_{h} = \frac{x_{h}}{\sqrt{\mathrm{mean}(x_{h}^2) + \epsilon}} \odot \gamma_{h}

    pLSTM heads carry cell states of very different magnitudes (a head whose gates close early sees
    small outputs); normalising per head keeps each head's contribution comparable before the output
    projection mixes them.

    Args:
        heads (int): number of heads :math:`H`.
        head_channels (int): channels per head :math:`V`.
        eps (float): added to the mean square.

    On CPU the forward and backward passes run as one loop each once the compiled sweep's C++ loops are
    loaded (:func:`~plstm_geometric.functional.norm.multi_head_rms_norm`).

    Shapes:
        input ``[..., H, V]``, output the same.
    """

    def __init__(self, heads: int, head_channels: int, eps: float = 1e-6):
        super().__init__()
        check_positive_int("heads", heads)
        check_positive_int("head_channels", head_channels)
        if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < eps < float("inf")):
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        self.heads = heads
        self.head_channels = head_channels
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.empty(heads, head_channels))
        self.reset_parameters()

    def reset_parameters(self):
        torch.nn.init.ones_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.heads, self.head_channels):
            raise ValueError(f"x: expected trailing shape ({self.heads}, {self.head_channels}), got {tuple(x.shape)}")
        return multi_head_rms_norm(x, self.weight, self.eps)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.heads}, {self.head_channels})"
