"""Embeddings of OGB's integer molecule features, without importing OGB or RDKit.

OGB encodes every atom as 9 and every bond as 3 categorical features (``ogb.utils.features``); the
vocabulary sizes below are those of that fixed feature set, stated here once. A graph's embedding of a
row of features is the sum of one embedding per feature, as OGB's ``AtomEncoder`` / ``BondEncoder``
compute it, with the same parameter names and initialisation, so checkpoints load either way.
"""

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["ATOM_FEATURE_SIZES", "BOND_FEATURE_SIZES", "FeatureEncoder", "AtomEncoder", "BondEncoder"]

#: Values of each OGB atom feature: atomic number (118 + other), chirality, degree, formal charge, number of
#: hydrogens, radical electrons, hybridisation, aromatic, in ring.
ATOM_FEATURE_SIZES = (119, 5, 12, 12, 10, 6, 6, 2, 2)
#: Values of each OGB bond feature: bond type, stereo configuration, conjugated.
BOND_FEATURE_SIZES = (5, 6, 2)


class FeatureEncoder(torch.nn.Module):
    r"""Sum of per-feature embeddings of integer features, :math:`h = \sum_i E_i[x_i]`.

    Args:
        out_channels (int): embedding size.
        feature_sizes (sequence of int): number of values of each feature.

    Shapes:
        input ``[N, F]`` long with ``F <= len(feature_sizes)``, output ``[N, out_channels]``.
    """

    embeddings_name = "embedding_list"
    # the name errors give the input: the features this encoder embeds
    input_name = "x"

    def __init__(self, out_channels: int, feature_sizes: Sequence[int]):
        super().__init__()
        if not isinstance(out_channels, int) or isinstance(out_channels, bool) or out_channels < 1:
            raise ValueError(f"out_channels: expected a positive int, got {out_channels!r}")
        self.out_channels = out_channels
        embeddings = torch.nn.ModuleList()
        for size in feature_sizes:
            # Initialised one after the other as OGB does, so a seeded model gets the same weights.
            embedding = torch.nn.Embedding(size, out_channels)
            torch.nn.init.xavier_uniform_(embedding.weight)
            embeddings.append(embedding)
        setattr(self, self.embeddings_name, embeddings)

    @property
    def embeddings(self) -> torch.nn.ModuleList:
        return getattr(self, self.embeddings_name)

    def reset_parameters(self):
        for embedding in self.embeddings:
            torch.nn.init.xavier_uniform_(embedding.weight)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{self.input_name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in (torch.long, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise TypeError(f"{self.input_name}: expected an integer tensor of feature values, got {x.dtype}")
        if x.dim() != 2 or not 1 <= x.size(1) <= len(self.embeddings):
            raise ValueError(
                f"{self.input_name}: expected shape [N, F] with 1 <= F <= {len(self.embeddings)}, got {tuple(x.shape)}"
            )
        # An out-of-vocabulary value would fail deep inside the embedding lookup (or on GPU, assert).
        sizes = [embedding.num_embeddings for embedding in self.embeddings[: x.size(1)]]
        if torch.compiler.is_compiling():
            # The check reads values on the host: compiled, it runs inside an op (no graph break).
            x = vocabulary_checked(x, sizes, self.input_name)
        else:
            check_vocabulary(x, sizes, self.input_name)
        out = 0
        for i in range(x.size(1)):
            out = out + self.embeddings[i](x[:, i])
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.out_channels}, features={len(self.embeddings)})"


def check_vocabulary(x: Tensor, sizes: list[int], name: str) -> None:
    """Every column ``i`` of the integer features ``x`` lies in ``[0, sizes[i])``."""
    if not x.size(0):
        return
    low, high = x.amin(0).tolist(), x.amax(0).tolist()
    for column, (lo, hi, size) in enumerate(zip(low, high, sizes)):
        if lo < 0 or hi >= size:
            raise ValueError(f"{name}: expected column {column} in [0, {size - 1}], got values in [{lo}, {hi}]")


@torch.library.custom_op("plstm_geometric::vocabulary_checked", mutates_args=())
def vocabulary_checked(x: Tensor, sizes: list[int], name: str) -> Tensor:
    """``x`` (a copy: an op returns no alias of its input) after :func:`check_vocabulary`."""
    check_vocabulary(x, sizes, name)
    return x.clone()


@vocabulary_checked.register_fake
def _(x, sizes, name):
    return torch.empty_like(x)


class AtomEncoder(FeatureEncoder):
    """:class:`FeatureEncoder` of OGB's 9 atom features (:data:`ATOM_FEATURE_SIZES`)."""

    embeddings_name = "atom_embedding_list"

    def __init__(self, out_channels: int):
        super().__init__(out_channels, ATOM_FEATURE_SIZES)


class BondEncoder(FeatureEncoder):
    """:class:`FeatureEncoder` of OGB's 3 bond features (:data:`BOND_FEATURE_SIZES`)."""

    embeddings_name = "bond_embedding_list"
    input_name = "edge_attr"

    def __init__(self, out_channels: int):
        super().__init__(out_channels, BOND_FEATURE_SIZES)
