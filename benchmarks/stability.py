r"""Numerical stability of the pLSTM modes on long and path-rich DAGs, in float32.

Run ``python -m benchmarks.stability``. For each graph (a 10,000-node chain, a 100 x 100
grid DAG, random DAGs of 30,000 and 100,000 nodes) and mode (P, D, unconstrained) the gates are built as
:class:`~plstm_geometric.nn.PLSTMConv` builds them, with the worst case pushed in: source gates open
(pre-activation +10), unit-norm keys and values (every source term has norm 1) and transition
pre-activations of +10 (``"+10"``) or of random sign (``"+-10"``). It reports

* the largest cell-state norm :math:`\max_n \| \sum_{e \to n} C_e \|_F` read out through
  :func:`~plstm_geometric.functional.plstm_dag` itself (mark 1, direct 0, queries the unit vectors);
* the triangle-inequality bound :math:`\mu` of that norm, the same recurrence on magnitudes
  (:math:`\mu_e = \sum |T_{e' \to e}| \mu_{e'} + 1`), also run through the op;
* the paper's bound: P: the sum of the source contributions (the number of edges: each source term has
  norm at most 1 and the outgoing transitions of an edge sum to less than 1 in absolute value, so no
  edge receives more than the sources upstream of it); D: the multitree has one path between two edges
  and :math:`|\tanh| < 1`, so the state is bounded by the number of upstream edges instead of the number
  of paths; unconstrained: none;
* whether the outputs and the gradients of a random readout (w.r.t. every input, the transition
  pre-activations included) are finite.
"""

import argparse
import math
import time

import torch
from torch import Tensor

from plstm_geometric.functional import plstm_dag
from plstm_geometric.graph.structure import PLSTMStructure, line_graph_mode_of, orient_edges, plstm_structure
from plstm_geometric.nn.plstm_conv import constrain_transition
from plstm_geometric.testing import chain_dag, grid_dag, random_dag

MODES = ("P", "D", "unconstrained")
PREACTIVATION = 10.0


def unit_rows(shape, generator: torch.Generator) -> Tensor:
    rows = torch.randn(*shape, generator=generator)
    return rows / rows.norm(dim=-1, keepdim=True)


def transition_preactivation(num_line_edges: int, heads: int, sign: str, generator: torch.Generator) -> Tensor:
    preactivation = torch.full((num_line_edges, heads), PREACTIVATION)
    if sign == "+-10":
        flip = torch.rand(num_line_edges, heads, generator=generator) < 0.5
        preactivation[flip] = -PREACTIVATION
    return preactivation


def incoming_state_norms(
    structure: PLSTMStructure, key: Tensor, value: Tensor, source: Tensor, transition: Tensor
) -> Tensor:
    r"""``[N, H]`` Frobenius norms of :math:`\sum_{e \to n} C_e`, read out through ``plstm_dag``.

    Every head is replicated :math:`K` times with the query set to unit vector :math:`j` in copy :math:`j`
    (mark 1, direct 0), so copy :math:`j` outputs row :math:`j` of the incoming state.
    """
    num_nodes, heads, qk_channels = key.shape

    def replicate(tensor: Tensor) -> Tensor:
        return tensor.repeat_interleave(qk_channels, dim=1)

    basis = torch.eye(qk_channels, dtype=key.dtype).repeat(heads, 1)  # [H * K, K]
    query = basis.expand(num_nodes, -1, -1)
    num_edges = structure.edge_index.size(1)
    with torch.no_grad():
        rows = plstm_dag(
            query,
            replicate(key),
            replicate(value),
            replicate(source),
            replicate(transition),
            key.new_ones(num_edges, heads * qk_channels),
            key.new_zeros(num_nodes, heads * qk_channels),
            structure.edge_index,
            structure.line_edge_index,
            plan=structure.plan,
        )
    # float64 for the norm: squares of float32 states near 1e20 would overflow on their own.
    return rows.double().view(num_nodes, heads, qk_channels, -1).pow(2).sum((-1, -2)).sqrt()


def magnitude_bound(structure: PLSTMStructure, source: Tensor, transition: Tensor) -> Tensor:
    r"""``[N, H]`` bound :math:`\sum_{e \to n} \mu_e` with :math:`\mu_e = \sum |T| \mu_{e'} + |S_e|`: the
    recurrence on magnitudes, run through ``plstm_dag`` with scalar states (keys, values, queries 1)."""
    num_nodes, heads = structure.num_nodes, source.size(1)
    ones = source.new_ones(num_nodes, heads, 1)
    with torch.no_grad():
        bound = plstm_dag(
            ones,
            ones,
            ones,
            source.abs(),
            transition.abs(),
            source.new_ones(source.shape),
            source.new_zeros(num_nodes, heads),
            structure.edge_index,
            structure.line_edge_index,
            plan=structure.plan,
        )
    return bound.squeeze(-1)


def finite_gradients(
    structure: PLSTMStructure,
    mode: str,
    key: Tensor,
    value: Tensor,
    source_preactivation: Tensor,
    preactivation: Tensor,
    generator: torch.Generator,
) -> tuple[bool, bool, float]:
    """Output finite?, all gradients finite?, largest gradient magnitude; for a random readout."""
    num_nodes, heads, _ = key.shape
    inputs = {
        "query": torch.randn(key.shape, generator=generator),
        "key": key.clone(),
        "value": value.clone(),
        "source_preactivation": source_preactivation.clone(),
        "transition_preactivation": preactivation.clone(),
        "mark": torch.full((structure.edge_index.size(1), heads), 0.5),
        "direct": torch.full((num_nodes, heads), 0.5),
    }
    for tensor in inputs.values():
        tensor.requires_grad_(True)
    transition = constrain_transition(
        inputs["transition_preactivation"], structure.line_edge_index, structure.edge_index.size(1), mode
    )
    out = plstm_dag(
        inputs["query"],
        inputs["key"],
        inputs["value"],
        torch.sigmoid(inputs["source_preactivation"]),
        transition,
        inputs["mark"],
        inputs["direct"],
        structure.edge_index,
        structure.line_edge_index,
        plan=structure.plan,
    )
    out_finite = bool(torch.isfinite(out).all())
    readout = torch.randn(out.shape, generator=generator)
    (out * readout).sum().backward()
    grads = [tensor.grad for tensor in inputs.values()]
    grads_finite = all(bool(torch.isfinite(grad).all()) for grad in grads)
    largest = max(float(grad.abs().max()) for grad in grads)
    return out_finite, grads_finite, largest


def measure(
    edge_index: Tensor,
    num_nodes: int,
    mode: str,
    sign: str,
    heads: int = 2,
    qk_channels: int = 4,
    v_channels: int = 4,
    seed: int = 0,
) -> dict[str, object]:
    """All figures of one (graph, mode, transition sign) case, in float32."""
    generator = torch.Generator().manual_seed(seed)
    dag_edge_index, edge_id = orient_edges(edge_index, num_nodes, orientation="dag")
    structure = plstm_structure(dag_edge_index, edge_id, num_nodes, line_graph_mode_of(mode))
    num_edges, num_line_edges = structure.edge_index.size(1), structure.line_edge_index.size(1)
    key = unit_rows((num_nodes, heads, qk_channels), generator)
    value = unit_rows((num_nodes, heads, v_channels), generator)
    source_preactivation = torch.full((num_edges, heads), PREACTIVATION)
    preactivation = transition_preactivation(num_line_edges, heads, sign, generator)
    source = torch.sigmoid(source_preactivation)
    transition = constrain_transition(preactivation, structure.line_edge_index, num_edges, mode)

    norms = incoming_state_norms(structure, key, value, source, transition)
    bound = magnitude_bound(structure, source, transition)
    out_finite, grads_finite, largest_grad = finite_gradients(
        structure, mode, key, value, source_preactivation, preactivation, generator
    )
    return {
        "num_edges": num_edges,
        "num_line_edges": num_line_edges,
        "max_state_norm": float(norms.max()) if bool(torch.isfinite(norms).all()) else math.inf,
        "triangle_bound": float(bound.max()),
        "paper_bound": float(source.sum(0).max()) if mode in ("P", "D") else math.inf,
        "output_finite": out_finite,
        "gradients_finite": grads_finite,
        "max_gradient": largest_grad,
    }


def graphs(scale: float = 1.0) -> dict[str, tuple[Tensor, int]]:
    """The benchmark graphs: a chain, a grid and two random DAGs (30,000 and 100,000 nodes)."""
    chain_nodes = max(2, int(10_000 * scale))
    side = max(2, int(round(100 * math.sqrt(scale))))
    cases = {
        f"chain({chain_nodes})": (chain_dag(chain_nodes), chain_nodes),
        f"grid({side}x{side})": (grid_dag(side, side), side * side),
    }
    for nodes in (30_000, 100_000):
        nodes = max(2, int(nodes * scale))
        cases[f"random_dag({nodes})"] = (random_dag(nodes), nodes)
    return cases


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="shrink all graphs (e.g. 0.01 for a quick run)")
    parser.add_argument("--signs", nargs="+", default=["+10", "+-10"], choices=["+10", "+-10"])
    args = parser.parse_args(argv)
    header = (
        f"{'graph':<20} {'mode':<14} {'T~':<5} {'max |state|':>12} {'triangle':>11} {'paper':>9} "
        f"{'out ok':>6} {'grad ok':>7} {'max |grad|':>11} {'s':>6}"
    )
    print(header)
    for name, (edge_index, num_nodes) in graphs(args.scale).items():
        for mode in MODES:
            for sign in args.signs:
                start = time.perf_counter()
                try:
                    row = measure(edge_index, num_nodes, mode, sign)
                except ValueError as error:
                    print(f"{name:<20} {mode:<14} {sign:<5} not run: {error}")
                    continue
                print(
                    f"{name:<20} {mode:<14} {sign:<5} {row['max_state_norm']:>12.4g} {row['triangle_bound']:>11.4g} "
                    f"{row['paper_bound']:>9.4g} {str(row['output_finite']):>6} {str(row['gradients_finite']):>7} "
                    f"{row['max_gradient']:>11.4g} {time.perf_counter() - start:>6.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
