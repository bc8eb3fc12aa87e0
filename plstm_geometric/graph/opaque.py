"""Opaque objects of torch.compile: a :class:`~plstm_geometric.graph.PLSTMPlan` goes into the compiled graph
as one reference, so that the op which sweeps it runs without a graph break.

A plan holds the level schedule of one batch: Python lists of level boundaries and per-bucket sizes
that change from batch to batch. Traced as ordinary Python values they would be baked into the graph
(one recompilation per batch); an opaque reference is passed through unchanged, with no guard on its
contents, to a custom op that reads it at run time. The mechanism (``torch._library.opaque_object``)
is recent; with a torch that lacks it, a plan is an ordinary class and the op runs as a graph break.
"""

try:
    from torch._library.opaque_object import register_opaque_type
    from torch._opaque_base import OpaqueBase

    OPAQUE_OBJECTS = True
except ImportError:  # torch without opaque objects: plans stay plain Python objects
    OpaqueBase = object
    OPAQUE_OBJECTS = False

__all__ = ["OPAQUE_OBJECTS", "OpaqueBase", "register_reference_type"]


def register_reference_type(cls) -> None:
    """Registers ``cls`` (a subclass of :class:`OpaqueBase`) as an opaque reference type, if supported."""
    if OPAQUE_OBJECTS:
        register_opaque_type(cls, typ="reference")
