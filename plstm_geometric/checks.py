"""Argument checks of the public boundary, shared by every op, structure function and layer.

One rule everywhere: a :class:`TypeError` for a wrong type or dtype, a :class:`ValueError` for a wrong
shape, value or device, and the message ``"name: expected ..., got ..."`` with the argument's name.

Checks on the *values* of index tensors (ranges, levels, a structure against its ``edge_index``) cost an
``O(E)`` pass and a host sync each. A model reuses the same tensors many times: every layer of a step sees
the same batch and structures. Such a check therefore runs once per exact set of tensors: when it passes,
:data:`VALIDATION_STAMPS` records the tensors (by identity and autograd's version counter), and the same
check on the same, unmodified tensors is skipped. Any other tensor, or the same one modified in place,
is checked in full.
"""

import threading
import weakref

import torch
from torch import Tensor

__all__ = [
    "check_index",
    "check_range",
    "check_edge_index",
    "check_tensor",
    "check_gate",
    "check_bool",
    "check_positive_int",
    "check_node_level",
    "check_edges_of",
    "unused_argument",
    "ValidationStamps",
    "VALIDATION_STAMPS",
    "VALIDATE_ONCE",
]

#: Skip a value check that already passed on the same, unmodified tensors (see :class:`ValidationStamps`).
#: Set it to ``False`` (``plstm_geometric.checks.VALIDATE_ONCE = False``) to check on every call, e.g. when
#: index tensors are modified in place through ``.data`` or a NumPy view, which the version counter
#: does not see.
VALIDATE_ONCE = True


def tensor_state(tensor: Tensor):
    """What identifies the contents of ``tensor`` for a stamp, or ``None`` if it cannot be stamped.

    Autograd's version counter grows with every in-place change, also through views, so an unchanged
    version (with the same storage pointer, shape and strides, which ``tensor.data = ...`` would change)
    means unchanged values. Tensor subclasses (such as the fake tensors of torch.compile), inference
    tensors (no version counter) and tensors without storage are never stamped.
    """
    if type(tensor) is not Tensor:
        return None
    try:
        return tensor._version, tensor.data_ptr(), tensor.shape, tensor.stride()
    except RuntimeError:  # an inference tensor's version, or the data pointer of a tensor without storage
        return None


class ValidationStamps:
    r"""The value checks that passed, each on the exact tensors it was given.

    A stamp is keyed by the check's name, its plain arguments (sizes, flags) and the identities of its
    tensors, and holds a weak reference and the :func:`tensor_state` of each tensor: it matches only while
    every tensor is alive, is the very same object, and was not modified in place (its version counter,
    data pointer, shape and strides are unchanged). Weak references keep no tensor alive, and a new
    tensor that reuses a dead one's ``id`` does not match. At most ``capacity`` stamps are kept, the
    oldest dropped first.

    Modifications that bypass the version counter (writes through ``tensor.data`` or a NumPy view of the
    tensor) are not seen; set :data:`VALIDATE_ONCE` to ``False`` to check every call instead.
    """

    def __init__(self, capacity: int = 1024):
        self.capacity = capacity
        self._stamps: dict = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(name: str, arguments: tuple):
        return (name, *((id(a), "tensor") if isinstance(a, Tensor) else (a, "value") for a in arguments))

    def passed(self, name: str, *arguments) -> bool:
        """Whether check ``name`` passed on these arguments (tensors and plain values), unmodified since."""
        if not VALIDATE_ONCE:
            return False
        stamp = self._stamps.get(self._key(name, arguments))  # a lookup is atomic, only writes lock
        if stamp is None:
            return False
        tensors = [a for a in arguments if isinstance(a, Tensor)]
        return all(ref() is t and state == tensor_state(t) for t, (ref, state) in zip(tensors, stamp))

    def record(self, name: str, *arguments) -> None:
        """Stamps check ``name`` as passed on these arguments (nothing is recorded for unstampable tensors)."""
        if not VALIDATE_ONCE:
            return
        stamp = []
        for argument in arguments:
            if isinstance(argument, Tensor):
                state = tensor_state(argument)
                if state is None:
                    return
                stamp.append((weakref.ref(argument), state))
        key = self._key(name, arguments)
        with self._lock:
            self._stamps.pop(key, None)
            while len(self._stamps) >= self.capacity:
                del self._stamps[next(iter(self._stamps))]
            self._stamps[key] = tuple(stamp)

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()

    def __len__(self) -> int:
        return len(self._stamps)


#: The stamps of every value check of the package.
VALIDATION_STAMPS = ValidationStamps()


def check_index(name: str, index: Tensor, rows: int = 2) -> None:
    """A ``torch.long`` index tensor of shape ``[rows, *]``."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(index).__name__}")
    if index.dtype != torch.long:
        raise TypeError(f"{name}: expected dtype torch.long, got {index.dtype}")
    if index.dim() != 2 or index.size(0) != rows:
        raise ValueError(f"{name}: expected shape [{rows}, *], got {tuple(index.shape)}")


def check_range(name: str, index: Tensor, upper: int, what: str) -> None:
    """Every entry of ``index`` lies in ``[0, upper)``; ``what`` says what it indexes (e.g. "node")."""
    if index.numel() == 0 or VALIDATION_STAMPS.passed("range", index, upper):
        return
    low, high = value_range(index)
    if low < 0 or high >= upper:
        raise ValueError(f"{name}: expected {what} indices in [0, {upper}), got values in [{low}, {high}]")
    VALIDATION_STAMPS.record("range", index, upper)


def value_range(index: Tensor) -> tuple[int, int]:
    """``(min, max)`` of a non-empty tensor with one host sync instead of two."""
    low, high = torch.aminmax(index)
    return tuple(torch.stack([low, high]).tolist())


def check_edge_index(edge_index: Tensor, num_nodes: int, name: str = "edge_index") -> None:
    """A ``[2, E]`` long tensor of node indices below ``num_nodes``."""
    check_index(name, edge_index)
    if not isinstance(num_nodes, int) or isinstance(num_nodes, bool):
        raise TypeError(f"num_nodes: expected a non-negative int, got {type(num_nodes).__name__} {num_nodes!r}")
    if num_nodes < 0:
        raise ValueError(f"num_nodes: expected a non-negative int, got {num_nodes!r}")
    check_range(name, edge_index, num_nodes, "node")


def check_tensor(name: str, tensor: Tensor, reference: Tensor | None = None, reference_name: str = "query") -> None:
    """A floating-point tensor; with ``reference``, of its dtype and on its device."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {tensor.dtype}")
    if reference is not None:
        if tensor.dtype != reference.dtype:
            raise TypeError(
                f"{name}: expected dtype {reference.dtype} (the dtype of {reference_name}), got {tensor.dtype}"
            )
        if tensor.device != reference.device:
            raise ValueError(
                f"{name}: expected device {reference.device} (the device of {reference_name}), got {tensor.device}"
            )


def check_gate(name: str, gate: Tensor, rows: int, heads: int, query: Tensor) -> None:
    """A ``[rows, heads]`` gate in the dtype and on the device of ``query``."""
    check_tensor(name, gate, query)
    if gate.shape != (rows, heads):
        raise ValueError(f"{name}: expected shape [{rows}, {heads}], got {tuple(gate.shape)}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")


def check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def unused_argument(name: str, value, backend: str, used_by: str) -> None:
    """Refuses an argument that the chosen backend would ignore, instead of dropping it silently."""
    raise ValueError(f"{name}: expected the default with backend={backend!r} (only {used_by} uses it), got {value!r}")


def check_node_level(node_level: Tensor, edge_index: Tensor, num_nodes: int) -> None:
    """``node_level`` ``[N]`` holds the longest-path levels of the DAG ``edge_index``, in O(N + E).

    Schedules rely on every edge going up (``level[dst] > level[src]``) and on the levels being dense
    (sources at 0, every other node one above its highest predecessor). Both hold exactly when
    ``level[n] = max(level[pred] + 1)`` (0 without predecessors), which one scatter-max verifies.
    """
    if not isinstance(node_level, Tensor):
        raise TypeError(f"node_level: expected a torch.Tensor, got {type(node_level).__name__}")
    if node_level.dtype != torch.long:
        raise TypeError(f"node_level: expected dtype torch.long, got {node_level.dtype}")
    if node_level.shape != (num_nodes,):
        raise ValueError(f"node_level: expected shape [{num_nodes}], got {tuple(node_level.shape)}")
    if node_level.device != edge_index.device:
        raise ValueError(
            f"node_level: expected device {edge_index.device} (the device of edge_index), got {node_level.device}"
        )
    if VALIDATION_STAMPS.passed("node_level", node_level, edge_index):
        return
    src, dst = edge_index
    expected = torch.zeros_like(node_level).scatter_reduce(0, dst, node_level[src] + 1, "amax")
    wrong = expected != node_level
    if bool(wrong.any()):
        node = int(wrong.nonzero()[0])
        raise ValueError(
            f"node_level: expected the longest-path levels of edge_index (from node_levels), got "
            f"level {int(node_level[node])} at node {node} where the edges into it give "
            f"{int(expected[node])}"
        )
    VALIDATION_STAMPS.record("node_level", node_level, edge_index)


def check_edges_of(name: str, edge_index: Tensor, built_from: Tensor, what: str) -> None:
    """``edge_index`` is the index tensor the ``name`` argument was built from (an O(E) comparison)."""
    if edge_index is built_from or VALIDATION_STAMPS.passed("same_edges", edge_index, built_from):
        return
    if edge_index.shape != built_from.shape or not torch.equal(edge_index, built_from):
        raise ValueError(
            f"{name}: expected one built for this {what}, got one built for another graph with the "
            f"same sizes (build it from this graph, or omit it)"
        )
    VALIDATION_STAMPS.record("same_edges", edge_index, built_from)
