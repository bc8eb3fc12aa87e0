
from .data import PLSTMData
from .prepare import PreparePLSTM
