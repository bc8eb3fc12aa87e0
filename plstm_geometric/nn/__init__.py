"""Modules with parameters: the pLSTM layers of graphs (:class:`PLSTMConv`, :class:`PLSTMBlock`), images
(:class:`PLSTM2D`) and sequences (:class:`GILR`, :class:`GILRLSTM`), and the pieces models share (norm,
OGB feature encoders, :class:`BondGCNConv`)."""

from .blocks import PLSTMBlock
from .bond_gcn_conv import BondGCNConv
from .encoders import AtomEncoder, BondEncoder, FeatureEncoder
from .gilr import GILR, GILRLSTM
from .norm import MultiHeadRMSNorm
from .plstm2d import PLSTM2D
from .plstm_conv import PLSTMConv

__all__ = [
    "PLSTMConv",
    "PLSTMBlock",
    "PLSTM2D",
    "GILR",
    "GILRLSTM",
    "MultiHeadRMSNorm",
    "BondGCNConv",
    "AtomEncoder",
    "BondEncoder",
    "FeatureEncoder",
]
