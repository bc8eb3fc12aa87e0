import numpy as np
import torch
from torch_geometric.data import Data

from benchmarks.influence import BINS, influence_by_distance, markdown
from plstm_geometric.models import PLSTMGraphModel


def path_graph(n: int, features: int = 3) -> Data:
    edge = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    return Data(x=torch.randn(n, features), edge_index=torch.cat([edge, edge.flip(0)], dim=1))


def exact_profile(model, graph, bins):
    """Mean Frobenius norm of the Jacobian blocks by hop distance on a path (distance = |u - v|), from the
    full Jacobian of the final node states with respect to the encoder's output."""
    model.eval()
    h0 = model.node_encoder(graph.x).detach()
    encoder = model.node_encoder

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return self.value

    fixed = Fixed()
    model.node_encoder = fixed

    def states(value):
        fixed.value = value
        captured = {}
        hook = model.norm.register_forward_hook(lambda m, i, out: captured.__setitem__("h", out))
        model(graph)
        hook.remove()
        return captured["h"]

    jacobian = torch.autograd.functional.jacobian(states, h0)  # [N, C, N, C]
    model.node_encoder = encoder
    norms = jacobian.pow(2).sum(dim=(1, 3)).sqrt()  # [target, source]
    n = graph.num_nodes
    distance = (torch.arange(n)[:, None] - torch.arange(n)[None, :]).abs()
    means = []
    for low, high in bins:
        mask = (distance >= low) & (distance <= high)
        means.append(float(norms[mask].mean()) if mask.any() else float("nan"))
    return np.array(means) / means[0]


def test_estimate_matches_the_exact_jacobian_profile():
    torch.manual_seed(0)
    graph = path_graph(9)
    model = PLSTMGraphModel(8, 2, 2, encoder="linear", in_channels=3, transition_start=(0.9, 0.99))
    bins = ((0, 0), (1, 2), (3, 5), (6, 8))
    estimate = influence_by_distance(model, [graph] * 1, targets_per_graph=24, projections=16, bins=bins)
    exact = exact_profile(model, graph, bins)
    assert estimate["influence"][0] == 1.0
    # a Monte-Carlo estimate over random targets and projections: within 35% of the exact profile
    np.testing.assert_allclose(estimate["influence"], exact, rtol=0.35)
    assert exact[-1] > 0  # pLSTM reaches the far end of the path in one forward + reverse pair of blocks


def test_pairs_are_counted_per_graph_and_rendered():
    torch.manual_seed(0)
    graphs = [path_graph(4), path_graph(7)]
    model = PLSTMGraphModel(8, 2, 2, encoder="linear", in_channels=3)
    profile = influence_by_distance(model, graphs, targets_per_graph=3, projections=1)
    # every target is paired with every node of its own graph only: 3 draws x (4 + 7) nodes
    assert sum(profile["pairs"]) == 3 * (4 + 7)
    assert profile["pairs"][0] == 3 * 2
    assert len(profile["influence"]) == len(BINS)
    text = markdown([{"run": "r", "state": "trained", "profile": profile}])
    assert text.count("\n") == 3 and "1-5 hops" in text
