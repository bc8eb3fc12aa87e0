"""Value checks run once per exact set of tensors (``plstm_geometric.checks.VALIDATION_STAMPS``): repeated
layers and calls on the same tensors skip them, while another tensor, or the same one modified in place,
is checked in full."""

import gc
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch_geometric.data import Batch, Data

from plstm_geometric import checks
from plstm_geometric.checks import VALIDATION_STAMPS, ValidationStamps, check_edge_index
from plstm_geometric.functional import plstm_dag
from plstm_geometric.graph import build_plan, line_graph
from plstm_geometric.models import PLSTMGraphModel
from plstm_geometric.nn import PLSTMConv
from plstm_geometric.transforms import PreparePLSTM


class CountSyncs(TorchDispatchMode):
    """Counts host syncs: ``int(t)``, ``bool(t)``, ``t.item()`` and ``t.tolist()`` all read a scalar."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def syncs(function) -> int:
    with CountSyncs() as counter:
        function()
    return counter.count


PATH = torch.tensor([[0, 1, 2], [1, 2, 3]])
# the same number of nodes and edges, another graph
OTHER = torch.tensor([[0, 2, 1], [1, 3, 3]])


def test_a_structure_is_checked_once_per_edge_index():
    conv = PLSTMConv(4, 4, heads=2, orientation="dag", backend="levels")
    edge_index = PATH.clone()
    structure = conv.structure(edge_index, 4)
    x = torch.randn(4, 4)
    first = syncs(lambda: conv(x, edge_index, structure=structure))
    second = syncs(lambda: conv(x, edge_index, structure=structure))
    assert second < first
    # a second layer sharing the structure skips the check as well
    other_layer = PLSTMConv(4, 4, heads=2, orientation="dag", backend="levels")
    assert syncs(lambda: other_layer(x, edge_index, structure=structure)) == second


def test_validate_once_off_checks_every_call(monkeypatch):
    monkeypatch.setattr(checks, "VALIDATE_ONCE", False)
    conv = PLSTMConv(4, 4, heads=2, orientation="dag", backend="levels")
    edge_index = PATH.clone()
    structure = conv.structure(edge_index, 4)
    x = torch.randn(4, 4)
    first = syncs(lambda: conv(x, edge_index, structure=structure))
    assert syncs(lambda: conv(x, edge_index, structure=structure)) == first


def test_another_edge_index_of_the_same_shape_still_raises():
    conv = PLSTMConv(4, 4, heads=2, orientation="dag")
    structure = conv.structure(PATH, 4)
    x = torch.randn(4, 4)
    conv(x, PATH, structure=structure)
    conv(x, PATH, structure=structure)
    with pytest.raises(ValueError, match="^structure: .*another graph"):
        conv(x, OTHER, structure=structure)
    # an equal copy is another tensor: checked in full, and accepted
    conv(x, PATH.clone(), structure=structure)


def test_edge_index_modified_in_place_after_a_checked_call_raises():
    conv = PLSTMConv(4, 4, heads=2, orientation="dag")
    edge_index = PATH.clone()
    structure = conv.structure(edge_index.clone(), 4)
    x = torch.randn(4, 4)
    conv(x, edge_index, structure=structure)
    conv(x, edge_index, structure=structure)
    edge_index[0, 1] = 0  # 1 -> 2 becomes 0 -> 2: in range, another graph
    with pytest.raises(ValueError, match="^structure: .*another graph"):
        conv(x, edge_index, structure=structure)
    # also through a view, which shares the version counter
    edge_index = PATH.clone()
    conv(x, edge_index, structure=structure)
    edge_index[1].fill_(3)
    with pytest.raises(ValueError, match="^structure: .*another graph"):
        conv(x, edge_index, structure=structure)


def test_structure_modified_in_place_after_a_checked_call_raises():
    conv = PLSTMConv(4, 4, heads=2, orientation="dag")
    structure = conv.structure(PATH, 4)
    x = torch.randn(4, 4)
    conv(x, PATH, structure=structure)
    structure.edge_id[0] = 1  # DAG edge 0 -> 1 now points at column 1 -> 2
    with pytest.raises(ValueError, match="^structure: .*another graph"):
        conv(x, PATH, structure=structure)


def test_prepared_batch_is_checked_once_and_a_modified_one_again():
    graphs = [
        Data(x=torch.randn(n, 4), edge_index=torch.stack([torch.arange(n - 1), torch.arange(1, n)])) for n in (4, 5, 6)
    ]
    graphs = [Data(x=g.x, edge_index=torch.cat([g.edge_index, g.edge_index.flip(0)], 1)) for g in graphs]
    batch = Batch.from_data_list(PreparePLSTM().prepare_many(graphs))
    first = syncs(batch.check_plstm_structure)
    assert first > 0
    assert syncs(batch.check_plstm_structure) == 0
    batch.edge_index[:, [0, 1]] = batch.edge_index[:, [1, 0]]  # reordered after PreparePLSTM
    with pytest.raises(ValueError, match="transform changed edge_index"):
        batch.check_plstm_structure()
    with pytest.raises(ValueError, match="transform changed edge_index"):
        batch.check_plstm_structure()  # a failed check leaves no stamp


def test_model_checks_each_structure_once_per_batch():
    graphs = [
        Data(x=torch.randn(n, 4), edge_index=torch.stack([torch.arange(n - 1), torch.arange(1, n)])) for n in (4, 5, 6)
    ]
    graphs = [Data(x=g.x, edge_index=torch.cat([g.edge_index, g.edge_index.flip(0)], 1)) for g in graphs]
    batch = Batch.from_data_list(PreparePLSTM().prepare_many(graphs))
    structures = PLSTMGraphModel(8, 1, num_layers=4, encoder="linear", in_channels=4).structures(batch)
    conv = PLSTMConv(4, 4, heads=2)
    full_checks = []
    for _ in range(2):  # with four blocks, every structure is used by two layers
        full_checks.append(0)
        for structure in structures.values():
            conv.reverse, conv.mode = structure.reverse, structure.line_graph_mode
            check = conv._check_structure
            full_checks[-1] += syncs(lambda: check(structure, batch.num_nodes, None, batch.edge_index)) > 0  # noqa: B023
    # The forward P and D structures share their DAG tensors (one check covers both); each reverse one
    # has its own reversed copy. The second layer of each structure checks nothing.
    assert full_checks == [3, 0]


def test_plan_with_an_equal_copy_modified_in_place_raises():
    a = PATH
    la = line_graph(a, 4)
    plan = build_plan(a, la, 4)
    g = torch.Generator().manual_seed(0)
    inputs = dict(
        query=torch.randn(4, 1, 2, generator=g),
        key=torch.randn(4, 1, 2, generator=g),
        value=torch.randn(4, 1, 2, generator=g),
        source=torch.rand(3, 1, generator=g),
        transition=torch.rand(la.size(1), 1, generator=g),
        mark=torch.rand(3, 1, generator=g),
        direct=torch.rand(4, 1, generator=g),
    )
    copy = a.clone()
    plstm_dag(**inputs, edge_index=copy, line_edge_index=la, plan=plan)
    assert syncs(lambda: plstm_dag(**inputs, edge_index=copy, line_edge_index=la, plan=plan, backend="levels")) == 0
    copy[0, 1] = 0
    with pytest.raises(ValueError, match="^plan: .*another graph"):
        plstm_dag(**inputs, edge_index=copy, line_edge_index=la, plan=plan)


def test_range_check_is_stamped_per_bound_and_version():
    edge_index = PATH.clone()
    check_edge_index(edge_index, 4)
    assert syncs(lambda: check_edge_index(edge_index, 4)) == 0
    with pytest.raises(ValueError, match=r"^edge_index: expected node indices in \[0, 3\)"):
        check_edge_index(edge_index, 3)  # another bound is another check
    edge_index[1, 2] = 7
    with pytest.raises(ValueError, match=r"^edge_index: expected node indices in \[0, 4\)"):
        check_edge_index(edge_index, 4)


def test_inference_tensors_are_checked_every_time():
    with torch.inference_mode():
        edge_index = PATH.clone()
        check_edge_index(edge_index, 4)
        assert not VALIDATION_STAMPS.passed("range", edge_index, 4)
        edge_index[1, 2] = 7  # inference tensors keep no version counter: a stamp could not see this
        with pytest.raises(ValueError, match="^edge_index: expected node indices"):
            check_edge_index(edge_index, 4)


def test_stamps_keep_no_tensor_alive_and_are_bounded():
    stamps = ValidationStamps(capacity=3)
    tensor = torch.arange(4)
    stamps.record("check", tensor, 4)
    assert stamps.passed("check", tensor, 4)
    assert not stamps.passed("check", tensor, 5)
    assert not stamps.passed("other", tensor, 4)
    reference = weakref.ref(tensor)
    del tensor
    gc.collect()
    assert reference() is None
    kept = [torch.arange(4) for _ in range(5)]
    for t in kept:
        stamps.record("check", t)
    assert len(stamps) == 3
    assert not stamps.passed("check", kept[0]) and stamps.passed("check", kept[-1])
    stamps.clear()
    assert len(stamps) == 0
    assert len(VALIDATION_STAMPS) <= VALIDATION_STAMPS.capacity
