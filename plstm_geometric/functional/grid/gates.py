"""The gates of the grid op, bundled in one named structure so that no caller or backend depends on an order."""

from typing import NamedTuple

from torch import Tensor

__all__ = ["GridGates", "GATE_NAMES"]


class GridGates(NamedTuple):
    r"""The nine per-node gates of :func:`~plstm_geometric.functional.plstm_grid`, each ``[B, X, Y, H]``
    (``[O, B, X, Y, H]`` for :func:`~plstm_geometric.functional.plstm_grid_orientations`).

    Backends read the fields by name; the field order is only that of the constructor.
    """

    #: :math:`S^r`: source of the r-edge leaving the node.
    source_r: Tensor
    #: :math:`S^d`: source of the d-edge leaving the node.
    source_d: Tensor
    #: :math:`T^{rr}`: incoming r-edge into the outgoing r-edge.
    transition_rr: Tensor
    #: :math:`T^{dd}`: incoming d-edge into the outgoing d-edge.
    transition_dd: Tensor
    #: :math:`T^{rd}`: incoming r-edge into the outgoing d-edge.
    transition_rd: Tensor
    #: :math:`T^{dr}`: incoming d-edge into the outgoing r-edge.
    transition_dr: Tensor
    #: :math:`M^r`: mark of the r-edge entering the node.
    mark_r: Tensor
    #: :math:`M^d`: mark of the d-edge entering the node.
    mark_d: Tensor
    #: :math:`D`: the node's direct term.
    direct: Tensor

    def map(self, function) -> "GridGates":
        """The gates with ``function`` applied to each."""
        return GridGates(*(function(gate) for gate in self))


#: The field names of :class:`GridGates`.
GATE_NAMES = GridGates._fields
