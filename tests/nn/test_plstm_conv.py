import io

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.utils import to_undirected

from benchmarks.data import graphs_of
from plstm_geometric.functional import plstm_dag_naive
from plstm_geometric.graph import dagify, line_graph
from plstm_geometric.nn import PLSTMConv
from plstm_geometric.nn.plstm_conv import constrain_transition
from plstm_geometric.testing import nci_batch

MODES = ["P", "D", "unconstrained"]
# MultiHeadRMSNorm normalises in float32 even for float64 inputs, so float64 layers agree to float32 precision.
CLOSE = dict(rtol=1e-5, atol=1e-6)


def small_graph():
    """An undirected graph with a ring (several paths between nodes) and a pendant node, both directions stored."""
    edge_index = torch.tensor([[0, 1, 2, 3, 0, 3, 4, 2], [1, 2, 3, 4, 4, 5, 5, 6]])
    return to_undirected(edge_index), 7


def randomize_gates(conv):
    # At initialisation the gate weights are small; large ones make every gate depend on its inputs.
    with torch.no_grad():
        conv.lin_gate.weight.normal_(0, 0.5)
        conv.lin_edge_gate.weight.normal_(0, 0.5)


def naive_forward(conv, x, edge_index, edge_attr=None):
    """The layer written out from its docstring: explicit concatenations, per-group loop for P mode."""
    heads, k, v = conv.heads, conv.qk_channels, conv.v_channels
    num_nodes = x.size(0)
    if conv.reverse:
        dag = dagify(edge_index, num_nodes, return_edge_id=True)
        dag_edge_index, edge_id = dag[0].flip(0), dag[1]
    else:
        dag_edge_index, edge_id = dagify(edge_index, num_nodes, return_edge_id=True)
    line_edge_index = line_graph(dag_edge_index, num_nodes, "D" if conv.mode == "D" else "P")
    src, dst = dag_edge_index
    e_in, e_out = line_edge_index
    features = edge_attr[edge_id] if conv.edge_dim is not None else torch.cat([x[src], x[dst]], dim=1)
    node_weight = conv.lin_gate.weight.view(4, heads, -1)
    node_bias = conv.lin_gate.bias.view(4, heads)
    edge_weight = conv.lin_edge_gate.weight.view(4, heads, -1)
    source = torch.sigmoid(
        torch.cat([x[src], features], 1) @ torch.cat([node_weight[0], edge_weight[0]], 1).T + node_bias[0]
    )
    mark = torch.sigmoid(
        torch.cat([x[dst], features], 1) @ torch.cat([node_weight[1], edge_weight[1]], 1).T + node_bias[1]
    )
    direct = torch.sigmoid(x @ node_weight[3].T + node_bias[3])
    transition_input = torch.cat([features[e_in], features[e_out], x[dst[e_in]]], 1)
    transition = transition_input @ torch.cat([edge_weight[2], edge_weight[3], node_weight[2]], 1).T + node_bias[2]
    if conv.mode == "P":
        group = e_in if conv.normalize_over == "outgoing" else e_out
        normalized = torch.empty_like(transition)
        for edge in group.unique():
            members = group == edge
            normalized[members] = transition[members] / (conv.alpha + transition[members].abs().sum(0))
        transition = normalized
    elif conv.mode == "D":
        transition = torch.tanh(transition)
    query = conv.lin_query(x).view(num_nodes, heads, k) / k**0.5
    key = conv.lin_key(x).view(num_nodes, heads, k)
    value = conv.lin_value(x).view(num_nodes, heads, v)
    out = plstm_dag_naive(query, key, value, source, transition, mark, direct, dag_edge_index, line_edge_index)
    return conv.lin_out(conv.norm(out).reshape(num_nodes, -1))


@pytest.mark.parametrize("mode", MODES)
def test_shape_and_repr(mode):
    edge_index, num_nodes = small_graph()
    conv = PLSTMConv(8, 12, heads=3, mode=mode)
    out = conv(torch.randn(num_nodes, 8), edge_index)
    assert out.shape == (num_nodes, 12)
    assert torch.isfinite(out).all()
    assert str(conv) == f"PLSTMConv(8, 12, heads=3, mode={mode})"
    assert str(PLSTMConv(8, 12, heads=3, reverse=True)) == "PLSTMConv(8, 12, heads=3, mode=P, reverse=True)"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_the_equations(mode, edge_dim, reverse):
    edge_index, num_nodes = small_graph()
    conv = PLSTMConv(5, 6, heads=2, mode=mode, edge_dim=edge_dim, qk_channels=3, reverse=reverse).double()
    randomize_gates(conv)
    x = torch.randn(num_nodes, 5, dtype=torch.float64)
    edge_attr = torch.randn(edge_index.size(1), 3, dtype=torch.float64) if edge_dim else None
    torch.testing.assert_close(conv(x, edge_index, edge_attr), naive_forward(conv, x, edge_index, edge_attr), **CLOSE)


def test_incoming_normalization_matches_the_equations():
    edge_index, num_nodes = small_graph()
    conv = PLSTMConv(5, 6, heads=2, normalize_over="incoming", alpha=0.5).double()
    randomize_gates(conv)
    x = torch.randn(num_nodes, 5, dtype=torch.float64)
    torch.testing.assert_close(conv(x, edge_index), naive_forward(conv, x, edge_index), **CLOSE)


def test_p_mode_bound_is_strict():
    edge_index, num_nodes = small_graph()
    dag = dagify(edge_index, num_nodes)
    line_edge_index = line_graph(dag, num_nodes, "P")
    preactivation = 1e4 * torch.randn(line_edge_index.size(1), 3, dtype=torch.float64)
    for normalize_over, group in (("outgoing", line_edge_index[0]), ("incoming", line_edge_index[1])):
        transition = constrain_transition(preactivation, line_edge_index, dag.size(1), "P", 1.0, normalize_over)
        total = torch.zeros(dag.size(1), 3, dtype=torch.float64).index_add_(0, group, transition.abs())
        assert (total < 1).all() and total.max() > 0.99


@pytest.mark.parametrize("edge_dim", [None, 4])
def test_gradients_reach_every_parameter(edge_dim):
    edge_index, num_nodes = small_graph()
    for mode in MODES:
        conv = PLSTMConv(6, 8, heads=2, mode=mode, edge_dim=edge_dim)
        edge_attr = torch.randn(edge_index.size(1), 4) if edge_dim else None
        out = conv(torch.randn(num_nodes, 6), edge_index, edge_attr)
        (out * torch.randn_like(out)).sum().backward()
        for name, parameter in conv.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, (mode, name)


def test_dag_input_is_used_as_given():
    edge_index, num_nodes = small_graph()
    dag_edge_index, edge_id = dagify(edge_index, num_nodes, return_edge_id=True)
    conv = PLSTMConv(5, 6, heads=2, edge_dim=2).double()
    randomize_gates(conv)
    x = torch.randn(num_nodes, 5, dtype=torch.float64)
    edge_attr = torch.randn(edge_index.size(1), 2, dtype=torch.float64)
    # The undirected graph is oriented by dagify; its DAG given directly (with the matching edge
    # attributes, and shuffled) is used as it is: both must agree.
    perm = torch.randperm(dag_edge_index.size(1))
    out_dag = conv(x, dag_edge_index[:, perm], edge_attr[edge_id][perm])
    torch.testing.assert_close(conv(x, edge_index, edge_attr), out_dag, **CLOSE)
    # Forcing the undirected reading of the DAG gives the same orientation too.
    conv.orientation = "undirected"
    torch.testing.assert_close(conv(x, dag_edge_index, edge_attr[edge_id]), out_dag, **CLOSE)


def test_order_and_reverse():
    edge_index, num_nodes = small_graph()
    forward_conv = PLSTMConv(5, 6, heads=2).double()
    randomize_gates(forward_conv)
    reverse_conv = PLSTMConv(5, 6, heads=2, reverse=True).double()
    reverse_conv.load_state_dict(forward_conv.state_dict())
    x = torch.randn(num_nodes, 5, dtype=torch.float64)
    descending = -torch.arange(num_nodes)
    torch.testing.assert_close(reverse_conv(x, edge_index), forward_conv(x, edge_index, order=descending), **CLOSE)
    assert not torch.allclose(reverse_conv(x, edge_index), forward_conv(x, edge_index))


def test_precomputed_structure_gives_the_same_result():
    edge_index, num_nodes = small_graph()
    conv = PLSTMConv(5, 6, heads=2, mode="D", reverse=True)
    x = torch.randn(num_nodes, 5)
    structure = conv.structure(edge_index, num_nodes)
    assert torch.equal(conv(x, edge_index, structure=structure), conv(x, edge_index))


def test_cycle_raises():
    conv = PLSTMConv(4, 4, heads=1)
    cycle = torch.tensor([[0, 1, 2], [1, 2, 0]])
    with pytest.raises(ValueError, match="cycle"):
        conv(torch.randn(3, 4), cycle)
    # An undirected graph read as a DAG has two-cycles.
    edge_index, num_nodes = small_graph()
    with pytest.raises(ValueError, match="cycle"):
        PLSTMConv(4, 4, heads=1, orientation="dag")(torch.randn(num_nodes, 4), edge_index)


def test_bad_arguments_raise():
    edge_index, num_nodes = small_graph()
    x = torch.randn(num_nodes, 4)
    with pytest.raises(ValueError, match="mode"):
        PLSTMConv(4, 4, mode="X")
    with pytest.raises(ValueError, match="alpha"):
        PLSTMConv(4, 4, alpha=0.0)
    with pytest.raises(ValueError, match="v_channels"):
        PLSTMConv(4, 6, heads=4)
    with pytest.raises(ValueError, match="edge_attr"):
        PLSTMConv(4, 4, heads=1)(x, edge_index, torch.randn(edge_index.size(1), 2))
    with pytest.raises(ValueError, match="edge_attr"):
        PLSTMConv(4, 4, heads=1, edge_dim=2)(x, edge_index)
    with pytest.raises(TypeError, match="edge_attr"):
        PLSTMConv(4, 4, heads=1, edge_dim=2)(x, edge_index, torch.ones(edge_index.size(1), 2, dtype=torch.long))
    with pytest.raises(ValueError, match="x"):
        PLSTMConv(5, 4, heads=1)(x, edge_index)
    p_structure = PLSTMConv(4, 4, heads=1).structure(edge_index, num_nodes)
    with pytest.raises(ValueError, match="structure"):
        PLSTMConv(4, 4, heads=1, mode="D")(x, edge_index, structure=p_structure)
    with pytest.raises(ValueError, match="order"):
        PLSTMConv(4, 4, heads=1)(x, edge_index, order=torch.arange(num_nodes), structure=p_structure)


@pytest.mark.parametrize("mode", ["P", "D"])
def test_batch_equals_per_graph_on_molecules(mode):
    batch = nci_batch(40)
    graphs = batch.to_data_list()
    conv = PLSTMConv(9, 8, heads=2, mode=mode, edge_dim=3).double()
    randomize_gates(conv)
    batch_out = conv(batch.x.double(), batch.edge_index, batch.edge_attr.double())
    per_graph = torch.cat([conv(g.x.double(), g.edge_index, g.edge_attr.double()) for g in graphs])
    torch.testing.assert_close(batch_out, per_graph, **CLOSE)


def test_state_dict_round_trip():
    edge_index, num_nodes = small_graph()
    conv = PLSTMConv(5, 6, heads=2, edge_dim=3)
    randomize_gates(conv)
    buffer = io.BytesIO()
    torch.save(conv.state_dict(), buffer)
    buffer.seek(0)
    restored = PLSTMConv(5, 6, heads=2, edge_dim=3)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    x, edge_attr = torch.randn(num_nodes, 5), torch.randn(edge_index.size(1), 3)
    assert torch.equal(restored(x, edge_index, edge_attr), conv(x, edge_index, edge_attr))


def test_reset_parameters_restores_the_initialisation():
    conv = PLSTMConv(5, 8, heads=4, mode="D")
    bias = conv.lin_gate.bias.view(4, 4)
    assert torch.all(bias[0] == -4) and torch.all(bias[1] == -4) and torch.all(bias[3] == -6)
    torch.testing.assert_close(torch.tanh(bias[2]), torch.linspace(0.9, 0.999, 4), rtol=1e-5, atol=1e-5)
    randomize_gates(conv)
    conv.reset_parameters()
    # gate weights are small: pre-activations stay within about 0.1 of the bias for unit-variance inputs
    assert 0 < conv.lin_gate.weight.std() * 5**0.5 < 0.2 and 0 < conv.lin_edge_gate.weight.std() * 10**0.5 < 0.2
    p_conv = PLSTMConv(5, 8, heads=4, mode="P", alpha=0.5)
    transition = p_conv.lin_gate.bias.view(4, 4)[2]
    torch.testing.assert_close(transition / (0.5 + transition), torch.linspace(0.9, 0.999, 4), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["P", "D"])
def test_bf16_autocast_close_to_fp32(mode):
    batch = nci_batch(8)
    conv = PLSTMConv(9, 16, heads=4, mode=mode, edge_dim=3)
    randomize_gates(conv)
    x, edge_attr = batch.x.float(), batch.edge_attr.float()
    head_outputs = []  # o_n [N, H, V] before the per-head RMS norm
    conv.norm.register_forward_hook(lambda module, inputs, output: head_outputs.append(inputs[0].float()))
    reference = conv(x, batch.edge_index, edge_attr)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x, batch.edge_index, edge_attr)
    assert out.dtype == torch.bfloat16
    reference_heads, bf16_heads = head_outputs
    # The pLSTM output agrees to bf16 precision (8 mantissa bits) overall.
    assert (bf16_heads - reference_heads).norm() / reference_heads.norm() < 2e-2
    # The per-head RMS norm scales every head to unit size: a head output that is nearly cancelled (e.g.
    # a source node's d (q . k) v with q . k ~ 0) turns its rounding error into an O(1) change, so the
    # layer's output is only close in aggregate (0.5-5% over seeds), not elementwise.
    assert (out.float() - reference).norm() / reference.norm() < 0.1


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
def test_cuda_matches_cpu(mode):
    # NCI molecules from the benchmarks' tensor files: GPU machines may have neither RDKit nor OGB.
    batch: Batch = Batch.from_data_list(graphs_of("nci1024", 16))
    conv = PLSTMConv(9, 16, heads=4, mode=mode, edge_dim=3)
    randomize_gates(conv)
    x, edge_attr = batch.x.float(), batch.edge_attr.float()
    reference = conv(x, batch.edge_index, edge_attr)
    conv_cuda = conv.to("cuda")
    out = conv_cuda(x.cuda(), batch.edge_index.cuda(), edge_attr.cuda())
    torch.testing.assert_close(out.cpu(), reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("start", [(0.6, 0.95), (0.9, 0.999), (0.5, 0.5)])
def test_transitions_start_where_asked(mode, start):
    # On a path every edge has one successor: with the gate weights at zero the transition of head h is the
    # h-th of `heads` values evenly spaced over `transition_start`.
    heads = 4
    conv = PLSTMConv(4, 8, heads=heads, mode=mode, transition_start=start)
    assert conv.transition_start == start
    with torch.no_grad():
        conv.lin_gate.weight.zero_()
    pre = conv.lin_gate.bias.view(4, heads)[2].double().expand(3, heads)  # three line edges of a 5-node path
    line_edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    transition = constrain_transition(pre, line_edge_index, 4, mode, conv.alpha, conv.normalize_over)
    expected = torch.linspace(*start, heads, dtype=torch.float64).expand(3, heads)
    torch.testing.assert_close(transition, expected, rtol=1e-6, atol=1e-6)


def test_transition_start_is_checked():
    with pytest.raises(TypeError, match="transition_start"):
        PLSTMConv(4, 4, transition_start=0.9)
    with pytest.raises(TypeError, match="transition_start"):
        PLSTMConv(4, 4, transition_start=("a", 0.9))
    for bad in ((0.9, 1.0), (0.5, 0.4), (-0.1, 0.5)):
        with pytest.raises(ValueError, match="transition_start"):
            PLSTMConv(4, 4, transition_start=bad)
    PLSTMConv(4, 4, mode="unconstrained", transition_start=(0.5, 1.5))  # no bound without a constraint
