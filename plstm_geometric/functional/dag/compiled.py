r"""The level sweep as C++ loops compiled on first use: one pass over the cell states per sweep.

The torch level sweep (:mod:`.levels`) spends its time moving ``[E, H, K, V]`` cell states through memory:
per level a gather, a product and a scatter, then separate passes for the source terms, the readout and
the four gradient contractions, about two dozen passes over the states per forward and backward. Here
one loop per edge (edges in schedule order, so every predecessor is final when an edge is visited; the
edges of a level in parallel, on torch's intra-op threads) does all the work on an edge's state while it
is in cache:

* forward: :math:`C_e = S_e k v^\top + \sum T C_{e'}` and the readout :math:`q_{\mathrm{dst}}^\top C_e`;
* backward, from the last level down: :math:`G_e = M_e q_{\mathrm{dst}} \bar{o}_{\mathrm{dst}}^\top +
  \sum T G_{e''}`, the transition gradients :math:`\langle G_{e''}, C_e \rangle`, and the small
  contractions :math:`G_e v`, :math:`k^\top G_e` and :math:`C_e \bar{o}` from which
  :class:`CompiledSweep` assembles every input gradient.

The loops are built with :func:`torch.utils.cpp_extension.load_inline` the first time they are needed
(a C++ compiler is then required; the build takes about a minute once and is cached by torch). Without a
compiler, or if the build fails, the backend warns once and runs the torch level sweep instead: the
results are the same. The environment variable ``PLSTM_GEOMETRIC_COMPILE=0`` skips the build (then
``backend="auto"`` keeps the torch sweep). The loops are CPU code: on CUDA tensors this backend runs the
torch level sweep. Under ``create_graph=True`` the backward pass is taken through the torch level sweep,
which autograd can differentiate again.
"""

import os
import threading
import warnings

import torch
from torch import Tensor

from ...graph.plan import PLSTMPlan
from ..common import direct_term, direct_term_grads, in_compute_dtype
from .levels import SCATTER_SWEEPS, LevelSweep, plstm_dag_levels

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <vector>

// Edges are in schedule order: the line edges into edge e (CSR line_ptr_by_out) come from lower levels,
// the line edges out of it (CSR line_ptr_by_in) go to higher ones. Level l holds edges
// level_ptr[l] .. level_ptr[l + 1]; the edges of one level never read each other.

template <typename T>
void forward_edges(const T* __restrict__ query, const T* __restrict__ key, const T* __restrict__ value,
                   const T* __restrict__ source, const T* __restrict__ transition, const int64_t* src,
                   const int64_t* dst, const int64_t* line_in, const int64_t* line_ptr, T* states,
                   T* __restrict__ readout, int64_t begin, int64_t end, int64_t H, int64_t K, int64_t V) {
  for (int64_t e = begin; e < end; ++e) {
    for (int64_t h = 0; h < H; ++h) {
      T* __restrict__ C = states + (e * H + h) * K * V;
      const T* k = key + (src[e] * H + h) * K;
      const T* v = value + (src[e] * H + h) * V;
      const T s = source[e * H + h];
      for (int64_t i = 0; i < K; ++i) {
        const T sk = s * k[i];
        for (int64_t j = 0; j < V; ++j) C[i * V + j] = sk * v[j];
      }
      for (int64_t l = line_ptr[e]; l < line_ptr[e + 1]; ++l) {
        const T t = transition[l * H + h];
        const T* __restrict__ earlier = states + (line_in[l] * H + h) * K * V;
        for (int64_t x = 0; x < K * V; ++x) C[x] += t * earlier[x];
      }
      const T* q = query + (dst[e] * H + h) * K;
      T* r = readout + (e * H + h) * V;
      for (int64_t j = 0; j < V; ++j) r[j] = 0;
      for (int64_t i = 0; i < K; ++i) {
        const T qi = q[i];
        for (int64_t j = 0; j < V; ++j) r[j] += qi * C[i * V + j];
      }
    }
  }
}

std::vector<torch::Tensor> sweep_forward(torch::Tensor query, torch::Tensor key, torch::Tensor value,
                                         torch::Tensor source, torch::Tensor transition, torch::Tensor src,
                                         torch::Tensor dst, torch::Tensor line_in, torch::Tensor line_ptr,
                                         std::vector<int64_t> level_ptr) {
  const int64_t E = src.size(0), H = query.size(1), K = query.size(2), V = value.size(2);
  auto states = torch::empty({E, H, K, V}, query.options());
  auto readout = torch::empty({E, H, V}, query.options());
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "sweep_forward", [&] {
    for (size_t level = 0; level + 1 < level_ptr.size(); ++level) {
      at::parallel_for(level_ptr[level], level_ptr[level + 1], 8, [&](int64_t begin, int64_t end) {
        forward_edges<scalar_t>(query.data_ptr<scalar_t>(), key.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(),
                                source.data_ptr<scalar_t>(), transition.data_ptr<scalar_t>(),
                                src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), line_in.data_ptr<int64_t>(),
                                line_ptr.data_ptr<int64_t>(), states.data_ptr<scalar_t>(),
                                readout.data_ptr<scalar_t>(), begin, end, H, K, V);
      });
    }
  });
  return {states, readout};
}

template <typename T>
void backward_edges(const T* __restrict__ states, const T* __restrict__ query, const T* __restrict__ key,
                    const T* __restrict__ value, const T* __restrict__ mark, const T* __restrict__ out_grad,
                    const T* __restrict__ transition, const int64_t* src, const int64_t* dst,
                    const int64_t* line_out, const int64_t* line_ptr, T* grads, T* __restrict__ transition_grad,
                    T* __restrict__ grads_v, T* __restrict__ grads_k, T* __restrict__ states_g, int64_t begin,
                    int64_t end, int64_t H, int64_t K, int64_t V) {
  for (int64_t e = begin; e < end; ++e) {
    for (int64_t h = 0; h < H; ++h) {
      T* __restrict__ G = grads + (e * H + h) * K * V;
      const T* C = states + (e * H + h) * K * V;
      const T* q = query + (dst[e] * H + h) * K;
      const T* g = out_grad + (dst[e] * H + h) * V;
      const T m = mark[e * H + h];
      for (int64_t i = 0; i < K; ++i) {
        const T mq = m * q[i];
        for (int64_t j = 0; j < V; ++j) G[i * V + j] = mq * g[j];
      }
      for (int64_t l = line_ptr[e]; l < line_ptr[e + 1]; ++l) {
        const T t = transition[l * H + h];
        const T* __restrict__ later = grads + (line_out[l] * H + h) * K * V;
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t x = 0; x < K * V; ++x) {
          dot += later[x] * C[x];
          G[x] += t * later[x];
        }
        transition_grad[l * H + h] = dot;
      }
      const T* k = key + (src[e] * H + h) * K;
      const T* v = value + (src[e] * H + h) * V;
      T* gv = grads_v + (e * H + h) * K;
      T* gk = grads_k + (e * H + h) * V;
      T* cg = states_g + (e * H + h) * K;
      for (int64_t j = 0; j < V; ++j) gk[j] = 0;
      for (int64_t i = 0; i < K; ++i) {
        T row_v = 0, row_g = 0;
        const T ki = k[i];
#pragma omp simd reduction(+ : row_v, row_g)
        for (int64_t j = 0; j < V; ++j) {
          row_v += G[i * V + j] * v[j];
          row_g += C[i * V + j] * g[j];
          gk[j] += ki * G[i * V + j];
        }
        gv[i] = row_v;
        cg[i] = row_g;
      }
    }
  }
}

std::vector<torch::Tensor> sweep_backward(torch::Tensor states, torch::Tensor query, torch::Tensor key,
                                          torch::Tensor value, torch::Tensor mark, torch::Tensor out_grad,
                                          torch::Tensor transition, torch::Tensor src, torch::Tensor dst,
                                          torch::Tensor line_out, torch::Tensor line_ptr,
                                          std::vector<int64_t> level_ptr) {
  const int64_t E = src.size(0), H = query.size(1), K = query.size(2), V = value.size(2);
  auto grads = torch::empty({E, H, K, V}, query.options());
  auto transition_grad = torch::empty({line_out.size(0), H}, query.options());
  auto grads_v = torch::empty({E, H, K}, query.options());
  auto grads_k = torch::empty({E, H, V}, query.options());
  auto states_g = torch::empty({E, H, K}, query.options());
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "sweep_backward", [&] {
    for (int64_t level = static_cast<int64_t>(level_ptr.size()) - 2; level >= 0; --level) {
      at::parallel_for(level_ptr[level], level_ptr[level + 1], 8, [&](int64_t begin, int64_t end) {
        backward_edges<scalar_t>(states.data_ptr<scalar_t>(), query.data_ptr<scalar_t>(),
                                 key.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(), mark.data_ptr<scalar_t>(),
                                 out_grad.data_ptr<scalar_t>(), transition.data_ptr<scalar_t>(),
                                 src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), line_out.data_ptr<int64_t>(),
                                 line_ptr.data_ptr<int64_t>(), grads.data_ptr<scalar_t>(),
                                 transition_grad.data_ptr<scalar_t>(), grads_v.data_ptr<scalar_t>(),
                                 grads_k.data_ptr<scalar_t>(), states_g.data_ptr<scalar_t>(), begin, end, H, K, V);
      });
    }
  });
  return {transition_grad, grads_v, grads_k, states_g};
}
"""

# Bump with every change of SOURCE: torch caches builds by name.
EXTENSION_NAME = "plstm_geometric_level_sweep_v3"


def compile_flags():
    """The extension's name suffix and C++ flags for this CPU. ``-fopenmp-simd`` lets the marked dot
    products be vectorised (it reorders their sums, nothing else); AVX2 and FMA are enabled only where torch
    itself detects them, and the build is cached under a name that says so."""
    capability = torch.backends.cpu.get_cpu_capability()
    vector = capability in ("AVX2", "AVX512")
    return ("_avx2" if vector else "_base"), ["-O3", "-fopenmp-simd", *(["-mavx2", "-mfma"] if vector else [])]


_lock = threading.Lock()
_extension = None
_build_error = None


COMPILE_VARIABLE = "PLSTM_GEOMETRIC_COMPILE"


def compile_allowed() -> bool:
    """Whether the environment allows building the loops (``PLSTM_GEOMETRIC_COMPILE=0`` does not)."""
    return os.environ.get(COMPILE_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")


def build_extension():
    """The compiled loops, built (or loaded from torch's cache) on first call; ``None`` when they cannot
    be built here (the reason is in :func:`build_error`) or the environment forbids it."""
    global _extension, _build_error
    if not compile_allowed():
        return None
    with _lock:
        if _extension is None and _build_error is None:
            try:
                from torch.utils.cpp_extension import load_inline

                _extension = load_inline(
                    name=extension_name(),
                    cpp_sources=SOURCE,
                    functions=["sweep_forward", "sweep_backward"],
                    extra_cflags=compile_flags()[1],
                    verbose=False,
                )
            except Exception as error:  # no compiler, no headers, a failed build: the torch sweep serves
                _build_error = error
                warnings.warn(
                    f"plstm_dag(backend='compiled'): the C++ level sweep could not be built ({error!r}); "
                    "running the torch level sweep instead (the same results, slower on CPU)",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return _extension


def extension_name() -> str:
    """The name the loops are built and cached under on this CPU."""
    return EXTENSION_NAME + compile_flags()[0]


def is_built() -> bool:
    """Whether the loops are loaded or in torch's build cache (so that using them costs no build)."""
    if _extension is not None:
        return True
    name = extension_name()
    try:
        # torch's own choice of folder (TORCH_EXTENSIONS_DIR, or a per-Python, per-accelerator folder);
        # a private helper, so any failure just reads as "not built"
        from torch.utils.cpp_extension import _get_build_directory

        folder = _get_build_directory(name, verbose=False)
    except Exception:
        return False
    return os.path.isfile(os.path.join(folder, name + ".so"))


def build_error():
    """Why the compiled loops are unavailable (``None`` if they were built or never tried)."""
    return _build_error


def forward_states(extension, plan: PLSTMPlan, query, key, value, source, transition):
    return extension.sweep_forward(
        query,
        key,
        value,
        source,
        transition,
        plan.edge_src,
        plan.edge_dst,
        plan.line_in_by_out,
        plan.line_ptr_by_out,
        plan.edge_level_ptr,
    )


class CompiledSweep(torch.autograd.Function):
    """Inputs contiguous and in schedule order (edges sorted by level, transitions sorted by ``e_out``)."""

    @staticmethod
    def forward(ctx, query, key, value, source, transition, mark, direct, plan, recompute_states, extension):
        states, readout = forward_states(extension, plan, query, key, value, source, transition)
        out = direct_term(query, key, value, direct).index_add(0, plan.edge_dst, readout * mark[..., None])
        ctx.plan, ctx.extension, ctx.recompute_states = plan, extension, recompute_states
        saved = (query, key, value, source, transition, mark, direct)
        ctx.save_for_backward(*saved, *(() if recompute_states else (states, readout)))
        return out

    @staticmethod
    def backward(ctx, out_grad):
        plan, extension = ctx.plan, ctx.extension
        query, key, value, source, transition, mark, direct = ctx.saved_tensors[:7]
        if torch.is_grad_enabled():
            # create_graph=True: the gradients as tracked functions of the inputs, through the torch sweep
            inputs = (query, key, value, source, transition, mark, direct)
            needed = [t for t, needs in zip(inputs, ctx.needs_input_grad) if needs]
            out = levels_in_schedule_order(plan, *inputs)
            grads = iter(torch.autograd.grad(out, needed, out_grad, create_graph=True, allow_unused=True))
            return (*(next(grads) if needs else None for needs in ctx.needs_input_grad[:7]), None, None, None)
        if ctx.recompute_states:
            states, readout = forward_states(extension, plan, query, key, value, source, transition)
        else:
            states, readout = ctx.saved_tensors[7:]
        src, dst = plan.edge_src, plan.edge_dst
        out_grad = out_grad.contiguous()
        transition_grad_by_in, grads_v, grads_k, states_g = extension.sweep_backward(
            states,
            query,
            key,
            value,
            mark,
            out_grad,
            transition[plan.line_by_out_for_in].contiguous(),
            src,
            dst,
            plan.line_out_by_in,
            plan.line_ptr_by_in,
            plan.edge_level_ptr,
        )
        query_grad, key_grad, value_grad, direct_grad = direct_term_grads(query, key, value, direct, out_grad)
        query_grad = query_grad.index_add(0, dst, states_g * mark[..., None])
        key_grad = key_grad.index_add(0, src, grads_v * source[..., None])
        value_grad = value_grad.index_add(0, src, grads_k * source[..., None])
        mark_grad = (readout * out_grad[dst]).sum(-1)
        source_grad = (grads_v * key[src]).sum(-1)
        transition_grad = torch.empty_like(transition_grad_by_in)
        transition_grad[plan.line_by_out_for_in] = transition_grad_by_in
        return query_grad, key_grad, value_grad, source_grad, transition_grad, mark_grad, direct_grad, None, None, None


def levels_in_schedule_order(plan, query, key, value, source, transition, mark, direct):
    """The torch level sweep on inputs already in schedule order: :class:`~.levels.LevelSweep` takes them so."""
    return LevelSweep.apply(query, key, value, source, transition, mark, direct, plan, False, SCATTER_SWEEPS)


def plstm_dag_compiled(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source: Tensor,
    transition: Tensor,
    mark: Tensor,
    direct: Tensor,
    plan: PLSTMPlan,
    recompute_states: bool = False,
) -> Tensor:
    """Runs :class:`CompiledSweep` (or, without the compiled loops, the torch level sweep) on inputs in
    the caller's edge order and returns ``[N, H, V]``."""
    extension = build_extension() if query.device.type == "cpu" else None
    if extension is None:
        return plstm_dag_levels(query, key, value, source, transition, mark, direct, plan, recompute_states)
    dtype = query.dtype
    query, key, value, source, transition, mark, direct = (
        t.contiguous() for t in in_compute_dtype(query, key, value, source, transition, mark, direct)
    )
    out = CompiledSweep.apply(
        query,
        key,
        value,
        source[plan.edge_order].contiguous(),
        transition[plan.line_order_by_out].contiguous(),
        mark[plan.edge_order].contiguous(),
        direct,
        plan,
        recompute_states,
        extension,
    )
    return out.to(dtype)
