r"""The level sweep as C++ loops compiled on first use: one pass over the cell states per sweep.

The torch level sweep (:mod:`.levels`) spends its time moving ``[E, H, K, V]`` cell states through memory:
per level a gather, a product and a scatter, then separate passes for the source terms, the readout and
the four gradient contractions, about two dozen passes over the states per forward and backward. Here
one loop per edge (edges in schedule order, so every predecessor is final when an edge is visited; the
edges of a level in parallel, on torch's intra-op threads) does all the work on an edge's state while it
is in cache:

* forward: :math:`C_e = S_e k v^\top + \sum T C_{e'}` and the marked readout
  :math:`M_e q_{\mathrm{dst}}^\top C_e`;
* backward, from the last level down: :math:`G_e = M_e q_{\mathrm{dst}} \bar{o}_{\mathrm{dst}}^\top +
  \sum T G_{e''}`, the transition gradients :math:`\langle G_{e''}, C_e \rangle`, and from the small
  contractions :math:`G_e v`, :math:`k^\top G_e` and :math:`C_e \bar{o}` every per-edge gradient:
  :math:`\bar{S}_e = k^\top G_e v`, :math:`\bar{M}_e = q^\top C_e \bar{o}` and the parts
  :math:`S_e G_e v`, :math:`S_e G_e^\top k`, :math:`M_e C_e \bar{o}` that :class:`CompiledSweep` adds up
  at the nodes. :math:`G_e` is written over :math:`C_e`, which no later step reads, so the backward pass
  allocates no second buffer of states (whose first touch costs more than the loops on CPU).

With GCC 12 or later, or Clang, the loops hold rows of values as vectors of the build's widest type
(AVX-512, AVX2 or 128-bit lanes), the stored states padded to whole vectors where ``V`` is not a multiple
of their width (up to four vectors a row; wider rows take plain loops), and the backward pass of states
with ``K == V`` in 8, 16, 32, 64 has kernels with every size known when compiling. The sums along rows
(:math:`C g`, :math:`G v`) are reduced a vector of rows at a time. Sums are reordered against the torch
sweep, nothing else.

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
from ..common import in_compute_dtype
from .levels import SCATTER_SWEEPS, LevelSweep, plstm_dag_levels
from .workspace import WORKSPACE

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>


// Edges are in schedule order: the line edges into edge e (CSR line_ptr_by_out) come from lower levels,
// the line edges out of it (CSR line_ptr_by_in) go to higher ones. Level l holds edges
// level_ptr[l] .. level_ptr[l + 1]; the edges of one level never read each other.

template <typename T>
void forward_edges(const T* __restrict__ query, const T* __restrict__ key, const T* __restrict__ value,
                   const T* __restrict__ source, const T* __restrict__ transition, const T* __restrict__ mark,
                   const int64_t* src, const int64_t* dst, const int64_t* line_in, const int64_t* line_ptr,
                   T* states, T* __restrict__ readout, int64_t begin, int64_t end, int64_t H, int64_t K,
                   int64_t V) {
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
      // the marked readout M_e (q^T C_e), ready to be added at dst(e); the mark multiplies the readout
      // (not q), so that a non-finite mark gives the recurrence's pattern of infinities and NaNs
      const T* q = query + (dst[e] * H + h) * K;
      T* r = readout + (e * H + h) * V;
      for (int64_t j = 0; j < V; ++j) r[j] = 0;
      for (int64_t i = 0; i < K; ++i) {
        const T qi = q[i];
        for (int64_t j = 0; j < V; ++j) r[j] += qi * C[i * V + j];
      }
      const T m = mark[e * H + h];
      for (int64_t j = 0; j < V; ++j) r[j] *= m;
    }
  }
}

// Rows as vectors, with GCC's and Clang's vector extensions. A row of V values is held as P vectors of W
// lanes (P W >= V): W is the widest vector of the build's instruction set, or 32 bytes where that pads
// the row less. The cell states of these kernels are stored with rows of P W values whose lanes past V
// are kept at zero (masked after every product that forms them, so that an infinite key, query or
// transition cannot leave a NaN there for the sums along rows to pick up). The contractions that sum
// along rows (C g and G v) take the products row by row and reduce W rows at once: pairing rows (2m,
// 2m + 1) and adding the even and odd lanes of each pair halves the lanes per row at each of log2(W)
// steps and leaves the W row sums in one vector, in row order (45 shuffles and adds for 16 rows, where a
// sum per row costs 240 dependent scalar additions).
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define PLSTM_VECTOR_ROWS 1

#if defined(__AVX512F__)
constexpr int VECTOR_BYTES = 64;
#elif defined(__AVX__)
constexpr int VECTOR_BYTES = 32;
#else
constexpr int VECTOR_BYTES = 16;
#endif
constexpr int MAX_PIECES = 4;

template <typename T, int W, int P>
struct Rows {
  typedef T vec __attribute__((vector_size(W * sizeof(T))));
  typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> lane_int;
  typedef lane_int ivec __attribute__((vector_size(W * sizeof(T))));

  static inline vec load(const T* p) {
    vec v;
    std::memcpy(&v, p, sizeof(vec));
    return v;
  }
  static inline void store(T* p, vec v) { std::memcpy(p, &v, sizeof(vec)); }
  static inline vec splat(T x) { return vec{} + x; }
  // all ones in the lanes of the last piece that hold values of a row of V, zeros past V
  static inline ivec last_piece_mask(int64_t V) {
    ivec mask;
    for (int x = 0; x < W; ++x) mask[x] = (P - 1) * W + x < V ? lane_int(-1) : lane_int(0);
    return mask;
  }
  static inline vec keep(vec v, ivec mask) { return (vec)((ivec)v & mask); }
  // n values from memory into `count` vectors, zeros after them
  static inline void load_values(const T* p, int64_t n, vec* out, int64_t count) {
    for (int64_t b = 0; b < count; ++b) {
      if ((b + 1) * W <= n) {
        out[b] = load(p + b * W);
      } else {
        out[b] = vec{};
        for (int64_t x = b * W; x < n; ++x) out[b][x - b * W] = p[x];
      }
    }
  }
  // the first n lanes of in[0], in[1], ... to memory
  static inline void store_values(T* p, int64_t n, const vec* in) {
    for (int64_t b = 0; b * W < n; ++b) {
      if ((b + 1) * W <= n) {
        store(p + b * W, in[b]);
      } else {
        for (int64_t x = b * W; x < n; ++x) p[x] = in[b][x - b * W];
      }
    }
  }

  template <size_t... I>
  static inline vec pair_sums(vec a, vec b, std::index_sequence<I...>) {
    return __builtin_shufflevector(a, b, (2 * I)...) + __builtin_shufflevector(a, b, (2 * I + 1)...);
  }
  // the lane sums of rows[0 .. W) in one vector (rows is overwritten)
  static inline vec row_sums(vec* rows) {
    for (int width = W; width > 1; width /= 2)
      for (int m = 0; m < width / 2; ++m)
        rows[m] = pair_sums(rows[2 * m], rows[2 * m + 1], std::make_index_sequence<W>{});
    return rows[0];
  }
  template <int Half, size_t... I>
  static inline vec upper_half(vec a, std::index_sequence<I...>) {
    return __builtin_shufflevector(a, a, ((I + Half) % W)...);
  }
  template <int Half = W / 2>
  static inline T sum(vec v) {
    if constexpr (Half == 0) {
      return v[0];
    } else {
      return sum<Half / 2>(v + upper_half<Half>(v, std::make_index_sequence<W>{}));
    }
  }
};

template <typename T, int W, int P>
struct ForwardRows {
  static void run(const T* __restrict__ query, const T* __restrict__ key, const T* __restrict__ value,
                  const T* __restrict__ source, const T* __restrict__ transition, const T* __restrict__ mark,
                  const int64_t* src, const int64_t* dst, const int64_t* line_in, const int64_t* line_ptr,
                  T* states, T* __restrict__ readout, int64_t begin, int64_t end, int64_t H, int64_t K, int64_t V) {
    using R = Rows<T, W, P>;
    using vec = typename R::vec;
    constexpr int64_t Vp = P * W;
    const auto mask = R::last_piece_mask(V);
    for (int64_t e = begin; e < end; ++e) {
      for (int64_t h = 0; h < H; ++h) {
        T* C = states + (e * H + h) * K * Vp;
        const T* k = key + (src[e] * H + h) * K;
        const T* q = query + (dst[e] * H + h) * K;
        const T s = source[e * H + h];
        vec v[P], r[P];
        R::load_values(value + (src[e] * H + h) * V, V, v, P);
        for (int p = 0; p < P; ++p) r[p] = vec{};
        for (int64_t i = 0; i < K; ++i) {
          // row i: the source term, then each earlier state's row (its P vectors in one pass)
          const vec sk = R::splat(s * k[i]);
          vec c[P];
          for (int p = 0; p < P; ++p) c[p] = sk * v[p];
          for (int64_t l = line_ptr[e]; l < line_ptr[e + 1]; ++l) {
            const vec t = R::splat(transition[l * H + h]);
            const T* earlier = states + (line_in[l] * H + h) * K * Vp + i * Vp;
            for (int p = 0; p < P; ++p) c[p] += t * R::load(earlier + p * W);
          }
          // after every product: an infinite key or transition times a zero lane is NaN
          c[P - 1] = R::keep(c[P - 1], mask);
          const vec qi = R::splat(q[i]);
          for (int p = 0; p < P; ++p) {
            R::store(C + i * Vp + p * W, c[p]);
            r[p] += qi * c[p];
          }
        }
        const vec m = R::splat(mark[e * H + h]);
        for (int p = 0; p < P; ++p) r[p] *= m;
        R::store_values(readout + (e * H + h) * V, V, r);
      }
    }
  }
};

template <typename T, int W, int P>
struct BackwardRows {
  static void run(T* states, const T* __restrict__ query, const T* __restrict__ key, const T* __restrict__ value,
                  const T* __restrict__ source, const T* __restrict__ mark, const T* __restrict__ out_grad,
                  const T* __restrict__ transition, const int64_t* src, const int64_t* dst, const int64_t* line_out,
                  const int64_t* line_ptr, T* __restrict__ transition_grad, T* __restrict__ query_part,
                  T* __restrict__ key_part, T* __restrict__ value_part, T* __restrict__ source_grad,
                  T* __restrict__ mark_grad, int64_t begin, int64_t end, int64_t H, int64_t K, int64_t V) {
    using R = Rows<T, W, P>;
    using vec = typename R::vec;
    constexpr int64_t Vp = P * W;
    const int64_t groups = (K + W - 1) / W;  // row sums are formed W rows at a time
    const auto mask = R::last_piece_mask(V);
    std::vector<vec> scratch(2 * K * P + 2 * groups * W + 4 * groups);  // the eight arrays below
    vec* C = scratch.data();
    vec* G = C + K * P;
    vec* gv = G + K * P;                // [groups W]: G_i v, rows past K zero
    vec* cg = gv + groups * W;          // [groups W]: C_i g
    vec* kv = cg + groups * W;          // [groups]: the key, zeros past K
    vec* qv = kv + groups;              // [groups]: the query
    vec* Gv = qv + groups;              // [groups]
    vec* Cg = Gv + groups;              // [groups]
    for (int64_t e = begin; e < end; ++e) {
      for (int64_t h = 0; h < H; ++h) {
        T* slot = states + (e * H + h) * K * Vp;
        const T* q = query + (dst[e] * H + h) * K;
        const T* k = key + (src[e] * H + h) * K;
        const T m = mark[e * H + h], s = source[e * H + h];
        vec g[P], v[P], value_sum[P];
        R::load_values(out_grad + (dst[e] * H + h) * V, V, g, P);
        R::load_values(value + (src[e] * H + h) * V, V, v, P);
        for (int p = 0; p < P; ++p) value_sum[p] = vec{};
        for (int64_t i = 0; i < K; ++i) {
          const vec mq = R::splat(m * q[i]);
          for (int p = 0; p < P; ++p) {
            C[i * P + p] = R::load(slot + i * Vp + p * W);
            G[i * P + p] = mq * g[p];
          }
        }
        for (int64_t l = line_ptr[e]; l < line_ptr[e + 1]; ++l) {
          const vec t = R::splat(transition[l * H + h]);
          const T* later = states + (line_out[l] * H + h) * K * Vp;
          vec dot = vec{};
          for (int64_t x = 0; x < K * P; ++x) {
            const vec row = R::load(later + x * W);
            dot += row * C[x];
            G[x] += t * row;
          }
          transition_grad[l * H + h] = R::sum(dot);
        }
        for (int64_t i = 0; i < K; ++i) {
          // lanes past V back to zero after every product (an infinite query or transition times zero)
          G[i * P + P - 1] = R::keep(G[i * P + P - 1], mask);
          const vec ki = R::splat(k[i]);
          gv[i] = G[i * P] * v[0];
          cg[i] = C[i * P] * g[0];
          for (int p = 1; p < P; ++p) {
            gv[i] += G[i * P + p] * v[p];
            cg[i] += C[i * P + p] * g[p];
          }
          for (int p = 0; p < P; ++p) {
            value_sum[p] += ki * G[i * P + p];
            R::store(slot + i * Vp + p * W, G[i * P + p]);
          }
        }
        for (int64_t i = K; i < groups * W; ++i) gv[i] = cg[i] = vec{};
        // (G v)_i and (C g)_i, W rows at a time: the key and query gradients, and the source (k . G v) and
        // mark (q . C g) ones
        R::load_values(k, K, kv, groups);
        R::load_values(q, K, qv, groups);
        vec source_dot = vec{}, mark_dot = vec{};
        for (int64_t b = 0; b < groups; ++b) {
          Gv[b] = R::row_sums(gv + b * W);
          Cg[b] = R::row_sums(cg + b * W);
          source_dot += kv[b] * Gv[b];
          mark_dot += qv[b] * Cg[b];
          Gv[b] *= R::splat(s);
          Cg[b] *= R::splat(m);
        }
        for (int p = 0; p < P; ++p) value_sum[p] *= R::splat(s);
        R::store_values(key_part + (e * H + h) * K, K, Gv);
        R::store_values(query_part + (e * H + h) * K, K, Cg);
        R::store_values(value_part + (e * H + h) * V, V, value_sum);
        source_grad[e * H + h] = R::sum(source_dot);
        mark_grad[e * H + h] = R::sum(mark_dot);
      }
    }
  }
};

template <typename T>
struct RowLayout {
  static constexpr int WIDE = VECTOR_BYTES / sizeof(T);
  static constexpr int NARROW = std::min<int>(WIDE, 32 / sizeof(T));
  // lanes per vector for rows of V values (0: no row kernels for V)
  static int lanes(int64_t V) {
    if (V <= 0) return 0;  // no values: the plain loops, which do nothing per row
    if (V % WIDE == 0 && V <= MAX_PIECES * WIDE) return WIDE;
    if (V <= MAX_PIECES * NARROW) return NARROW;
    if (V <= MAX_PIECES * WIDE) return WIDE;
    return 0;
  }
};

// The backward pass of square states (K == V == L, L in 8, 16, 32, 64): BackwardRows' work with every
// size known to the compiler and the states held in local arrays, which measured a third faster (16 x 16
// states on 64 peptides). Their forward pass is ForwardRows': a square kernel measured no faster there.
template <typename T, int L>
void backward_square(T* states, const T* __restrict__ query, const T* __restrict__ key,
                     const T* __restrict__ value, const T* __restrict__ source, const T* __restrict__ mark,
                     const T* __restrict__ out_grad, const T* __restrict__ transition, const int64_t* src,
                     const int64_t* dst, const int64_t* line_out, const int64_t* line_ptr,
                     T* __restrict__ transition_grad, T* __restrict__ query_part, T* __restrict__ key_part,
                     T* __restrict__ value_part, T* __restrict__ source_grad, T* __restrict__ mark_grad,
                     int64_t begin, int64_t end, int64_t H) {
  constexpr int W = std::min<int>(L, RowLayout<T>::WIDE), P = L / W;
  using S = Rows<T, W, P>;
  using vec = typename S::vec;
  vec C[L][P], G[L][P], gv[L], cg[L];
  for (int64_t e = begin; e < end; ++e) {
    for (int64_t h = 0; h < H; ++h) {
      T* slot = states + (e * H + h) * L * L;
      const T* q = query + (dst[e] * H + h) * L;
      const T* k = key + (src[e] * H + h) * L;
      const T m = mark[e * H + h], s = source[e * H + h];
      vec g[P], v[P], value_sum[P];
      for (int p = 0; p < P; ++p) {
        g[p] = S::load(out_grad + (dst[e] * H + h) * L + p * W);
        v[p] = S::load(value + (src[e] * H + h) * L + p * W);
        value_sum[p] = vec{};
      }
      for (int i = 0; i < L; ++i) {
        const vec mq = S::splat(m * q[i]);
        for (int p = 0; p < P; ++p) {
          C[i][p] = S::load(slot + i * L + p * W);
          G[i][p] = mq * g[p];
        }
      }
      for (int64_t l = line_ptr[e]; l < line_ptr[e + 1]; ++l) {
        const vec t = S::splat(transition[l * H + h]);
        const T* later = states + (line_out[l] * H + h) * L * L;
        vec dot = vec{};
        for (int i = 0; i < L; ++i) {
          for (int p = 0; p < P; ++p) {
            const vec row = S::load(later + i * L + p * W);
            dot += row * C[i][p];
            G[i][p] += t * row;
          }
        }
        transition_grad[l * H + h] = S::sum(dot);
      }
      for (int i = 0; i < L; ++i) {
        const vec ki = S::splat(k[i]);
        gv[i] = G[i][0] * v[0];
        cg[i] = C[i][0] * g[0];
        for (int p = 1; p < P; ++p) {
          gv[i] += G[i][p] * v[p];
          cg[i] += C[i][p] * g[p];
        }
        for (int p = 0; p < P; ++p) {
          value_sum[p] += ki * G[i][p];
          S::store(slot + i * L + p * W, G[i][p]);
        }
      }
      // (G v)_i and (C g)_i, W rows at a time: the key and query gradients, and the source (k . G v) and
      // mark (q . C g) ones
      vec Gv[P], Cg[P];
      for (int p = 0; p < P; ++p) {
        Gv[p] = S::row_sums(gv + p * W);
        Cg[p] = S::row_sums(cg + p * W);
        S::store(key_part + (e * H + h) * L + p * W, S::splat(s) * Gv[p]);
        S::store(query_part + (e * H + h) * L + p * W, S::splat(m) * Cg[p]);
        S::store(value_part + (e * H + h) * L + p * W, S::splat(s) * value_sum[p]);
      }
      vec kv[P], qv[P];
      for (int p = 0; p < P; ++p) {
        kv[p] = S::load(k + p * W);
        qv[p] = S::load(q + p * W);
      }
      vec source_dot = kv[0] * Gv[0], mark_dot = qv[0] * Cg[0];
      for (int p = 1; p < P; ++p) {
        source_dot += kv[p] * Gv[p];
        mark_dot += qv[p] * Cg[p];
      }
      source_grad[e * H + h] = S::sum(source_dot);
      mark_grad[e * H + h] = S::sum(mark_dot);
    }
  }
}
template <template <typename, int, int> class Kernel, typename T, int W, typename Call>
void run_pieces(int64_t pieces, Call call) {
  switch (pieces) {
    case 1: return call(Kernel<T, W, 1>::run);
    case 2: return call(Kernel<T, W, 2>::run);
    case 3: return call(Kernel<T, W, 3>::run);
    default: return call(Kernel<T, W, 4>::run);
  }
}

// Runs call(kernel) with Kernel's row form for rows of V values; false where there is none (V too wide).
template <template <typename, int, int> class Kernel, typename T, typename Call>
bool run_rows(int64_t V, Call call) {
  const int W = RowLayout<T>::lanes(V);
  if (W == 0) return false;
  if (W == RowLayout<T>::WIDE) {
    run_pieces<Kernel, T, RowLayout<T>::WIDE>((V + W - 1) / W, call);
  } else {
    run_pieces<Kernel, T, RowLayout<T>::NARROW>((V + W - 1) / W, call);
  }
  return true;
}

// Runs call(kernel) with the square kernel for L = V in 8, 16, 32, 64; false for other V.
template <typename T, typename Call, typename K8, typename K16, typename K32, typename K64>
bool run_square(int64_t V, Call call, K8 k8, K16 k16, K32 k32, K64 k64) {
  switch (V) {
    case 8: call(k8); return true;
    case 16: call(k16); return true;
    case 32: call(k32); return true;
    case 64: call(k64); return true;
    default: return false;
  }
}
#endif

// The stored length of a cell state's rows of V values of `item_size` bytes: padded to whole vectors where
// the row kernels run, V where the loops for any size do.
int64_t state_row_width(int64_t V, int64_t item_size) {
#ifdef PLSTM_VECTOR_ROWS
  const int W = item_size == 4 ? RowLayout<float>::lanes(V) : RowLayout<double>::lanes(V);
  if (W > 0) return (V + W - 1) / W * W;
#endif
  return V;
}

// Writes the cell states into `states` ([E, H, K, V], contiguous, any content) and returns the readouts.
torch::Tensor sweep_forward(torch::Tensor states, torch::Tensor query, torch::Tensor key, torch::Tensor value,
                            torch::Tensor source, torch::Tensor transition, torch::Tensor mark,
                            torch::Tensor src, torch::Tensor dst, torch::Tensor line_in, torch::Tensor line_ptr,
                            std::vector<int64_t> level_ptr) {
  const int64_t E = src.size(0), H = query.size(1), K = query.size(2), V = value.size(2);
  TORCH_CHECK(states.is_contiguous() && states.dtype() == query.dtype() &&
                  states.numel() == E * H * K * state_row_width(V, query.element_size()),
              "sweep_forward: states must be a contiguous [E, H, K, state_row_width(V)] tensor of the query's dtype");
  auto readout = torch::empty({E, H, V}, query.options());
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "sweep_forward", [&] {
    for (size_t level = 0; level + 1 < level_ptr.size(); ++level) {
      at::parallel_for(level_ptr[level], level_ptr[level + 1], 8, [&](int64_t begin, int64_t end) {
        auto call = [&](auto kernel, auto... sizes) {
          kernel(query.data_ptr<scalar_t>(), key.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(),
                 source.data_ptr<scalar_t>(), transition.data_ptr<scalar_t>(), mark.data_ptr<scalar_t>(),
                 src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), line_in.data_ptr<int64_t>(),
                 line_ptr.data_ptr<int64_t>(), states.data_ptr<scalar_t>(), readout.data_ptr<scalar_t>(), begin, end,
                 H, sizes...);
        };
#ifdef PLSTM_VECTOR_ROWS
        if (run_rows<ForwardRows, scalar_t>(V, [&](auto kernel) { call(kernel, K, V); })) return;
#endif
        call(forward_edges<scalar_t>, K, V);
      });
    }
  });
  return readout;
}

// The direct term D_n (q_n . k_n) v_n of every node and head (one row r = n * H + h), and its gradients,
// in one pass each; the same order of operations as common.direct_term and direct_term_grads.
template <typename T>
void direct_rows(const T* q, const T* k, const T* v, const T* direct, T* out, int64_t begin, int64_t end,
                 int64_t K, int64_t V) {
  for (int64_t r = begin; r < end; ++r) {
    T qk = 0;
    for (int64_t i = 0; i < K; ++i) qk += q[r * K + i] * k[r * K + i];
    const T c = direct[r] * qk;
    for (int64_t j = 0; j < V; ++j) out[r * V + j] = c * v[r * V + j];
  }
}

torch::Tensor direct_forward(torch::Tensor query, torch::Tensor key, torch::Tensor value, torch::Tensor direct) {
  const int64_t R = query.size(0) * query.size(1), K = query.size(2), V = value.size(2);
  auto out = torch::empty({query.size(0), query.size(1), V}, query.options());
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "direct_forward", [&] {
    at::parallel_for(0, R, 256, [&](int64_t begin, int64_t end) {
      direct_rows<scalar_t>(query.data_ptr<scalar_t>(), key.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(),
                            direct.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), begin, end, K, V);
    });
  });
  return out;
}

template <typename T>
void direct_grad_rows(const T* q, const T* k, const T* v, const T* direct, const T* g, T* gq, T* gk, T* gv,
                      T* gd, int64_t begin, int64_t end, int64_t K, int64_t V) {
  for (int64_t r = begin; r < end; ++r) {
    T qk = 0, vg = 0;
    for (int64_t i = 0; i < K; ++i) qk += q[r * K + i] * k[r * K + i];
    for (int64_t j = 0; j < V; ++j) vg += v[r * V + j] * g[r * V + j];
    const T w = direct[r] * vg, c = direct[r] * qk;
    for (int64_t i = 0; i < K; ++i) {
      gq[r * K + i] = w * k[r * K + i];
      gk[r * K + i] = w * q[r * K + i];
    }
    for (int64_t j = 0; j < V; ++j) gv[r * V + j] = c * g[r * V + j];
    gd[r] = qk * vg;
  }
}

std::vector<torch::Tensor> direct_backward(torch::Tensor query, torch::Tensor key, torch::Tensor value,
                                           torch::Tensor direct, torch::Tensor out_grad) {
  const int64_t R = query.size(0) * query.size(1), K = query.size(2), V = value.size(2);
  auto gq = torch::empty_like(query), gk = torch::empty_like(key), gv = torch::empty_like(value);
  auto gd = torch::empty_like(direct);
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "direct_backward", [&] {
    at::parallel_for(0, R, 256, [&](int64_t begin, int64_t end) {
      direct_grad_rows<scalar_t>(query.data_ptr<scalar_t>(), key.data_ptr<scalar_t>(),
                                 value.data_ptr<scalar_t>(), direct.data_ptr<scalar_t>(),
                                 out_grad.data_ptr<scalar_t>(), gq.data_ptr<scalar_t>(), gk.data_ptr<scalar_t>(),
                                 gv.data_ptr<scalar_t>(), gd.data_ptr<scalar_t>(), begin, end, K, V);
    });
  });
  return {gq, gk, gv, gd};
}

// out[index[e]] += rows[e] for every edge, in edge order (one thread: the edges of a node may be anywhere),
// rows of H * X contiguous values: the readouts added at their nodes, and the per-edge gradient parts.
void add_rows(torch::Tensor out, torch::Tensor index, torch::Tensor rows) {
  const int64_t E = index.size(0), width = rows.numel() / std::max<int64_t>(E, 1);
  TORCH_CHECK(out.is_contiguous() && rows.is_contiguous() && out.dtype() == rows.dtype() &&
                  out.numel() % std::max<int64_t>(width, 1) == 0,
              "add_rows: contiguous tensors of one dtype expected");
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "add_rows", [&] {
    scalar_t* __restrict__ target = out.data_ptr<scalar_t>();
    const scalar_t* __restrict__ source = rows.data_ptr<scalar_t>();
    const int64_t* at = index.data_ptr<int64_t>();
    for (int64_t e = 0; e < E; ++e) {
      scalar_t* __restrict__ t = target + at[e] * width;
      const scalar_t* __restrict__ r = source + e * width;
      for (int64_t x = 0; x < width; ++x) t[x] += r[x];
    }
  });
}

// The RMS norm of every head's output (rows r = n * H + h of V channels, head h = r % H) and its gradient,
// in one pass each (MultiHeadRMSNorm): y = (x * rstd) * w_h with rstd = 1 / sqrt(mean(x^2) + eps), and
// dx = rstd * (gy w - xhat * mean(gy w xhat)) with xhat = x * rstd.
template <typename T>
void norm_rows(const T* x, const T* w, T eps, T* y, T* rstd, int64_t begin, int64_t end, int64_t H, int64_t V) {
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = x + r * V;
    const T* wh = w + (r % H) * V;
    T squares = 0;
    for (int64_t j = 0; j < V; ++j) squares += xr[j] * xr[j];
    const T scale = T(1) / std::sqrt(squares / T(V) + eps);
    rstd[r] = scale;
    for (int64_t j = 0; j < V; ++j) y[r * V + j] = (xr[j] * scale) * wh[j];
  }
}

std::vector<torch::Tensor> norm_forward(torch::Tensor x, torch::Tensor weight, double eps) {
  const int64_t H = weight.size(0), V = weight.size(1), R = x.numel() / V;
  auto y = torch::empty_like(x);
  auto rstd = torch::empty({R}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "norm_forward", [&] {
    at::parallel_for(0, R, 256, [&](int64_t begin, int64_t end) {
      norm_rows<scalar_t>(x.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(), static_cast<scalar_t>(eps),
                          y.data_ptr<scalar_t>(), rstd.data_ptr<scalar_t>(), begin, end, H, V);
    });
  });
  return {y, rstd};
}

// Rows are cut into fixed blocks, each with its own partial weight gradient: the sum does not depend on
// the number of threads.
constexpr int64_t NORM_BLOCK = 1024;

template <typename T>
void norm_grad_block(const T* x, const T* w, const T* rstd, const T* gy, T* gx, T* gw, int64_t begin, int64_t end,
                     int64_t H, int64_t V) {
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = x + r * V;
    const T* gr = gy + r * V;
    const T* wh = w + (r % H) * V;
    T* gwh = gw + (r % H) * V;
    const T scale = rstd[r];
    T dot = 0;
    for (int64_t j = 0; j < V; ++j) {
      const T xhat = xr[j] * scale;
      dot += gr[j] * wh[j] * xhat;
      gwh[j] += gr[j] * xhat;
    }
    dot /= T(V);
    for (int64_t j = 0; j < V; ++j) gx[r * V + j] = scale * (gr[j] * wh[j] - (xr[j] * scale) * dot);
  }
}

std::vector<torch::Tensor> norm_backward(torch::Tensor x, torch::Tensor weight, torch::Tensor rstd,
                                         torch::Tensor out_grad) {
  const int64_t H = weight.size(0), V = weight.size(1), R = x.numel() / V;
  const int64_t blocks = (R + NORM_BLOCK - 1) / NORM_BLOCK;
  auto gx = torch::empty_like(x);
  auto partial = torch::zeros({blocks, H, V}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "norm_backward", [&] {
    at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
      for (int64_t b = first; b < last; ++b) {
        norm_grad_block<scalar_t>(x.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(), rstd.data_ptr<scalar_t>(),
                                  out_grad.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(),
                                  partial.data_ptr<scalar_t>() + b * H * V, b * NORM_BLOCK,
                                  std::min(R, (b + 1) * NORM_BLOCK), H, V);
      }
    });
  });
  return {gx, partial.sum(0)};
}

// Backward, from the last level down. The gradient state G_e of an edge is written over its cell state
// C_e once the edge is done with C_e: edges read only their own C and the G of later edges, so the
// states buffer holds C for the edges still to visit and G for those visited, and the backward pass
// allocates no second [E, H, K, V] buffer.
template <typename T>
void backward_edges(T* states, const T* __restrict__ query, const T* __restrict__ key,
                    const T* __restrict__ value, const T* __restrict__ source, const T* __restrict__ mark,
                    const T* __restrict__ out_grad, const T* __restrict__ transition, const int64_t* src,
                    const int64_t* dst, const int64_t* line_out, const int64_t* line_ptr,
                    T* __restrict__ transition_grad, T* __restrict__ query_part, T* __restrict__ key_part,
                    T* __restrict__ value_part, T* __restrict__ source_grad, T* __restrict__ mark_grad,
                    int64_t begin, int64_t end, int64_t H, int64_t K, int64_t V) {
  std::vector<T> buffer(K * V);
  T* __restrict__ G = buffer.data();
  for (int64_t e = begin; e < end; ++e) {
    for (int64_t h = 0; h < H; ++h) {
      T* slot = states + (e * H + h) * K * V;
      const T* C = slot;
      const T* q = query + (dst[e] * H + h) * K;
      const T* g = out_grad + (dst[e] * H + h) * V;
      const T m = mark[e * H + h];
      for (int64_t i = 0; i < K; ++i) {
        const T mq = m * q[i];
        for (int64_t j = 0; j < V; ++j) G[i * V + j] = mq * g[j];
      }
      for (int64_t l = line_ptr[e]; l < line_ptr[e + 1]; ++l) {
        const T t = transition[l * H + h];
        const T* __restrict__ later = states + (line_out[l] * H + h) * K * V;
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
      const T s = source[e * H + h];
      T* qp = query_part + (e * H + h) * K;
      T* kp = key_part + (e * H + h) * K;
      T* vp = value_part + (e * H + h) * V;
      T source_dot = 0, mark_dot = 0;
      for (int64_t j = 0; j < V; ++j) vp[j] = 0;
      for (int64_t i = 0; i < K; ++i) {
        T row_v = 0, row_g = 0;
        const T ki = k[i];
#pragma omp simd reduction(+ : row_v, row_g)
        for (int64_t j = 0; j < V; ++j) {
          row_v += G[i * V + j] * v[j];
          row_g += C[i * V + j] * g[j];
          vp[j] += ki * G[i * V + j];
        }
        // (G v)_i and (C g)_i: the key and query gradients, and the source (k . G v) and mark (q . C g) ones
        kp[i] = s * row_v;
        qp[i] = m * row_g;
        source_dot += ki * row_v;
        mark_dot += q[i] * row_g;
      }
      for (int64_t j = 0; j < V; ++j) vp[j] *= s;
      source_grad[e * H + h] = source_dot;
      mark_grad[e * H + h] = mark_dot;
      for (int64_t x = 0; x < K * V; ++x) slot[x] = G[x];
    }
  }
}

std::vector<torch::Tensor> sweep_backward(torch::Tensor states, torch::Tensor query, torch::Tensor key,
                                          torch::Tensor value, torch::Tensor source, torch::Tensor mark,
                                          torch::Tensor out_grad, torch::Tensor transition, torch::Tensor src,
                                          torch::Tensor dst, torch::Tensor line_out, torch::Tensor line_ptr,
                                          std::vector<int64_t> level_ptr) {
  const int64_t E = src.size(0), H = query.size(1), K = query.size(2), V = value.size(2);
  TORCH_CHECK(states.is_contiguous() && states.dtype() == query.dtype() &&
                  states.numel() == E * H * K * state_row_width(V, query.element_size()),
              "sweep_backward: states must be the forward pass's");
  auto transition_grad = torch::empty({line_out.size(0), H}, query.options());
  auto query_part = torch::empty({E, H, K}, query.options());
  auto key_part = torch::empty({E, H, K}, query.options());
  auto value_part = torch::empty({E, H, V}, query.options());
  auto source_grad = torch::empty({E, H}, query.options());
  auto mark_grad = torch::empty({E, H}, query.options());
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "sweep_backward", [&] {
    for (int64_t level = static_cast<int64_t>(level_ptr.size()) - 2; level >= 0; --level) {
      at::parallel_for(level_ptr[level], level_ptr[level + 1], 8, [&](int64_t begin, int64_t end) {
        // kernel(inputs, outputs, begin, end, H) for square states, (..., H, K, V) for the others
        auto call = [&](auto kernel, auto... sizes) {
          kernel(states.data_ptr<scalar_t>(), query.data_ptr<scalar_t>(), key.data_ptr<scalar_t>(),
                 value.data_ptr<scalar_t>(), source.data_ptr<scalar_t>(), mark.data_ptr<scalar_t>(),
                 out_grad.data_ptr<scalar_t>(), transition.data_ptr<scalar_t>(), src.data_ptr<int64_t>(),
                 dst.data_ptr<int64_t>(), line_out.data_ptr<int64_t>(), line_ptr.data_ptr<int64_t>(),
                 transition_grad.data_ptr<scalar_t>(), query_part.data_ptr<scalar_t>(), key_part.data_ptr<scalar_t>(),
                 value_part.data_ptr<scalar_t>(), source_grad.data_ptr<scalar_t>(), mark_grad.data_ptr<scalar_t>(),
                 begin, end, H, sizes...);
        };
#ifdef PLSTM_VECTOR_ROWS
        if (K == V && run_square<scalar_t>(V, call, backward_square<scalar_t, 8>, backward_square<scalar_t, 16>,
                                           backward_square<scalar_t, 32>, backward_square<scalar_t, 64>))
          return;
        if (run_rows<BackwardRows, scalar_t>(V, [&](auto kernel) { call(kernel, K, V); })) return;
#endif
        call(backward_edges<scalar_t>, K, V);
      });
    }
  });
  return {transition_grad, query_part, key_part, value_part, source_grad, mark_grad};
}
"""

# Bump with every change of SOURCE: torch caches builds by name.
EXTENSION_NAME = "plstm_geometric_level_sweep_v18"


def compile_flags():
    """The extension's name suffix and C++ flags for this CPU. ``-fopenmp-simd`` lets the marked dot
    products be vectorised (it reorders their sums, nothing else); AVX2 and FMA are enabled only where torch
    itself detects them, AVX-512 likewise for the square-state kernels' vectors (the compiler's own
    vectorisation stays at 256 bits, which measured faster for the general loops), and the build is cached
    under a name that says so."""
    capability = torch.backends.cpu.get_cpu_capability()
    flags = ["-O3", "-fopenmp-simd"]
    if capability == "AVX512":
        return "_avx512", [*flags, "-mavx2", "-mfma", "-mavx512f", "-mprefer-vector-width=256"]
    if capability == "AVX2":
        return "_avx2", [*flags, "-mavx2", "-mfma"]
    return "_base", flags


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
                    functions=[
                        "sweep_forward",
                        "sweep_backward",
                        "state_row_width",
                        "add_rows",
                        "direct_forward",
                        "direct_backward",
                        "norm_forward",
                        "norm_backward",
                    ],
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


def loaded_extension():
    """The compiled loops if a sweep has already built or loaded them in this process, else ``None``
    (never starts a build)."""
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


def forward_states(extension, plan: PLSTMPlan, query, key, value, source, transition, mark):
    r"""The cell states ``[E, H, K, V]`` (in a buffer of the workspace) and the marked readouts
    :math:`M_e q_{\mathrm{dst}}^\top C_e` ``[E, H, V]``, edges in schedule order."""
    # rows of values padded to whole vectors where the loops hold them so (state_row_width in SOURCE)
    width = extension.state_row_width(value.size(2), value.element_size())
    states = WORKSPACE.take((plan.num_edges, query.size(1), query.size(2), width), query.dtype)
    marked_readout = extension.sweep_forward(
        states,
        query,
        key,
        value,
        source,
        transition,
        mark,
        plan.edge_src,
        plan.edge_dst,
        plan.line_in_by_out,
        plan.line_ptr_by_out,
        plan.edge_level_ptr,
    )
    return states, marked_readout


class CompiledSweep(torch.autograd.Function):
    """Inputs contiguous and in schedule order (edges sorted by level, transitions sorted by ``e_out``).

    The backward loops write the gradient states over the saved cell states (see ``SOURCE``), so a second
    backward pass through the same graph (``retain_graph=True``) recomputes the states first."""

    @staticmethod
    def forward(ctx, query, key, value, source, transition, mark, direct, plan, recompute_states, extension):
        states, marked_readout = forward_states(extension, plan, query, key, value, source, transition, mark)
        out = extension.direct_forward(query, key, value, direct)
        extension.add_rows(out, plan.edge_dst, marked_readout)
        ctx.plan, ctx.extension, ctx.recompute_states = plan, extension, recompute_states
        ctx.states_overwritten = False
        saved = (query, key, value, source, transition, mark, direct)
        keep_states = any(ctx.needs_input_grad[:7]) and not recompute_states
        if not keep_states:
            WORKSPACE.give(states)
        ctx.save_for_backward(*saved, *((states,) if keep_states else ()))
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
        if len(ctx.saved_tensors) == 7 or ctx.states_overwritten:
            states = forward_states(extension, plan, query, key, value, source, transition, mark)[0]
        else:
            states = ctx.saved_tensors[7]
            ctx.states_overwritten = True
        src, dst = plan.edge_src, plan.edge_dst
        out_grad = out_grad.contiguous()
        transition_grad_by_in, query_part, key_part, value_part, source_grad, mark_grad = extension.sweep_backward(
            states,
            query,
            key,
            value,
            source,
            mark,
            out_grad,
            transition[plan.line_by_out_for_in].contiguous(),
            src,
            dst,
            plan.line_out_by_in,
            plan.line_ptr_by_in,
            plan.edge_level_ptr,
        )
        # the buffer now holds gradient states that nothing reads: the next sweep may write into it
        WORKSPACE.give(states)
        query_grad, key_grad, value_grad, direct_grad = extension.direct_backward(query, key, value, direct, out_grad)
        extension.add_rows(query_grad, dst, query_part)
        extension.add_rows(key_grad, src, key_part)
        extension.add_rows(value_grad, src, value_part)
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
