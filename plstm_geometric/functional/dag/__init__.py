r"""The DAG pLSTM op: validation at the public boundary and dispatch to a backend.

One file per backend: :mod:`.levels` (the reference level sweep), :mod:`.compiled` (the level sweep as
C++ loops built on first use), :mod:`.parallel` (dense solve per
graph), :mod:`.chains` (chain contraction and a parallel scan), :mod:`.bands` (dense inside bands of
consecutive levels, states carried between them), :mod:`.fused` (the level sweep as Triton
kernels, imported on first use), :mod:`.mixed` (a batch split by graph size, each part with its own
backend) and :mod:`.naive` (one edge at a time, straight from the equations).
"""

import importlib.util

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ...checks import check_bool, check_edges_of, check_gate, check_index, check_tensor
from ...graph.plan import PLSTMPlan, build_plan
from ...graph.size import check_level_sweep_memory
from ..common import all_finite, compute_dtype, triton_kernel
from .bands import plstm_dag_bands
from .chains import plstm_dag_chains
from .compiled import build_extension, plstm_dag_compiled
from .levels import plstm_dag_levels
from .mixed import mixed_split, plstm_dag_mixed
from .naive import plstm_dag_naive
from .parallel import plstm_dag_parallel
from .workspace import release_workspace

__all__ = [
    "plstm_dag",
    "plstm_dag_naive",
    "choose_backend",
    "auto_backend",
    "BACKENDS",
    "TORCH_BACKENDS",
    "TRITON_BACKENDS",
    "CPU_BACKENDS",
    "release_workspace",
]

BACKENDS = ("auto", "levels", "compiled", "parallel", "chains", "bands", "fused", "mixed")
# The backends that run Triton kernels (a GPU, or Triton's slow CPU interpreter), and those written in
# torch alone: these run anywhere, differentiate twice and are what ``auto`` picks from.
TRITON_BACKENDS = ("fused",)
TORCH_BACKENDS = tuple(backend for backend in BACKENDS if backend not in ("auto", *TRITON_BACKENDS))
# The backends whose own code is for CPU tensors: elsewhere they run the torch level sweep.
CPU_BACKENDS = ("compiled",)


def plstm_dag(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source: Tensor,
    transition: Tensor,
    mark: Tensor,
    direct: Tensor,
    edge_index: Tensor,
    line_edge_index: Tensor,
    plan: PLSTMPlan | None = None,
    backend: str = "auto",
    recompute_states: bool = False,
) -> Tensor:
    r"""pLSTM on a DAG: Source, Transition and Mark gates propagate key-value outer products along edges.

    Cell states live on edges. For every head (no :math:`1/\sqrt{K}` scaling inside the op):

    .. math::
        C_e &= \sum_{(e', e) \in \mathcal{L}} T_{e' \to e}\, C_{e'}
              + S_e\, k_{\mathrm{src}(e)} v_{\mathrm{src}(e)}^\top \\
        o_n &= \sum_{e:\, \mathrm{dst}(e) = n} M_e\, q_n^\top C_e
              + D_n\, (q_n^\top k_n)\, v_n

    where :math:`\mathcal{L}` is ``line_edge_index`` (pairs of edges meeting at a node). A mini-batch is a
    disjoint union of graphs and runs in one call; work proceeds one topological level at a time.

    Args:
        query, key (Tensor): ``[N, H, K]``.
        value (Tensor): ``[N, H, V]``.
        source, mark (Tensor): ``[E, H]`` per-edge gates.
        transition (Tensor): ``[L, H]`` per-line-edge transitions.
        direct (Tensor): ``[N, H]``.
        edge_index (LongTensor): ``[2, E]`` DAG edges.
        line_edge_index (LongTensor): ``[2, L]`` pairs ``(e_in, e_out)`` with ``dst(e_in) == src(e_out)``.
        plan (PLSTMPlan, optional): the schedule from :func:`~plstm_geometric.graph.build_plan`; built
            (and the structure validated) when omitted. Reuse it across calls on the same graph.
        backend (str): ``"levels"`` (scatter ops, one step per level, any graph size), ``"compiled"``
            (the same sweep as C++ loops compiled on first use, one pass over the states per sweep; on CPU
            tensors, with a warning and the torch sweep where no C++ compiler is found), ``"parallel"``
            (per-graph dense solve, for batches of small graphs such as molecules), ``"chains"`` (long
            paths of the line graph contracted and solved with a parallel scan: few steps for chain-like
            DAGs), ``"bands"`` (every graph cut into bands of
            :data:`~plstm_geometric.graph.bands.BAND_LEVELS` levels, each solved densely; ``K x V`` states
            only for the edges that feed a later band, and one sequential step per band instead of per
            level), ``"fused"`` (the level sweep as Triton kernels, one launch per level, no gathered
            ``K x V`` temporaries; needs ``pip install triton`` and CUDA tensors), ``"mixed"`` (graphs of at
            most ``PARALLEL_MAX_EDGES`` edges through ``"parallel"``, the others through the backend
            ``"auto"`` picks for them alone; :mod:`.mixed`) or ``"auto"``, which picks by
            graph statistics (see :func:`choose_backend`); on CPU tensors it runs ``"compiled"`` instead of
            any of them when the C++ loops can be built (the first such call builds them, about a minute,
            once; ``PLSTM_GEOMETRIC_COMPILE=0`` keeps the torch forms; see :func:`auto_backend`). On CUDA tensors
            with Triton installed it runs ``"fused"`` instead of ``"levels"`` (measured 2x faster on an
            H200 on deep peptide batches).
        recompute_states (bool): drop the ``[E, H, K, V]`` cell states after the forward pass and
            recompute them in the backward pass: less memory between forward and backward, one more sweep.
            ``"levels"`` and ``"fused"`` recompute the states only; ``"parallel"`` and ``"chains"``
            recompute their whole forward pass (activation checkpointing).

    Returns:
        ``[N, H, V]`` in the dtype of ``query``. float64, float32 and bfloat16/float16 inputs are
        supported; 16-bit inputs are computed with float32 states.
    """
    num_nodes, heads = check_node_inputs(query, key, value, direct)
    check_index("edge_index", edge_index)
    check_index("line_edge_index", line_edge_index)
    num_edges, num_line_edges = edge_index.size(1), line_edge_index.size(1)
    check_gate("source", source, num_edges, heads, query)
    check_gate("mark", mark, num_edges, heads, query)
    check_gate("transition", transition, num_line_edges, heads, query)
    for name, index in (("edge_index", edge_index), ("line_edge_index", line_edge_index)):
        if index.device != query.device:
            raise ValueError(f"{name}: expected device {query.device} (the device of query), got {index.device}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    check_bool("recompute_states", recompute_states)
    if plan is None:
        plan = build_plan(edge_index, line_edge_index, num_nodes)
    elif not isinstance(plan, PLSTMPlan):
        raise TypeError(f"plan: expected a PLSTMPlan, got {type(plan).__name__}")
    elif not plan.matches(num_nodes, num_edges, num_line_edges):
        raise ValueError(
            f"plan: built for {plan.num_nodes} nodes, {plan.num_edges} edges, "
            f"{plan.num_line_edges} line edges; got {num_nodes}, {num_edges}, {num_line_edges}"
        )
    elif plan.device != query.device:
        raise ValueError(f"plan: expected device {query.device}, got {plan.device} (use plan.to(device))")
    else:
        # Equal sizes are not enough: a plan of another graph would silently give that graph's answer.
        check_edges_of("plan", edge_index, plan.edge_index, "edge_index")
        check_edges_of("plan", line_edge_index, plan.line_edge_index, "line_edge_index")
    if backend == "auto":
        backend = auto_backend(plan, heads, key.size(-1), value.size(-1), query.dtype, query.device)
    if heads == 0 and backend in ("parallel", "bands", "mixed"):
        # Their dense layouts fold the heads into a reshape, which has no size to infer from with no heads;
        # the level sweep handles the empty case like any other.
        backend = "levels"
    inputs = (query, key, value, source, transition, mark, direct)
    if backend in ("parallel", "chains", "bands", "mixed") and not all_finite(*inputs):
        # Their dense solve and concatenated scan multiply structural zeros with every entry, so a NaN
        # would reach unrelated nodes and graphs; the level sweep combines real edges only.
        backend = "levels"
    if backend in ("levels", "compiled", "fused"):
        states_itemsize = compute_dtype(query.dtype).itemsize
        check_level_sweep_memory(plan, heads, key.size(-1), value.size(-1), states_itemsize, query.device)
    # The op sets its own precision (16-bit inputs, float32 states); autocast would push its matmuls
    # back to 16 bits.
    with torch.autocast(query.device.type, enabled=False):
        if backend == "mixed":
            split = mixed_split(plan, PARALLEL_MAX_EDGES)
            backends = ["parallel", "levels" if split.large is None else choose_backend(split.large.plan)]

            def run(part_backend, *inputs):
                return run_backend(part_backend, *inputs, recompute_states=recompute_states)

            return plstm_dag_mixed(query, key, value, source, transition, mark, direct, split, backends, run)
        return run_backend(backend, query, key, value, source, transition, mark, direct, plan, recompute_states)


def run_backend(
    backend: str,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source: Tensor,
    transition: Tensor,
    mark: Tensor,
    direct: Tensor,
    plan: PLSTMPlan,
    recompute_states: bool,
) -> Tensor:
    """Runs one backend on checked inputs (no ``"auto"`` or ``"mixed"`` here)."""
    if backend in ("parallel", "chains", "bands"):
        run = {"parallel": plstm_dag_parallel, "chains": plstm_dag_chains, "bands": plstm_dag_bands}[backend]
        inputs = (query, key, value, source, transition, mark, direct, plan)
        if recompute_states and torch.is_grad_enabled():
            # These backends are differentiated by autograd: recomputing means checkpointing the form.
            return checkpoint(run, *inputs, use_reentrant=False)
        return run(*inputs)
    if backend == "compiled":
        return plstm_dag_compiled(query, key, value, source, transition, mark, direct, plan, recompute_states)
    if backend == "fused":
        plstm_dag_fused = triton_kernel(f"{__name__}.fused", "plstm_dag_fused", "backend='fused'")
        return plstm_dag_fused(query, key, value, source, transition, mark, direct, plan, recompute_states)
    return plstm_dag_levels(query, key, value, source, transition, mark, direct, plan, recompute_states)


def check_node_inputs(query: Tensor, key: Tensor, value: Tensor, direct: Tensor):
    check_tensor("query", query)
    if query.dim() != 3:
        raise ValueError(f"query: expected shape [N, H, K], got {tuple(query.shape)}")
    num_nodes, heads, _ = query.shape
    check_tensor("key", key, query)
    if key.shape != query.shape:
        raise ValueError(f"key: expected shape {tuple(query.shape)} (the shape of query), got {tuple(key.shape)}")
    check_tensor("value", value, query)
    if value.dim() != 3 or value.shape[:2] != (num_nodes, heads):
        raise ValueError(f"value: expected shape [{num_nodes}, {heads}, V], got {tuple(value.shape)}")
    check_tensor("direct", direct, query)
    if direct.shape != (num_nodes, heads):
        raise ValueError(f"direct: expected shape [{num_nodes}, {heads}], got {tuple(direct.shape)}")
    return num_nodes, heads


# The parallel form pads every graph to the largest edge count E_max and solves E_max x E_max systems:
# it wins while graphs are small (molecules: E_max ~ 20-120) and padding wastes little. Beyond these
# bounds its cubic cost and memory overtake the level sweep.
PARALLEL_MAX_EDGES = 128
PARALLEL_MAX_PADDING = 8.0
# Chain contraction pays when it removes most steps of a deep sweep; each contracted step costs a scan
# (about 2 log T elementwise passes), so it must cut the number of steps by a wide margin.
CHAINS_MIN_LEVELS = 64
CHAINS_MIN_REDUCTION = 8
# Splitting a batch costs one more call and the gathers around it; it pays when the small graphs carry
# most of the work that the level sweep would otherwise do one level at a time.
MIXED_MIN_SMALL_SHARE = 0.5


def mixed_pays(plan: PLSTMPlan) -> bool:
    """Whether the small graphs of the batch (see :func:`~.mixed.mixed_split`) are worth a parallel call."""
    small = mixed_split(plan, PARALLEL_MAX_EDGES).small
    if small is None or small.plan.num_edges < MIXED_MIN_SMALL_SHARE * plan.num_edges:
        return False
    return small.plan.layout.padded_edges <= PARALLEL_MAX_PADDING * small.plan.num_edges


# On CPU the compiled sweep replaces the parallel form at every size since its state buffers are reused
# (:mod:`.workspace`): PLSTMConv (hidden 64, 4 heads) forward + backward on NCI molecules, one thread,
# compiled / parallel 11.5 / 24.1 ms at 128 molecules, 42.7 / 89.5 ms at 512, 82.6 / 138 ms at 1,024.
# Before, fresh pages for states beyond 32 MiB made it 1.23x slower than the parallel form at 1,024.


def auto_backend(plan: PLSTMPlan, heads: int, key_channels: int, value_channels: int, dtype, device) -> str:
    """The backend ``backend="auto"`` runs: :func:`choose_backend`'s, except on CPU where the compiled
    loops can be built (see :mod:`.compiled`): they replace the torch level sweep, the chain-contracted
    form and the mixed split (a 100,000-node chain: compiled 0.079 s, chains 0.092 s, levels 4.8 s; 64
    peptides: compiled 110 ms, mixed 163 ms) and the parallel form (2x faster on molecules).

    On CUDA, where Triton is installed, the Triton level sweep replaces the torch level sweep: on an H200
    (the GPU check of 2026-12-04) the op's forward+backward on 64 LRGB peptides took 10.3 ms against
    21.2 ms (4 heads, K = V = 16), and a training step of the Peptides-func model 348 ms against 387 ms.
    The op alone was faster than the parallel form on molecules too (3.6 / 6.6 ms on 128, 4.8 / 13.9 ms
    on 1,024), but a training step of the molecule model with it took 150 ms against 107 ms, so batches
    of small graphs keep the parallel form until that difference is understood. Chain contraction stays
    for the deep chain-like sweeps it picks (a 100,000-node chain: 8.4 ms, against 11 s for the torch
    level sweep; the Triton sweep launches once per level)."""
    if torch.device(device).type == "cpu" and build_extension() is not None:
        # every backend the rule can pick is replaced: the rule (whose component layout costs milliseconds
        # per batch of molecules) is not run
        return "compiled"
    backend = choose_backend(plan)
    if torch.device(device).type == "cuda":
        if backend == "levels" and importlib.util.find_spec("triton") is not None:
            return "fused"
    return backend


def choose_backend(plan: PLSTMPlan) -> str:
    """The backend ``backend="auto"`` uses for this schedule.

    ``"parallel"`` when every connected component has at most ``PARALLEL_MAX_EDGES`` edges and the padded
    layout holds at most ``PARALLEL_MAX_PADDING`` times the real edges; ``"chains"`` for deep sweeps
    (at least ``CHAINS_MIN_LEVELS`` levels) that chain contraction shortens at least
    ``CHAINS_MIN_REDUCTION``-fold; else ``"levels"``. A batch that fails the parallel rule only because
    some of its graphs are too large runs ``"mixed"`` when the small graphs hold at least
    ``MIXED_MIN_SMALL_SHARE`` of the edges and pass the padding rule by themselves: the small graphs go
    through ``"parallel"`` and the others through the backend this rule picks for them alone. The rule was
    set from the DAG benchmark (see docs/benchmarks.md). Heads and channel sizes
    scale both backends alike, so only the graph statistics decide. Device-specific replacements
    (``"compiled"`` on CPU, ``"fused"`` on CUDA) are :func:`auto_backend`'s. ``"bands"`` is never
    picked: it costs about 1.1-1.2x the level sweep on deep peptide batches on CPU (its batched dense
    solves of about 20 x 20 are not faster there than the memory-bound sweep) and 1.9x on an H200
    (39.6 against 21.2 ms on 64 peptides, 2026-12-04).
    """
    if plan.num_edges == 0 or plan.num_levels <= 1:
        return "levels"
    layout = plan.layout
    if layout.max_edges <= PARALLEL_MAX_EDGES and layout.padded_edges <= PARALLEL_MAX_PADDING * plan.num_edges:
        return "parallel"
    if layout.max_edges > PARALLEL_MAX_EDGES and mixed_pays(plan):
        return "mixed"
    if plan.num_levels >= CHAINS_MIN_LEVELS and plan.chains.num_levels * CHAINS_MIN_REDUCTION <= plan.num_levels:
        return "chains"
    return "levels"
