"""Complete models: :class:`PLSTMGraphModel` (graph property prediction), :class:`PLSTMVis` (images), and the
baselines they are compared with (GIN, GIN with a virtual node, GCN, GINE, GatedGCN, ViT). Molecule features
are embedded by the library's own encoders (:mod:`plstm_geometric.nn.encoders`): importing this package loads neither
OGB nor RDKit."""

from .baselines import GCN, GIN, GINE, GatedGCN, GINVirtual
from .graph_model import PLSTMGraphModel
from .plstm_vis import PLSTMVis
from .vit import ViT

__all__ = ["PLSTMGraphModel", "PLSTMVis", "GIN", "GINVirtual", "GCN", "GINE", "GatedGCN", "ViT"]
