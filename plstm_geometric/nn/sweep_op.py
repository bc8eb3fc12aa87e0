r"""The sweep of a compiled :class:`~plstm_geometric.nn.PLSTMConv` as one custom op, so that
``torch.compile`` traces the whole layer without a graph break.

The sweep cannot be traced: its schedule (levels, size buckets) is data of the batch, and it checks
index values on the host. Under ``torch.compile`` the layer calls ``plstm_geometric::plstm_conv_sweep``
instead, with the batch's :class:`~plstm_geometric.graph.PLSTMPlan` as an opaque reference (see
:mod:`plstm_geometric.graph.opaque`). Dynamo and AOTAutograd see one op with a known output shape; at
run time the op runs what an eager layer runs, checks included: that the structure belongs to
``edge_index`` (:func:`check_structure_of`) and every check of
:func:`~plstm_geometric.functional.plstm_dag`. Repeated checks on the same tensors are skipped as in
eager mode (see :mod:`plstm_geometric.checks`).

Gradients: when they will be needed (grad mode on, an input requiring grad: both fixed at trace time),
the forward op runs the eager sweep with autograd, as an eager layer does, and keeps its autograd graph
in a tape (:data:`TAPES`) under a token, a one-element tensor it returns next to the output. The
backward op receives the token, takes the tape and differentiates it: a compiled layer computes and keeps
what an eager layer does. The tape lives as long as the token, which the compiled graph keeps for its
backward pass: a forward pass whose graph is dropped without a backward pass drops its tape too. A
backward op that finds no tape (a second backward pass with ``retain_graph=True``) recomputes the
sweep. Second derivatives are not supported through the op (torch.compile does not support double
backward either).
"""

import itertools
import threading
import weakref
from contextlib import contextmanager

import torch
from torch import Tensor

from ..checks import VALIDATION_STAMPS, value_range
from ..functional import plstm_dag
from ..graph.opaque import OPAQUE_OBJECTS
from ..graph.plan import PLSTMPlan

__all__ = ["COMPILED_SWEEP", "check_structure_of", "plstm_conv_sweep"]

#: Whether this torch can run the sweep inside a compiled graph (opaque objects, and the dispatch guard
#: the backward op needs); without them a compiled layer runs its sweep as a graph break.
COMPILED_SWEEP = OPAQUE_OBJECTS and hasattr(torch._C, "_ForceDispatchKeyGuard")


def check_structure_of(
    edge_index: Tensor, num_nodes: int, dag_edge_index: Tensor, edge_id: Tensor, structure_num_nodes: int
) -> None:
    """A structure (its DAG edges ``dag_edge_index`` and their columns ``edge_id``) belongs to the graph
    ``edge_index`` of ``num_nodes`` nodes: every DAG edge is the column it names, in either direction.

    Equal sizes are not enough: a structure of another graph with the same sizes would silently give
    that graph's answer. The O(E) comparison runs once per pair of structure and ``edge_index`` (see
    :mod:`plstm_geometric.checks`): the layers of a model share them.
    """
    if structure_num_nodes != num_nodes:
        raise ValueError(f"structure: built for {structure_num_nodes} nodes, but x has {num_nodes}")
    if VALIDATION_STAMPS.passed("structure_of", edge_index, dag_edge_index, edge_id):
        return
    low, high = value_range(edge_id) if edge_id.numel() else (0, -1)
    if low < 0 or high >= edge_index.size(1):
        raise ValueError(f"structure: built for a graph with more edges than edge_index ({edge_index.size(1)})")
    dag_src, dag_dst = dag_edge_index
    src, dst = edge_index[:, edge_id]
    if not bool((((src == dag_src) & (dst == dag_dst)) | ((src == dag_dst) & (dst == dag_src))).all()):
        raise ValueError(
            "structure: expected one built for this edge_index, got one built for another graph "
            "with the same sizes (build it with conv.structure(edge_index, num_nodes))"
        )
    VALIDATION_STAMPS.record("structure_of", edge_index, dag_edge_index, edge_id)


@contextmanager
def autograd_in_kernel():
    """Autograd inside a custom op's kernel.

    The dispatcher runs a kernel below autograd: autograd's dispatch keys are excluded while it runs, so
    even under ``enable_grad`` nothing would be recorded. The backward op differentiates the eager sweep
    (with its hand-written backward functions), so it puts those keys back for its recomputation.
    """
    keys = torch._C.DispatchKey
    exclude = torch._C._dispatch_tls_local_exclude_set()
    for key in (keys.AutogradFunctionality, keys.ADInplaceOrView, keys.AutogradOther, keys.AutogradNestedTensor):
        exclude = exclude.remove(key)
    with torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), exclude), torch.enable_grad():
        yield


#: The autograd graphs of compiled sweeps awaiting their backward pass: token id -> (inputs, output).
TAPES: dict[int, tuple[list[Tensor], Tensor]] = {}
_tape_ids = itertools.count()
_tapes_lock = threading.Lock()


def keep_tape(inputs: list[Tensor], out: Tensor) -> Tensor:
    """Keeps the autograd graph from ``inputs`` to ``out`` and returns its token (``[1]`` long, on the CPU)."""
    tape_id = next(_tape_ids)
    with _tapes_lock:
        TAPES[tape_id] = (inputs, out)
    token = torch.tensor([tape_id])
    # The tape goes with the token: after the backward pass, or with a graph dropped before it.
    weakref.finalize(token, drop_tape, tape_id)
    return token


def drop_tape(tape_id: int):
    with _tapes_lock:
        return TAPES.pop(tape_id, None)


def unaliased(tensor: Tensor, inputs) -> Tensor:
    """``tensor``, copied if it shares memory with one of ``inputs`` (a custom op may not return an alias)."""
    pointer = tensor.untyped_storage().data_ptr()
    if tensor.numel() and any(pointer == t.untyped_storage().data_ptr() for t in inputs):
        return tensor.clone()
    return tensor


if COMPILED_SWEEP:

    @torch.library.custom_op("plstm_geometric::plstm_conv_sweep", mutates_args=())
    def plstm_conv_sweep(
        query: Tensor,
        key: Tensor,
        value: Tensor,
        source: Tensor,
        transition: Tensor,
        mark: Tensor,
        direct: Tensor,
        edge_index: Tensor,
        dag_edge_index: Tensor,
        edge_id: Tensor,
        line_edge_index: Tensor,
        plan: PLSTMPlan,
        backend: str,
        recompute_states: bool,
        keep: bool,
    ) -> tuple[Tensor, Tensor]:
        """The checked sweep of :class:`~plstm_geometric.nn.PLSTMConv`, ``[N, H, V]``, and the token of its
        autograd graph (``keep=True``; ``-1`` otherwise)."""
        check_structure_of(edge_index, query.size(0), dag_edge_index, edge_id, plan.num_nodes)
        inputs = [query, key, value, source, transition, mark, direct]
        options = dict(plan=plan, backend=backend, recompute_states=recompute_states)
        if not keep:
            return plstm_dag(*inputs, dag_edge_index, line_edge_index, **options).contiguous(), torch.tensor([-1])
        # The inputs are kept by the compiled graph for the backward op as well (see setup_context): their
        # buffers are not reused while the tape lives.
        inputs = [t.detach().requires_grad_() for t in inputs]
        with autograd_in_kernel():
            out = plstm_dag(*inputs, dag_edge_index, line_edge_index, **options)
        # A copy: the compiled graph may write into its buffers once done with it, the tape may not change.
        return out.detach().clone(memory_format=torch.contiguous_format), keep_tape(inputs, out)

    @plstm_conv_sweep.register_fake
    def _(query, key, value, *args):
        return query.new_empty(query.size(0), query.size(1), value.size(2)), torch.empty(1, dtype=torch.long)

    @torch.library.custom_op("plstm_geometric::plstm_conv_sweep_backward", mutates_args=())
    def plstm_conv_sweep_backward(
        grad: Tensor,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        source: Tensor,
        transition: Tensor,
        mark: Tensor,
        direct: Tensor,
        token: Tensor,
        dag_edge_index: Tensor,
        line_edge_index: Tensor,
        plan: PLSTMPlan,
        backend: str,
    ) -> list[Tensor]:
        """Gradients of :func:`plstm_conv_sweep` with respect to its seven float inputs, from the tape of
        ``token`` (or by recomputation when there is none)."""
        originals = (query, key, value, source, transition, mark, direct)
        tape = drop_tape(int(token))
        with autograd_in_kernel():
            if tape is None:
                inputs = [t.detach().requires_grad_() for t in originals]
                out = plstm_dag(*inputs, dag_edge_index, line_edge_index, plan=plan, backend=backend)
            else:
                inputs, out = tape
            grads = torch.autograd.grad(out, inputs, grad, allow_unused=True)
        return [
            t.new_zeros(t.shape) if g is None else unaliased(g.contiguous(), (grad, *originals))
            for t, g in zip(inputs, grads)
        ]

    @plstm_conv_sweep_backward.register_fake
    def _(grad, query, key, value, source, transition, mark, direct, *args):
        return [t.new_empty(t.shape) for t in (query, key, value, source, transition, mark, direct)]

    def setup_context(ctx, inputs, output):
        floats, (_, dag_edge_index, _, line_edge_index, plan, backend, _, _) = inputs[:7], inputs[7:]
        ctx.save_for_backward(*floats, output[1], dag_edge_index, line_edge_index)
        ctx.plan, ctx.backend = plan, backend

    def backward(ctx, grad, token_grad):
        saved = ctx.saved_tensors
        grads = plstm_conv_sweep_backward(grad, *saved, ctx.plan, ctx.backend)
        return (*grads, None, None, None, None, None, None, None, None)

    plstm_conv_sweep.register_autograd(backward, setup_context=setup_context)
else:
    plstm_conv_sweep = None
