"""PLSTMConv, PLSTMBlock and PLSTMGraphModel under torch.compile: with the structure built outside the
compiled call, no graph break (the sweep is one custom op, see plstm_geometric.nn.sweep_op) and no
recompile per batch shape; the structure is still checked at run time. And a clear refusal of torch.jit."""

import gc

import pytest
import torch
import torch._dynamo as dynamo
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from plstm_geometric.functional import plstm_dag
from plstm_geometric.models import PLSTMGraphModel
from plstm_geometric.nn import AtomEncoder, PLSTMBlock, PLSTMConv, sweep_op
from plstm_geometric.nn.sweep_op import COMPILED_SWEEP
from plstm_geometric.transforms import PreparePLSTM

# The Inductor backend takes minutes to compile on a small CPU; "aot_eager" traces the same graphs
# (forward and backward through AOTAutograd) without generating code, which is what this test checks.
BACKEND = "aot_eager"


def molecule_batch(sizes, channels=8, edge_dim=4):
    graphs = []
    for size in sizes:
        ring = torch.stack([torch.arange(size), (torch.arange(size) + 1) % size])
        edge_index = to_undirected(torch.cat([ring, torch.tensor([[0], [size // 2]])], 1), num_nodes=size)
        graphs.append(
            Data(
                x=torch.randn(size, channels),
                edge_index=edge_index,
                edge_attr=torch.randn(edge_index.size(1), edge_dim),
            )
        )
    return Batch.from_data_list(graphs)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    dynamo.reset()
    yield
    dynamo.reset()


def test_compile_matches_eager_without_recompiles():
    conv = PLSTMConv(8, 8, heads=2, edge_dim=4)
    compiled = torch.compile(conv, dynamic=True, backend=BACKEND)
    for index, sizes in enumerate([(5, 6), (4, 7, 9), (6, 6, 5, 8)]):
        batch = molecule_batch(sizes)
        structure = conv.structure(batch.edge_index, batch.num_nodes)
        x = batch.x.requires_grad_()
        # After the first batch, any recompilation (for example a guard on a batch's size) is an error.
        with dynamo.config.patch(error_on_recompile=index > 0):
            out = compiled(x, batch.edge_index, batch.edge_attr, structure=structure)
            (grad,) = torch.autograd.grad(out.square().sum(), x)
        expected = conv(x, batch.edge_index, batch.edge_attr, structure=structure)
        (expected_grad,) = torch.autograd.grad(expected.square().sum(), x)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precomputed", [True, False], ids=["structure", "no_structure"])
def test_compile_graph_breaks_bounded(precomputed):
    conv = PLSTMConv(8, 8, heads=2, edge_dim=4)
    batch = molecule_batch((5, 7))
    structure = conv.structure(batch.edge_index, batch.num_nodes) if precomputed else None
    explanation = dynamo.explain(conv)(batch.x, batch.edge_index, batch.edge_attr, structure=structure)
    # With a structure: none where torch has opaque objects (the sweep is a custom op), else one at the
    # sweep. Building the structure (integer work, host syncs) is one more.
    allowed = (0 if COMPILED_SWEEP else 1) if precomputed else 2
    assert explanation.graph_break_count <= allowed, explanation.break_reasons


def prepared_batch(sizes):
    return Batch.from_data_list(PreparePLSTM().prepare_many(molecule_batch(sizes).to_data_list()))


@pytest.mark.slow
@pytest.mark.skipif(not COMPILED_SWEEP, reason="needs a torch with opaque objects (torch._library.opaque_object)")
def test_block_and_model_compile_to_one_graph():
    # fullgraph=True: any graph break is an error. Block and model, forward and backward, equal to eager,
    # and a batch of other sizes runs the same graphs (error_on_recompile).
    block = PLSTMBlock(8, heads=2, edge_dim=4)
    model = PLSTMGraphModel(8, 1, num_layers=2, heads=2, encoder="linear", in_channels=8, edge_dim=4)
    compiled_block = torch.compile(block, dynamic=True, backend=BACKEND, fullgraph=True)
    compiled_model = torch.compile(model, dynamic=True, backend=BACKEND, fullgraph=True)
    for index, sizes in enumerate([(5, 6), (4, 7, 9)]):
        batch = prepared_batch(sizes)
        structures = model.structures(batch)
        block_inputs = (batch.x, batch.edge_index, batch.edge_attr)
        block_structures = dict(structure_p=structures[("P", False)], structure_d=structures[("D", False)])
        with dynamo.config.patch(error_on_recompile=index > 0):
            outs = (compiled_block(*block_inputs, **block_structures), compiled_model(batch, structures))
            grads = torch.autograd.grad(
                sum(out.square().sum() for out in outs), [*block.parameters(), *model.parameters()]
            )
        expected = (block(*block_inputs, **block_structures), model(batch))
        expected_grads = torch.autograd.grad(
            sum(out.square().sum() for out in expected), [*block.parameters(), *model.parameters()]
        )
        # float32 sums in other orders: eager runs the head norm as the compiled sweep's C++ loops, the
        # graph as inductor's fused reductions, and the norm scales up the rounding of small outputs
        torch.testing.assert_close(outs, expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(grads, expected_grads, rtol=1e-4, atol=1e-4)
    explanation = dynamo.explain(model)(batch, structures)
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.skipif(not COMPILED_SWEEP, reason="needs a torch with opaque objects (torch._library.opaque_object)")
def test_compiled_layer_still_checks_its_structure():
    # The checks move into the sweep op: they run at run time, on every call, as in eager mode.
    conv = PLSTMConv(4, 4, heads=2, orientation="dag")
    compiled = torch.compile(conv, dynamic=True, backend=BACKEND, fullgraph=True)
    path = torch.tensor([[0, 1, 2], [1, 2, 3]])
    structure = conv.structure(path, 4)
    x = torch.randn(4, 4)
    torch.testing.assert_close(compiled(x, path, structure=structure), conv(x, path, structure=structure))
    with pytest.raises(ValueError, match="^structure: .*another graph"):
        compiled(x, torch.tensor([[0, 2, 1], [1, 3, 3]]), structure=structure)
    edge_index = path.clone()
    compiled(x, edge_index, structure=structure)
    edge_index[0, 1] = 0  # modified in place after a checked call
    with pytest.raises(ValueError, match="^structure: .*another graph"):
        compiled(x, edge_index, structure=structure)
    with pytest.raises(ValueError, match="^structure: built for 4 nodes, but x has 5"):
        compiled(torch.randn(5, 4), torch.tensor([[0, 1, 2], [1, 2, 4]]), structure=structure)


@pytest.mark.skipif(not COMPILED_SWEEP, reason="needs a torch with opaque objects (torch._library.opaque_object)")
@pytest.mark.parametrize(
    "backend, recompute_states", [("levels", False), ("parallel", True), ("chains", True), ("mixed", False)]
)
def test_compiled_backends_match_eager(backend, recompute_states):
    conv = PLSTMConv(8, 8, heads=2, edge_dim=4, backend=backend, recompute_states=recompute_states)
    compiled = torch.compile(conv, dynamic=True, backend=BACKEND, fullgraph=True)
    batch = molecule_batch((5, 7, 9))
    structure = conv.structure(batch.edge_index, batch.num_nodes)
    x = batch.x.requires_grad_()
    inputs = [x, *conv.parameters()]
    out = compiled(x, batch.edge_index, batch.edge_attr, structure=structure)
    grads = torch.autograd.grad(out.square().sum(), inputs)
    expected = conv(x, batch.edge_index, batch.edge_attr, structure=structure)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads, torch.autograd.grad(expected.square().sum(), inputs), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not COMPILED_SWEEP, reason="needs a torch with opaque objects (torch._library.opaque_object)")
def test_compiled_backward_uses_the_forward_graph_and_frees_it(monkeypatch):
    # One sweep per training step, as in eager mode: the backward op differentiates the autograd graph the
    # forward op kept (its tape), which goes away with the compiled graph, backward pass or not.
    sweeps = []
    monkeypatch.setattr(sweep_op, "plstm_dag", lambda *args, **kwargs: sweeps.append(1) or plstm_dag(*args, **kwargs))
    conv = PLSTMConv(8, 8, heads=2, edge_dim=4)
    compiled = torch.compile(conv, dynamic=True, backend=BACKEND, fullgraph=True)
    batch = molecule_batch((5, 7))
    structure = conv.structure(batch.edge_index, batch.num_nodes)
    x = batch.x.requires_grad_()
    out = compiled(x, batch.edge_index, batch.edge_attr, structure=structure)
    assert len(sweep_op.TAPES) == 1
    out.square().sum().backward()
    assert len(sweeps) == 1 and not sweep_op.TAPES
    out = compiled(x, batch.edge_index, batch.edge_attr, structure=structure)
    assert len(sweep_op.TAPES) == 1
    del out
    gc.collect()
    assert not sweep_op.TAPES
    with torch.no_grad():
        compiled(x, batch.edge_index, batch.edge_attr, structure=structure)
    assert not sweep_op.TAPES


def test_compiled_encoder_checks_its_vocabulary_without_a_graph_break():
    encoder = AtomEncoder(8)
    x = torch.zeros(5, 9, dtype=torch.long)
    assert dynamo.explain(encoder)(x).graph_break_count == 0
    compiled = torch.compile(encoder, dynamic=True, backend=BACKEND, fullgraph=True)
    torch.testing.assert_close(compiled(x), encoder(x))
    x[2, 1] = 7
    with pytest.raises(ValueError, match=r"^x: expected column 1 in \[0, 4\], got values in \[0, 7\]"):
        compiled(x)


def test_jit_script_and_trace_refused_with_a_clear_error():
    conv = PLSTMConv(8, 8, heads=2)
    batch = molecule_batch((5,))
    with pytest.raises(RuntimeError, match="torch.compile"):
        torch.jit.script(conv)
    with pytest.raises(RuntimeError, match="torch.compile"):
        torch.jit.trace(conv, (batch.x, batch.edge_index))
