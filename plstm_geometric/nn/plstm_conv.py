"""PLSTMConv: the pLSTM layer of graphs. It computes queries, keys, values and the Source, Transition, Mark
and Direct gates from node and edge features, applies the P- or D-mode constraints, and runs
:func:`~plstm_geometric.functional.plstm_dag` over the oriented graph."""

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parameter import UninitializedParameter, is_lazy
from torch_geometric.nn import Linear, MessagePassing
from torch_geometric.typing import SparseTensor

from ..checks import check_bool
from ..functional import plstm_dag
from ..functional.dag import BACKENDS
from ..graph.size import check_hub_sweep_memory
from ..graph.structure import (
    LAYER_MODES,
    ORIENTATIONS,
    PLSTMStructure,
    line_graph_mode_of,
    orient_edges,
    plstm_structure,
)
from .norm import MultiHeadRMSNorm
from .sweep_op import COMPILED_SWEEP, check_structure_of, plstm_conv_sweep

NORMALIZE_OVER = ("outgoing", "incoming")

# Gate initialisation as in the paper: nearly closed source, mark and direct gates, so that at the start
# every node reads a small, input-independent mixture of its past; the per-head RMS norm then rescales it.
SOURCE_BIAS = -4.0
MARK_BIAS = -4.0
DIRECT_BIAS = -6.0
# A single-successor transition starts open, evenly spaced over the heads between these values: the most
# local head keeps about 1 / (1 - 0.9) = 10 edges, the longest about 1,000, so at least one head carries a
# signal along a whole deep DAG from the first step. Measured on the long-range copy task (depth 100, 32
# hidden, 2 blocks): solved on validation within 100 steps, against about 300 with (0.6, 0.95).
TRANSITION_START = (0.9, 0.999)
# Gate weights: pre-activations spread by about this much around the bias for unit-variance inputs.
GATE_WEIGHT_SCALE = 0.1


def constrain_transition(
    transition: Tensor,
    line_edge_index: Tensor,
    num_edges: int,
    mode: str = "P",
    alpha: float = 1.0,
    normalize_over: str = "outgoing",
) -> Tensor:
    r"""Maps transition pre-activations :math:`\tilde{T}` ``[L, H]`` to the transitions of a pLSTM mode.

    * ``"P"``: :math:`T_{e' \to e} = \tilde{T}_{e' \to e} / (\alpha + \sum_{g} |\tilde{T}_{g}|)`, the sum
      running over the line edges that share :math:`e'` (``normalize_over="outgoing"``: everything edge
      :math:`e'` passes on, so :math:`\sum_e |T_{e' \to e}| < 1`) or share :math:`e`
      (``"incoming"``: everything edge :math:`e` receives).
    * ``"D"``: :math:`T = \tanh(\tilde{T})`; meant for a multitree line graph.
    * ``"unconstrained"``: :math:`T = \tilde{T}`.
    """
    if mode == "unconstrained":
        return transition
    if mode == "D":
        return torch.tanh(transition)
    group = line_edge_index[0] if normalize_over == "outgoing" else line_edge_index[1]
    magnitude = transition.new_zeros(num_edges, transition.size(1)).index_add_(0, group, transition.abs())
    return transition / (alpha + magnitude[group])


def check_transition_start(transition_start, mode: str) -> tuple[float, float]:
    """``transition_start`` as a pair ``(low, high)`` of starting transitions, checked for ``mode``."""
    if (
        not isinstance(transition_start, (tuple, list))
        or len(transition_start) != 2
        or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in transition_start)
    ):
        raise TypeError(f"transition_start: expected a pair of floats (low, high), got {transition_start!r}")
    low, high = (float(t) for t in transition_start)
    upper = math.inf if mode == "unconstrained" else 1.0
    if not (0.0 <= low <= high < upper):
        raise ValueError(
            f"transition_start: expected 0 <= low <= high < {upper} for mode={mode!r} (a transition of 1 "
            f"needs an infinite pre-activation), got {transition_start!r}"
        )
    return low, high


def at_least_float32(tensor: Tensor) -> Tensor:
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


class PLSTMConv(MessagePassing):
    r"""The pLSTM graph layer from `"pLSTM: parallelizable Linear Source Transition Mark networks"
    <https://arxiv.org/abs/2506.11997>`_ (Pöppel et al., 2025).

    The graph is swept as a DAG. Cell states :math:`C_e \in \mathbb{R}^{K \times V}` live on its edges
    and flow along its line graph :math:`\mathcal{L}` (pairs of edges :math:`e' \to e` meeting at a node
    :math:`n = \mathrm{dst}(e') = \mathrm{src}(e)`); for every head:

    .. math::
        C_e &= \sum_{(e', e) \in \mathcal{L}} T_{e' \to e}\, C_{e'}
               + S_e\, \mathbf{k}_{\mathrm{src}(e)} \mathbf{v}_{\mathrm{src}(e)}^{\top} \\
        \mathbf{o}_n &= \sum_{e:\, \mathrm{dst}(e) = n} M_e\, C_e^{\top} \mathbf{q}_n
               + D_n\, (\mathbf{q}_n^{\top} \mathbf{k}_n)\, \mathbf{v}_n \\
        \mathbf{x}'_n &= \mathbf{W}_o\, \mathrm{RMSNorm}_{\mathrm{head}}(\mathbf{o}_n)

    with :math:`\mathbf{q}_n = K^{-1/2} \mathbf{W}_q \mathbf{x}_n`, :math:`\mathbf{k}_n = \mathbf{W}_k
    \mathbf{x}_n`, :math:`\mathbf{v}_n = \mathbf{W}_v \mathbf{x}_n` and the gates

    .. math::
        S_e = \sigma(\mathbf{w}_S^{\top} [\mathbf{x}_{\mathrm{src}(e)}; \mathbf{f}_e] + b_S), \quad
        M_e = \sigma(\mathbf{w}_M^{\top} [\mathbf{x}_{\mathrm{dst}(e)}; \mathbf{f}_e] + b_M), \quad
        D_n = \sigma(\mathbf{w}_D^{\top} \mathbf{x}_n + b_D), \quad
        \tilde{T}_{e' \to e} = \mathbf{w}_T^{\top} [\mathbf{f}_{e'}; \mathbf{f}_e; \mathbf{x}_n] + b_T.

    The edge features :math:`\mathbf{f}_e` are ``edge_attr`` when ``edge_dim`` is set, otherwise
    :math:`[\mathbf{x}_{\mathrm{src}(e)}; \mathbf{x}_{\mathrm{dst}(e)}]`. The mode fixes the line graph
    and how :math:`\tilde{T}` becomes :math:`T` (:func:`constrain_transition`):

    * ``"P"`` (propagation), full line graph, :math:`T = \tilde{T} / (\alpha + \sum |\tilde{T}|)` with
      the sum over all transitions leaving the same edge :math:`e'`. Hence, for every node and incoming
      edge, :math:`\sum_e |T_{e' \to e}| < 1` strictly (for :math:`\alpha > 0`): a state is split among
      the outgoing edges, never amplified, and every cell state is bounded by the sum of the source
      contributions upstream. ``normalize_over="incoming"`` sums over the transitions entering :math:`e`
      instead (the authors' graph code): a state is then at most the largest incoming one plus its own
      source term, so norms grow at most linearly along a path.
    * ``"D"`` (diffusion), multitree line graph (:func:`~plstm_geometric.graph.line_graph` with
      ``mode="D"``), :math:`T = \tanh(\tilde{T})`: at most one path joins two edges, so there is no
      blow-up with the number of paths.
    * ``"unconstrained"``: full line graph, :math:`T = \tilde{T}`. Not stable (the number of paths
      grows exponentially, e.g. on grids); it exists to demonstrate why P and D are needed.

    **Orientation.** With ``orientation="auto"`` an undirected graph (every edge's reverse is present,
    as in PyG's molecules) is oriented from lower to higher node index, or by a per-node ``order`` passed
    to :meth:`forward` (see :func:`~plstm_geometric.graph.dagify`); any other graph is used as given and
    must be a DAG (a cycle raises :class:`ValueError`). The decision is taken per graph (weakly connected
    component) of a mini-batch. ``orientation="undirected"`` or ``"dag"`` forces either reading for the
    whole input (``"undirected"`` also for an undirected graph that stores some edges in one direction
    only, such as a sampled subgraph). ``reverse=True`` sweeps the DAG against its edges. Every DAG edge
    :math:`u \to v` takes the attribute stored for the direction :math:`u \to v` (the other direction's
    only when that one is absent), so the output does not depend on the order of the columns of
    ``edge_index``; a reversed sweep runs :math:`v \to u` with that same attribute of :math:`u \to v`.

    **Receptive field.** A sweep only carries information along the DAG: with the default orientation
    node :math:`n` reads nodes of lower index only, and a stack of layers with the same direction never
    sees the rest (on a path, node 0 depends on itself alone however many layers are stacked). Alternate
    ``reverse=False`` and ``reverse=True`` between layers, as
    :class:`~plstm_geometric.models.PLSTMGraphModel` does: after a forward and a reverse layer a node has read
    the ancestors of its descendants (on a path: every node depends on every other after one forward and
    one reverse layer).

    **Structure.** Orienting the graph and building its line graph and schedule is integer work that does
    not depend on the parameters. It is done in every call unless a :class:`PLSTMStructure` is passed:
    build one with :meth:`structure` to reuse it on a fixed graph, or take it from data prepared by
    :class:`~plstm_geometric.transforms.PreparePLSTM` (``data.plstm_structure(mode, reverse)``). Both
    paths give the same result.

    **Initialisation.** Query, key, value and output weights are Glorot-uniform with zero biases. Gate
    weights are small (normal, standard deviation :math:`0.1 / \sqrt{\text{fan-in}}`, so gates start
    close to their biases while gradients reach their inputs from the first step) and gate biases start
    at :math:`b_S = b_M = -4` and :math:`b_D = -6` (nearly closed, as in the paper). :math:`b_T` is set
    so that a transition with a single successor starts at :math:`T_h`, evenly spaced over the heads in
    :math:`[0.9, 0.999]` (``transition_start``; memory ranges of about 10 to 1,000 edges), so signals
    propagate from the start and at least one head reaches across a deep DAG
    (P: :math:`b_T = \alpha T_h / (1 - T_h)`; D: :math:`\operatorname{artanh} T_h`; unconstrained:
    :math:`T_h`).

    Args:
        in_channels (int): size :math:`C` of each input sample, or ``-1`` to infer it from the first
            input (lazy initialisation).
        out_channels (int): size of each output sample.
        heads (int): number of heads :math:`H`. (default: :obj:`4`)
        mode (str): ``"P"``, ``"D"`` or ``"unconstrained"``. (default: :obj:`"P"`)
        edge_dim (int, optional): edge feature size; when set, ``edge_attr`` is required.
            (default: :obj:`None`)
        qk_channels (int, optional): query/key size :math:`K` per head. (default: ``v_channels``)
        v_channels (int, optional): value size :math:`V` per head. (default: ``out_channels // heads``)
        orientation (str): ``"auto"``, ``"dag"`` or ``"undirected"``. (default: :obj:`"auto"`)
        reverse (bool): sweep against the DAG's edges. (default: :obj:`False`)
        alpha (float): P-mode normalisation offset :math:`\alpha > 0`. (default: :obj:`1.0`)
        normalize_over (str): P-mode normalisation group, ``"outgoing"`` (the paper) or ``"incoming"``.
            (default: :obj:`"outgoing"`)
        bias (bool): learn additive biases in the query/key/value and output projections.
            (default: :obj:`True`)
        backend (str): backend of :func:`~plstm_geometric.functional.plstm_dag`: ``"auto"``,
            ``"levels"``, ``"parallel"``, ``"chains"`` or ``"fused"``. (default: :obj:`"auto"`)
        recompute_states (bool): recompute the cell states in the backward pass instead of keeping
            them (less memory, one more sweep). (default: :obj:`False`)
        transition_start (tuple of float): the range ``(low, high)`` over which the heads' transitions
            start, for an edge with one successor; ``high`` sets how far the longest-memory head reaches
            at initialisation (about :math:`1 / (1 - \text{high})` edges). (default: :obj:`(0.9, 0.999)`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)`, edge indices :math:`(2, |\mathcal{E}|)`,
          edge features :math:`(|\mathcal{E}|, \text{edge\_dim})` *(optional)*,
          order :math:`(|\mathcal{V}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, \text{out\_channels})`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 4,
        mode: str = "P",
        edge_dim: Optional[int] = None,
        qk_channels: Optional[int] = None,
        v_channels: Optional[int] = None,
        orientation: str = "auto",
        reverse: bool = False,
        alpha: float = 1.0,
        normalize_over: str = "outgoing",
        bias: bool = True,
        backend: str = "auto",
        recompute_states: bool = False,
        transition_start: tuple[float, float] = TRANSITION_START,
    ):
        # A MessagePassing subclass so that PyG's Explainer (edge masks) and to_hetero treat it as a graph
        # layer; the sweep itself does not use propagate().
        super().__init__(aggr=None)
        if mode not in LAYER_MODES:
            raise ValueError(f"mode: expected one of {LAYER_MODES}, got {mode!r}")
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation: expected one of {ORIENTATIONS}, got {orientation!r}")
        if normalize_over not in NORMALIZE_OVER:
            raise ValueError(f"normalize_over: expected one of {NORMALIZE_OVER}, got {normalize_over!r}")
        if not alpha > 0:
            raise ValueError(f"alpha: expected a positive number (it keeps the P-mode bound strict), got {alpha}")
        for name, value in (("heads", heads), ("edge_dim", 1 if edge_dim is None else edge_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"{name}: expected a positive int{' or None' if name == 'edge_dim' else ''}, got {value!r}"
                )
        if v_channels is None:
            if out_channels % heads != 0:
                raise ValueError(
                    f"v_channels: out_channels={out_channels} is not divisible by heads={heads}; "
                    "pass v_channels explicitly"
                )
            v_channels = out_channels // heads
        if qk_channels is None:
            qk_channels = v_channels
        if not isinstance(in_channels, int) or (in_channels < 1 and in_channels != -1):
            raise ValueError(f"in_channels: expected a positive int or -1 (lazy), got {in_channels!r}")
        for name, value in (
            ("out_channels", out_channels),
            ("heads", heads),
            ("qk_channels", qk_channels),
            ("v_channels", v_channels),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        check_bool("recompute_states", recompute_states)
        transition_start = check_transition_start(transition_start, mode)

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.mode = mode
        self.edge_dim = edge_dim
        self.qk_channels = qk_channels
        self.v_channels = v_channels
        self.orientation = orientation
        self.reverse = reverse
        self.alpha = alpha
        self.normalize_over = normalize_over
        self.backend = backend
        self.recompute_states = recompute_states
        self.transition_start = transition_start

        self.lin_query = Linear(in_channels, heads * qk_channels, bias=bias, weight_initializer="glorot")
        self.lin_key = Linear(in_channels, heads * qk_channels, bias=bias, weight_initializer="glorot")
        self.lin_value = Linear(in_channels, heads * v_channels, bias=bias, weight_initializer="glorot")
        # Node terms of the four gates, per head: source (read at src), mark (at dst), transition (at
        # the meeting node), direct. Each gate is linear in a concatenation, i.e. a sum of per-part terms.
        self.lin_gate = Linear(in_channels, 4 * heads, bias=True)
        # Edge-feature terms: source, mark, transition from f_{e'} (incoming), transition from f_e (outgoing).
        edge_in = edge_dim if edge_dim is not None else (2 * in_channels if in_channels > 0 else -1)
        self.lin_edge_gate = Linear(edge_in, 4 * heads, bias=False)
        self.norm = MultiHeadRMSNorm(heads, v_channels)
        self.lin_out = Linear(heads * v_channels, out_channels, bias=bias, weight_initializer="glorot")
        self.reset_parameters()

    def reset_parameters(self):
        for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_out):
            lin.reset_parameters()
        self.reset_gate_weights()
        self.norm.reset_parameters()

    def reset_gate_weights(self):
        for lin in (self.lin_gate, self.lin_edge_gate):
            # Small rather than zero (as in the authors' code): gates start close to their biases, yet
            # gradients reach the inputs (and e.g. an edge encoder in front) from the first step.
            if not is_lazy(lin.weight):  # a lazy weight is initialised on the first call (materialize)
                torch.nn.init.normal_(lin.weight, std=GATE_WEIGHT_SCALE / lin.in_channels**0.5)
        start = torch.linspace(*self.transition_start, self.heads, dtype=torch.float64)
        if self.mode == "P":
            transition_bias = self.alpha * start / (1 - start)
        elif self.mode == "D":
            transition_bias = torch.atanh(start)
        else:
            transition_bias = start
        with torch.no_grad():
            bias = self.lin_gate.bias.view(4, self.heads)
            bias[0].fill_(SOURCE_BIAS)
            bias[1].fill_(MARK_BIAS)
            bias[2].copy_(transition_bias)
            bias[3].fill_(DIRECT_BIAS)

    @property
    def line_graph_mode(self) -> str:
        return line_graph_mode_of(self.mode)

    def structure(self, edge_index: Tensor, num_nodes: int, order: Optional[Tensor] = None) -> PLSTMStructure:
        r"""The :class:`PLSTMStructure` this layer sweeps for ``edge_index``; pass it to :meth:`forward` to
        reuse it (it depends only on the graph, ``order``, ``orientation``, ``reverse`` and the mode's line
        graph, so layers of the same line-graph mode and direction can share it)."""
        dag_edge_index, edge_id = orient_edges(edge_index, num_nodes, self.orientation, order)
        if self.line_graph_mode == "P":
            # every line edge through a node lies in one level of the sweep: a hub that could not be swept
            # is refused from the degrees, before minutes of building its line graph
            check_hub_sweep_memory(
                dag_edge_index, num_nodes, self.heads, self.qk_channels, self.v_channels, dag_edge_index.device
            )
        return plstm_structure(dag_edge_index, edge_id, num_nodes, self.line_graph_mode, self.reverse)

    def forward(
        self,
        x: Union[Tensor, tuple[Tensor, Tensor]],
        edge_index: Tensor,
        edge_attr: Optional[Tensor] = None,
        order: Optional[Tensor] = None,
        structure: Optional[PLSTMStructure] = None,
        edge_weight: Optional[Tensor] = None,
    ) -> Tensor:
        r"""Runs the layer.

        Args:
            x (Tensor or (Tensor, Tensor)): node features ``[N, in_channels]``, or a pair ``(x_src,
                x_dst)`` of a bipartite graph (both with ``in_channels`` features; the output is ``x_dst``'s).
            edge_index (LongTensor or sparse Tensor): ``[2, E]`` edges (undirected with both directions,
                or a DAG), or a sparse ``[N, N]`` adjacency ``adj_t`` in PyG's transposed convention
                (``adj_t[j, i]`` set for an edge ``i -> j``; torch.sparse COO or CSR, or a ``SparseTensor``),
                whose edges are taken in the order of its stored entries.
            edge_attr (Tensor, optional): ``[E, edge_dim]``, required iff ``edge_dim`` is set.
            order (Tensor, optional): ``[N]`` node ranks orienting an undirected graph.
            structure (PLSTMStructure, optional): precomputed structure of ``edge_index`` (see
                :meth:`structure`); ``order`` must then be omitted.
            edge_weight (Tensor, optional): ``[E]`` weights in ``[0, 1]`` scaling the cell state each edge
                carries (its source term and the transitions into it): 0 removes everything that flows
                through the edge. PyG's :class:`~torch_geometric.explain.Explainer` edge masks act the
                same way.
        """
        if torch.jit.is_tracing():
            raise RuntimeError(JIT_UNSUPPORTED)
        if isinstance(x, (tuple, list)):
            return self._forward_bipartite(x, edge_index, edge_attr, order, structure, edge_weight)
        edge_index = as_edge_index(
            edge_index,
            x.size(0) if isinstance(x, Tensor) and x.dim() == 2 else None,
            keep_order=edge_attr is not None or edge_weight is not None,
        )
        self._materialize(x)
        in_channels = self.lin_gate.in_channels
        if not isinstance(x, Tensor) or x.dim() != 2 or x.size(1) != in_channels:
            raise ValueError(
                f"x: expected a tensor of shape [N, {in_channels}], "
                f"got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
        if x.dtype != self.lin_gate.bias.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"x: expected dtype {self.lin_gate.bias.dtype} (the dtype of the layer), got {x.dtype}")
        num_nodes = x.size(0)
        if self.edge_dim is None and edge_attr is not None:
            raise ValueError("edge_attr: given, but the layer was built with edge_dim=None")
        if self.edge_dim is not None:
            if edge_attr is None:
                raise ValueError(f"edge_attr: required, the layer was built with edge_dim={self.edge_dim}")
            if not isinstance(edge_attr, Tensor):
                raise TypeError(f"edge_attr: expected a torch.Tensor, got {type(edge_attr).__name__}")
            if not edge_attr.is_floating_point():
                raise TypeError(
                    f"edge_attr: expected a floating-point tensor, got {edge_attr.dtype} "
                    "(embed categorical edge features first, e.g. with OGB's BondEncoder)"
                )
            if edge_attr.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type):
                raise TypeError(
                    f"edge_attr: expected dtype {x.dtype} (the dtype of x and the layer), got {edge_attr.dtype}"
                )
            if edge_attr.dim() != 2 or edge_attr.shape != (edge_index.size(1), self.edge_dim):
                raise ValueError(
                    f"edge_attr: expected shape [{edge_index.size(1)}, {self.edge_dim}], got {tuple(edge_attr.shape)}"
                )
        compiled_sweep = COMPILED_SWEEP and torch.compiler.is_compiling()
        if structure is None:
            structure = self._structure_for(edge_index, num_nodes, order)
        elif compiled_sweep:
            # Only checks of Python values here: the sweep op checks the tensors at run time (sweep_op).
            self._check_structure_arguments(structure, order)
        else:
            self._check_structure(structure, num_nodes, order, edge_index)

        dag_edge_index, line_edge_index = structure.edge_index, structure.line_edge_index
        src, dst = dag_edge_index
        incoming_edge, outgoing_edge = line_edge_index
        meeting_node = dst[incoming_edge]
        heads, qk_channels, v_channels = self.heads, self.qk_channels, self.v_channels

        query, key, value, node_gate = self._node_projections(x)
        query = query.view(num_nodes, heads, qk_channels)
        key = key.view(num_nodes, heads, qk_channels)
        value = value.view(num_nodes, heads, v_channels)

        # Gate arithmetic (sigmoids, the P-mode sums of magnitudes) runs in at least float32 under bf16
        # autocast; the gates are handed to the op in the dtype of the query.
        node_gate = at_least_float32(node_gate).view(num_nodes, 4, heads)
        if self.edge_dim is not None:
            edge_gate = self.lin_edge_gate(edge_attr)[structure.edge_id]
        else:
            # f_e = [x_src; x_dst] is never materialised ([E, 2C]): its linear map is the sum of two node
            # maps ([N, 4H] each) gathered at the endpoints.
            weight_src, weight_dst = self.lin_edge_gate.weight.split(in_channels, dim=1)
            edge_gate = F.linear(x, weight_src)[src] + F.linear(x, weight_dst)[dst]
        edge_gate = at_least_float32(edge_gate).view(-1, 4, heads)

        # index_select rather than advanced indexing: its backward is an index_add, not the slower
        # accumulating index_put
        source = torch.sigmoid(node_gate[:, 0].index_select(0, src) + edge_gate[:, 0])
        mark = torch.sigmoid(node_gate[:, 1].index_select(0, dst) + edge_gate[:, 1])
        transition = (
            node_gate[:, 2].index_select(0, meeting_node)
            + edge_gate[:, 2].index_select(0, incoming_edge)
            + edge_gate[:, 3].index_select(0, outgoing_edge)
        )
        transition = constrain_transition(
            transition, line_edge_index, dag_edge_index.size(1), self.mode, self.alpha, self.normalize_over
        )
        direct = torch.sigmoid(node_gate[:, 3])
        weight = self._edge_weight(edge_weight, edge_index.size(1))
        if weight is not None:
            # Scaling what enters edge e (its source term and every transition into it) scales its state.
            weight = weight[structure.edge_id].to(source.dtype).unsqueeze(-1)
            source = source * weight
            transition = transition * weight[outgoing_edge]

        dtype = query.dtype
        source, transition, mark, direct = source.to(dtype), transition.to(dtype), mark.to(dtype), direct.to(dtype)
        if compiled_sweep:
            # One opaque op in the compiled graph, with the plan as an opaque reference: no graph break,
            # and no recompilation for a batch of other sizes.
            # Whether gradients will be asked for is known when tracing (and guarded): the op then keeps its
            # autograd graph for the backward pass.
            keep = torch.is_grad_enabled() and any(
                t.requires_grad for t in (query, key, value, source, transition, mark, direct)
            )
            out, _ = plstm_conv_sweep(
                query,
                key,
                value,
                source,
                transition,
                mark,
                direct,
                edge_index,
                dag_edge_index,
                structure.edge_id,
                line_edge_index,
                structure.plan,
                self.backend,
                self.recompute_states,
                keep,
            )
        else:
            out = self._sweep(query, key, value, source, transition, mark, direct, structure)
        out = self.norm(out).reshape(num_nodes, heads * v_channels)
        return self.lin_out(out)

    def _node_projections(self, x: Tensor):
        """Query (scaled by :math:`K^{-1/2}`), key, value and node gate terms of ``x``, one matrix product
        each: every output is contiguous as the sweep reads it, and the backward pass adds four
        ``[N, C]`` input gradients instead of concatenating ``[N, 3 H K + 4 H]`` output gradients (measured
        faster on CPU than one product split into column views). The query's scale is applied to its weight
        and bias, not to the ``[N, H K]`` queries."""
        scale = self.qk_channels**-0.5
        query = self.lin_query
        query = F.linear(x, query.weight * scale, None if query.bias is None else query.bias * scale)
        return (query, *(lin(x) for lin in (self.lin_key, self.lin_value, self.lin_gate)))

    # Integer work and the level loops stay outside torch.compile: Dynamo sees each as one opaque call, so a
    # compiled model does not recompile for every batch's sizes. Building a structure is a graph break;
    # with a prepared structure the sweep is a custom op (sweep_op) where torch supports it, else a break.
    @torch.compiler.disable
    def _structure_for(self, edge_index: Tensor, num_nodes: int, order: Optional[Tensor]) -> PLSTMStructure:
        return self.structure(edge_index, num_nodes, order)

    @torch.compiler.disable
    def _sweep(self, query, key, value, source, transition, mark, direct, structure: PLSTMStructure) -> Tensor:
        return plstm_dag(
            query,
            key,
            value,
            source,
            transition,
            mark,
            direct,
            structure.edge_index,
            structure.line_edge_index,
            plan=structure.plan,
            backend=self.backend,
            recompute_states=self.recompute_states,
        )

    def _materialize(self, x: Tensor) -> None:
        """Initialises lazy (``in_channels=-1``) weights from the first input, with the gates' own init."""
        # isinstance rather than torch's is_lazy, which torch.compile treats as an untraceable torch.* call
        if not any(isinstance(lin.weight, UninitializedParameter) for lin in (self.lin_gate, self.lin_edge_gate)):
            return
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(
                f"x: expected a tensor of shape [N, C], "
                f"got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
        with torch.no_grad():
            for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_gate):
                lin(x[:0])  # runs the lazy hook of torch_geometric.nn.Linear
            if is_lazy(self.lin_edge_gate.weight):
                self.lin_edge_gate(x.new_zeros(0, 2 * x.size(1)))
        self.reset_gate_weights()

    def _edge_weight(self, edge_weight: Optional[Tensor], num_edges: int) -> Optional[Tensor]:
        """``edge_weight`` times the Explainer's edge mask, if one is set (PyG sets ``_edge_mask``)."""
        if edge_weight is not None:
            if not isinstance(edge_weight, Tensor) or not edge_weight.is_floating_point():
                raise TypeError(
                    f"edge_weight: expected a floating-point tensor, got "
                    f"{edge_weight.dtype if isinstance(edge_weight, Tensor) else type(edge_weight).__name__}"
                )
            if edge_weight.shape != (num_edges,):
                raise ValueError(f"edge_weight: expected shape [{num_edges}], got {tuple(edge_weight.shape)}")
        if self._explain and self._edge_mask is not None:
            mask = self._edge_mask.sigmoid() if self._apply_sigmoid else self._edge_mask
            if mask.shape != (num_edges,):
                raise ValueError(
                    f"edge_mask: the Explainer's mask has shape {tuple(mask.shape)}, expected "
                    f"[{num_edges}] (one entry per column of edge_index)"
                )
            edge_weight = mask if edge_weight is None else edge_weight * mask
        return edge_weight

    def _forward_bipartite(self, x, edge_index, edge_attr, order, structure, edge_weight) -> Tensor:
        # A bipartite graph (e.g. one edge type of to_hetero) is a DAG from the source to the target nodes:
        # it is swept as one graph over both node sets, and the target nodes' outputs are returned.
        if len(x) != 2 or not all(isinstance(part, Tensor) and part.dim() == 2 for part in x):
            raise ValueError("x: expected a tensor [N, C] or a pair (x_src [N_src, C], x_dst [N_dst, C])")
        x_src, x_dst = x
        if x_src.size(1) != x_dst.size(1):
            raise ValueError(
                f"x: a bipartite pair needs the same number of features on both sides (the layer's "
                f"projections are shared), got {x_src.size(1)} and {x_dst.size(1)}; project them "
                "to one size first"
            )
        if structure is not None or order is not None:
            raise ValueError("structure, order: not supported for a bipartite pair (x_src, x_dst)")
        edge_index = as_edge_index(edge_index, None, keep_order=True)
        if (edge_index[0] >= x_src.size(0)).any() or (edge_index[1] >= x_dst.size(0)).any():
            raise ValueError(
                f"edge_index: expected source indices < {x_src.size(0)} and target indices < {x_dst.size(0)}"
            )
        shifted = torch.stack([edge_index[0], edge_index[1] + x_src.size(0)])
        out = self.forward(torch.cat([x_src, x_dst]), shifted, edge_attr, edge_weight=edge_weight)
        return out[x_src.size(0) :]

    def __prepare_scriptable__(self):
        raise RuntimeError(JIT_UNSUPPORTED)

    def jittable(self, *args, **kwargs):
        raise RuntimeError(JIT_UNSUPPORTED)

    @torch.compiler.disable
    def _check_structure(
        self, structure: PLSTMStructure, num_nodes: int, order: Optional[Tensor], edge_index: Tensor
    ) -> None:
        self._check_structure_arguments(structure, order)
        check_structure_of(edge_index, num_nodes, structure.edge_index, structure.edge_id, structure.num_nodes)

    def _check_structure_arguments(self, structure: PLSTMStructure, order: Optional[Tensor]) -> None:
        """The checks of a structure that read no tensor (traced by torch.compile, guarded as constants)."""
        if not isinstance(structure, PLSTMStructure):
            raise TypeError(f"structure: expected a PLSTMStructure, got {type(structure).__name__}")
        if order is not None:
            raise ValueError("order: has no effect when a structure is given (the structure fixes the orientation)")
        if structure.line_graph_mode != self.line_graph_mode or structure.reverse != self.reverse:
            raise ValueError(
                f"structure: has a {structure.line_graph_mode} line graph with reverse="
                f"{structure.reverse}; this layer (mode={self.mode}) needs a "
                f"{self.line_graph_mode} line graph with reverse={self.reverse}"
            )

    def __repr__(self) -> str:
        options = [f"heads={self.heads}", f"mode={self.mode}"]
        if self.edge_dim is not None:
            options.append(f"edge_dim={self.edge_dim}")
        if self.reverse:
            options.append("reverse=True")
        if self.backend != "auto":
            options.append(f"backend={self.backend}")
        if self.recompute_states:
            options.append("recompute_states=True")
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, {', '.join(options)})"


JIT_UNSUPPORTED = (
    "PLSTMConv: torch.jit.script and torch.jit.trace are not supported (the structure is built "
    "with data-dependent Python control flow, and a trace would freeze one graph's schedule); "
    "use torch.compile(model, dynamic=True) with the structure built outside the compiled call "
    "(pass structure=), or run eagerly"
)


def as_edge_index(edge_index, num_nodes: Optional[int], keep_order: bool) -> Tensor:
    r"""``edge_index`` as a ``[2, E]`` index: a sparse adjacency ``adj_t`` (PyG's transposed convention,
    entry ``(j, i)`` for an edge ``i -> j``) is turned into the edges of its stored entries, in their order."""
    if isinstance(edge_index, SparseTensor):
        row, col, _ = edge_index.coo()
        shape = tuple(edge_index.sizes())
    elif isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
        shape = tuple(edge_index.shape)
        if edge_index.layout == torch.sparse_csr:
            crow, col = edge_index.crow_indices(), edge_index.col_indices()
            row = torch.repeat_interleave(torch.arange(crow.numel() - 1, device=crow.device), crow.diff())
        else:
            adj_t = edge_index if edge_index.layout == torch.sparse_coo else edge_index.to_sparse_coo()
            if not adj_t.is_coalesced():
                if keep_order:
                    raise ValueError(
                        "edge_index: a sparse COO adjacency with edge_attr or edge_weight must be "
                        "coalesced (coalescing reorders its entries, which edge_attr rows follow)"
                    )
                adj_t = adj_t.coalesce()
            row, col = adj_t.indices()
    else:
        return edge_index
    if len(shape) != 2 or (num_nodes is not None and shape != (num_nodes, num_nodes)):
        raise ValueError(f"edge_index: expected a sparse adjacency of shape [{num_nodes}, {num_nodes}], got {shape}")
    return torch.stack([col, row]).long()
