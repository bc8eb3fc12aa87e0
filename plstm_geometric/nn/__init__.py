from .norm import MultiHeadRMSNorm
from .plstm_conv import PLSTMConv
from .blocks import PLSTMBlock
from .gilr import GILR, GILRLSTM
from .plstm2d import PLSTM2D
