from typing import Any

import torch
from torch_geometric.data import Data
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage

from ..graph.structure import PLSTMStructure, check_stored_dag, line_graph_mode_of, plstm_structure

DIRECTIONS = ("forward", "reverse")


def line_graph_key(line_graph_mode: str, reverse: bool) -> str:
    """Attribute name of a precomputed line graph, e.g. ``line_edge_index_p_forward``."""
    return f"line_edge_index_{line_graph_mode.lower()}_{DIRECTIONS[int(reverse)]}"


def node_level_key(reverse: bool) -> str:
    """Attribute name of the precomputed node levels of a sweep, e.g. ``dag_node_level_forward``."""
    return f"dag_node_level_{DIRECTIONS[int(reverse)]}"


class PLSTMData(Data):
    r"""A :class:`~torch_geometric.data.Data` carrying the pLSTM structure computed by
    :class:`~plstm_geometric.transforms.PreparePLSTM`, batched correctly by PyG's
    :class:`~torch_geometric.loader.DataLoader`.

    Besides the usual attributes it holds

    * ``dag_edge_index`` ``[2, E']``: the oriented DAG (forward direction); node indices, so batching
      offsets it by the number of nodes;
    * ``dag_edge_id`` ``[E']``: column of ``edge_index`` (row of ``edge_attr``) of every DAG edge, offset
      by the number of original edges;
    * ``line_edge_index_{p,d}_{forward,reverse}`` ``[2, L]``: line graphs of the DAG (``forward``) or of
      the reversed DAG (``reverse``, same edge ids); they index DAG *edges*, so batching offsets them by
      the number of DAG edges;
    * ``dag_node_level_{forward,reverse}`` ``[N]``: topological levels of the nodes in each sweep
      (levels are per graph, so batching concatenates them as they are).

    Registered with :func:`torch.serialization.add_safe_globals`, so datasets saved with it load with
    ``torch.load(..., weights_only=True)`` once this module is imported.
    """

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key.startswith("line_edge_index_"):
            return self.dag_edge_index.size(1)
        if key == "dag_edge_id":
            return self.edge_index.size(1)
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == "dag_edge_index" or key.startswith("line_edge_index_"):
            return -1
        return super().__cat_dim__(key, value, *args, **kwargs)

    def has_plstm_structure(self, line_graph_mode: str, reverse: bool) -> bool:
        return "dag_edge_index" in self and line_graph_key(line_graph_mode, reverse) in self

    def check_plstm_structure(self) -> None:
        """Raises ``ValueError`` when the stored DAG no longer matches ``edge_index`` (a transform that
        reorders, adds or drops edges ran after :class:`~plstm_geometric.transforms.PreparePLSTM`); see
        :func:`~plstm_geometric.graph.structure.check_stored_dag`."""
        check_stored_dag(self.edge_index, self.num_nodes, self.dag_edge_index, self.dag_edge_id)

    def plstm_structure(self, mode: str = "P", reverse: bool = False, check: bool = True) -> PLSTMStructure:
        r"""The :class:`~plstm_geometric.graph.PLSTMStructure` of a sweep from the stored
        fields, for a layer of ``mode`` (``"P"``, ``"D"`` or ``"unconstrained"``, which uses the P line
        graph). Works on a single graph and on a mini-batch; only the plan is built here.

        With ``check=True`` the stored DAG is first verified against ``edge_index``
        (:meth:`check_plstm_structure`), so that a transform applied after
        :class:`~plstm_geometric.transforms.PreparePLSTM` which reorders or drops edges raises a
        ``ValueError`` instead of silently giving edge features to the wrong edges. The structure is not
        rebuilt: its line graphs and node levels are what precomputing saves."""
        line_graph_mode = line_graph_mode_of(mode)
        key = line_graph_key(line_graph_mode, reverse)
        if not self.has_plstm_structure(line_graph_mode, reverse):
            raise ValueError(
                f"mode: the data has no '{key}'; prepare it with PreparePLSTM including mode "
                f"{line_graph_mode!r} and direction {DIRECTIONS[int(reverse)]!r}"
            )
        if check:
            self.check_plstm_structure()
        # Data prepared before levels were stored has none: they are then computed here.
        node_level = self[node_level_key(reverse)] if node_level_key(reverse) in self else None
        return plstm_structure(
            self.dag_edge_index,
            self.dag_edge_id,
            self.num_nodes,
            line_graph_mode,
            reverse,
            line_edge_index=self[key],
            node_level=node_level,
        )


# A pickled Data also holds PyG's attribute descriptors and its storage mapping (plain containers, no code):
# allowing them too is what lets ``torch.load(..., weights_only=True)`` rebuild a saved PLSTMData.
torch.serialization.add_safe_globals([PLSTMData, DataEdgeAttr, DataTensorAttr, GlobalStorage])
