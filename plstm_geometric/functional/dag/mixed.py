r"""The DAG op on a batch split by graph size: small graphs through the parallel form, the others through
the backend chosen for them alone, outputs put back together.

One large molecule in a batch of small ones would otherwise move the whole batch off the parallel form.
The graphs of a batch are independent (disjoint components), so each subset can run with its own
backend and the result is the same as one call on the whole batch.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ...graph.dag import weak_components
from ...graph.plan import PLSTMPlan, build_plan


@dataclass
class BatchPart:
    """The nodes, edges and line edges of some components of a batch, with the plan of that sub-batch.

    ``edge_id`` and ``line_id`` index the batch's ``edge_index`` and ``line_edge_index`` columns.
    """

    node_id: Tensor
    edge_id: Tensor
    line_id: Tensor
    plan: PLSTMPlan


@dataclass
class MixedSplit:
    """The batch as a small part (components of at most ``max_edges`` edges) and a large part; either
    may be ``None`` when empty. ``node_order`` restores batch order from ``cat([small, large])``."""

    small: BatchPart | None
    large: BatchPart | None
    node_order: Tensor


def batch_part(plan: PLSTMPlan, node_mask: Tensor) -> BatchPart | None:
    if not bool(node_mask.any()):
        return None
    device = node_mask.device
    src = plan.edge_index[0]
    node_id = node_mask.nonzero().view(-1)
    edge_id = node_mask[src].nonzero().view(-1)
    line_id = node_mask[src[plan.line_edge_index[0]]].nonzero().view(-1)
    node_relabel = torch.full((plan.num_nodes,), -1, dtype=torch.long, device=device)
    node_relabel[node_id] = torch.arange(node_id.numel(), device=device)
    edge_relabel = torch.full((plan.num_edges,), -1, dtype=torch.long, device=device)
    edge_relabel[edge_id] = torch.arange(edge_id.numel(), device=device)
    part_plan = build_plan(
        node_relabel[plan.edge_index[:, edge_id]],
        edge_relabel[plan.line_edge_index[:, line_id]],
        node_id.numel(),
        node_level=plan.node_level[node_id],
    )
    return BatchPart(node_id, edge_id, line_id, part_plan)


def mixed_split(plan: PLSTMPlan, max_edges: int) -> MixedSplit:
    """Splits the batch of ``plan`` into components with at most ``max_edges`` edges and the rest; the
    split is cached on the plan."""
    cached = getattr(plan, "cached_mixed_split", None)
    if cached is not None and cached[0] == max_edges:
        return cached[1]
    _, component = torch.unique(weak_components(plan.edge_index, plan.num_nodes), return_inverse=True)
    num_components = int(component.max()) + 1 if plan.num_nodes else 0
    edges_per = torch.bincount(component[plan.edge_index[0]], minlength=num_components)
    small_node = (edges_per <= max_edges)[component]
    small, large = batch_part(plan, small_node), batch_part(plan, ~small_node)
    parts = [part.node_id for part in (small, large) if part is not None]
    node_order = torch.argsort(torch.cat(parts)) if parts else torch.empty(0, dtype=torch.long)
    split = MixedSplit(small, large, node_order)
    plan.cached_mixed_split = (max_edges, split)
    return split


def plstm_dag_mixed(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source: Tensor,
    transition: Tensor,
    mark: Tensor,
    direct: Tensor,
    split: MixedSplit,
    backends: list[str],
    run: Callable[..., Tensor],
) -> Tensor:
    """Runs the small part with ``backends[0]`` and the large part with ``backends[1]`` through ``run``
    (``run(backend, query, key, value, source, transition, mark, direct, plan)``) and reassembles."""
    outputs = []
    for part, backend in zip((split.small, split.large), backends):
        if part is None:
            continue
        outputs.append(
            run(
                backend,
                query[part.node_id],
                key[part.node_id],
                value[part.node_id],
                source[part.edge_id],
                transition[part.line_id],
                mark[part.edge_id],
                direct[part.node_id],
                part.plan,
            )
        )
    return torch.cat(outputs)[split.node_order]
