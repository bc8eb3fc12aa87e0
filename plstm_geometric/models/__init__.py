
from .baselines import GCN, GIN, BondGCNConv, GINVirtual
from .vit import ViT
from .graph_model import PLSTMGraphModel
from .plstm_vis import PLSTMVis
