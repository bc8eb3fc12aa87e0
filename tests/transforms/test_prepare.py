import warnings

import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.loader import DataLoader

from plstm_geometric.graph import dagify, line_graph, node_levels, reverse_dag
from plstm_geometric.nn import PLSTMConv
from plstm_geometric.testing import nci_batch
from plstm_geometric.transforms import PLSTMData, PreparePLSTM

LINE_KEYS = [
    "line_edge_index_p_forward",
    "line_edge_index_d_forward",
    "line_edge_index_p_reverse",
    "line_edge_index_d_reverse",
]


def molecules(count=40):
    return nci_batch(count).to_data_list()


class MoleculeDataset(InMemoryDataset):
    def __init__(self, root, graphs, pre_transform=None):
        self.graphs = graphs
        super().__init__(root, pre_transform=pre_transform)
        self.load(self.processed_paths[0])

    @property
    def processed_file_names(self):
        return ["data.pt"]

    def process(self):
        self.save([self.pre_transform(graph) for graph in self.graphs], self.processed_paths[0])


def test_fields_match_the_graph_functions():
    graph = molecules(3)[2]
    prepared = PreparePLSTM()(graph)
    assert isinstance(prepared, PLSTMData)
    dag_edge_index, edge_id = dagify(graph.edge_index, graph.num_nodes, return_edge_id=True)
    assert torch.equal(prepared.dag_edge_index, dag_edge_index)
    assert torch.equal(prepared.dag_edge_id, edge_id)
    for key in LINE_KEYS:
        mode, direction = key.split("_")[-2:]
        swept = reverse_dag(dag_edge_index) if direction == "reverse" else dag_edge_index
        assert torch.equal(prepared[key], line_graph(swept, graph.num_nodes, mode.upper())), key
    # the original attributes are kept unchanged
    assert torch.equal(prepared.edge_index, graph.edge_index) and torch.equal(prepared.x, graph.x)


def test_selected_modes_and_directions_only():
    prepared = PreparePLSTM(modes=("D",), directions=("reverse",))(molecules(1)[0])
    assert "line_edge_index_d_reverse" in prepared
    assert all(key not in prepared for key in LINE_KEYS if key != "line_edge_index_d_reverse")
    with pytest.raises(ValueError, match="PreparePLSTM"):
        prepared.plstm_structure("P", reverse=True)


def test_batching_offsets_edges_not_nodes():
    graphs = [PreparePLSTM()(graph) for graph in molecules(5)]
    batch = next(iter(DataLoader(graphs, batch_size=5)))
    dag_offset = edge_offset = node_offset = 0
    for i, graph in enumerate(graphs):
        num_dag_edges = graph.dag_edge_index.size(1)
        for key in LINE_KEYS:
            start = sum(g[key].size(1) for g in graphs[:i])
            part = batch[key][:, start : start + graph[key].size(1)]
            assert torch.equal(part, graph[key] + dag_offset), key
        part = batch.dag_edge_index[:, dag_offset : dag_offset + num_dag_edges]
        assert torch.equal(part, graph.dag_edge_index + node_offset)
        assert torch.equal(batch.dag_edge_id[dag_offset : dag_offset + num_dag_edges], graph.dag_edge_id + edge_offset)
        dag_offset += num_dag_edges
        edge_offset += graph.edge_index.size(1)
        node_offset += graph.num_nodes
    # batching then splitting gives the graphs back
    for graph, restored in zip(graphs, batch.to_data_list()):
        for key in ["dag_edge_index", "dag_edge_id", *LINE_KEYS]:
            assert torch.equal(graph[key], restored[key]), key


@pytest.mark.parametrize("mode", ["P", "D", "unconstrained"])
@pytest.mark.parametrize("reverse", [False, True])
def test_prepared_and_computed_structures_agree_through_the_loader(mode, reverse):
    # float64: batched and per-graph calls then agree to rounding (in float32 the unconstrained mode's
    # cancellations turn the last bits of differently blocked matrix products into 1e-5)
    graphs = molecules(40)
    conv = PLSTMConv(9, 8, heads=2, mode=mode, edge_dim=3, reverse=reverse).double()
    with torch.no_grad():
        conv.lin_gate.weight.normal_(0, 0.5)
        conv.lin_edge_gate.weight.normal_(0, 0.5)
    plain = next(iter(DataLoader(graphs, batch_size=40)))
    prepared = next(iter(DataLoader([PreparePLSTM()(graph) for graph in graphs], batch_size=40)))
    computed = conv(plain.x.double(), plain.edge_index, plain.edge_attr.double())
    structure = prepared.plstm_structure(mode, reverse)
    from_fields = conv(prepared.x.double(), prepared.edge_index, prepared.edge_attr.double(), structure=structure)
    assert torch.equal(from_fields, computed)
    per_graph = torch.cat([conv(g.x.double(), g.edge_index, g.edge_attr.double()) for g in graphs])
    torch.testing.assert_close(computed, per_graph, rtol=0, atol=1e-10)


def test_order_attribute_and_callable():
    graph = molecules(2)[1]
    graph.rank = -torch.arange(graph.num_nodes)
    by_name = PreparePLSTM(order="rank")(graph.clone())
    by_function = PreparePLSTM(order=lambda data: -torch.arange(data.num_nodes))(graph.clone())
    expected = dagify(graph.edge_index, graph.num_nodes, order=graph.rank)
    assert torch.equal(by_name.dag_edge_index, expected)
    assert torch.equal(by_function.dag_edge_index, expected)
    assert bool((expected[0] > expected[1]).all())


def test_directed_input_and_cycles():
    dag = Data(edge_index=torch.tensor([[0, 0, 1], [1, 2, 2]]), num_nodes=3)
    prepared = PreparePLSTM()(dag)
    assert torch.equal(prepared.dag_edge_index, dag.edge_index)
    assert torch.equal(prepared.dag_edge_id, torch.arange(3))
    with pytest.raises(ValueError, match="cycle"):
        PreparePLSTM()(Data(edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]), num_nodes=3))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="modes"):
        PreparePLSTM(modes=("X",))
    with pytest.raises(ValueError, match="directions"):
        PreparePLSTM(directions=())
    with pytest.raises(ValueError, match="orientation"):
        PreparePLSTM(orientation="sideways")
    with pytest.raises(TypeError, match="order"):
        PreparePLSTM(order=3)


def test_saved_dataset_loads_with_weights_only(tmp_path):
    graphs = molecules(6)
    dataset = MoleculeDataset(str(tmp_path), graphs, pre_transform=PreparePLSTM())
    with warnings.catch_warnings():
        # PyG falls back to weights_only=False with a warning when a class is not allowlisted.
        warnings.simplefilter("error")
        reloaded = MoleculeDataset(str(tmp_path), graphs, pre_transform=PreparePLSTM())
    torch.load(dataset.processed_paths[0], weights_only=True)
    assert isinstance(reloaded[0], PLSTMData)
    for original, restored in zip(dataset, reloaded):
        for key in ["dag_edge_index", "dag_edge_id", *LINE_KEYS]:
            assert torch.equal(original[key], restored[key])
    batch = next(iter(DataLoader(reloaded, batch_size=6)))
    reference = next(iter(DataLoader([PreparePLSTM()(graph) for graph in graphs], batch_size=6)))
    for key in ["dag_edge_index", "dag_edge_id", *LINE_KEYS]:
        assert torch.equal(batch[key], reference[key])
    assert "PreparePLSTM(order=None" in repr(dataset.pre_transform)


def prepared_molecule_with_directed_attributes():
    torch.manual_seed(3)
    graph = molecules(2)[1]
    data = Data(
        x=torch.randn(graph.num_nodes, 8),
        edge_index=graph.edge_index,
        edge_attr=torch.randn(graph.edge_index.size(1), 3),
    )
    return PreparePLSTM()(data)


def test_a_transform_that_reorders_edges_afterwards_raises():
    from torch_geometric.utils import sort_edge_index

    prepared = prepared_molecule_with_directed_attributes()
    conv = PLSTMConv(8, 8, heads=2, edge_dim=3)
    conv(prepared.x, prepared.edge_index, prepared.edge_attr, structure=prepared.plstm_structure("P"))
    # Sorting by destination reorders the columns; the stored dag_edge_id would now pick other edges.
    edge_index, edge_attr = sort_edge_index(prepared.edge_index, prepared.edge_attr, sort_by_row=False)
    assert not torch.equal(edge_index, prepared.edge_index)
    prepared.edge_index, prepared.edge_attr = edge_index, edge_attr
    with pytest.raises(ValueError, match="apply PreparePLSTM last"):
        prepared.plstm_structure("P")


def test_swapping_the_two_directions_of_an_edge_afterwards_raises():
    prepared = prepared_molecule_with_directed_attributes()
    # Swap the columns of one edge's two directions: the DAG edge would take the reverse direction's attribute.
    u, v = prepared.dag_edge_index[:, 0].tolist()
    columns = prepared.edge_index.t().tolist()
    a, b = columns.index([u, v]), columns.index([v, u])
    perm = torch.arange(len(columns))
    perm[a], perm[b] = b, a
    prepared.edge_index, prepared.edge_attr = prepared.edge_index[:, perm], prepared.edge_attr[perm]
    with pytest.raises(ValueError, match="apply PreparePLSTM last"):
        prepared.plstm_structure("D")


@pytest.mark.parametrize("keep", ["head", "tail"])
def test_a_transform_that_drops_edges_afterwards_raises(keep):
    prepared = prepared_molecule_with_directed_attributes()
    num_edges = prepared.edge_index.size(1)
    kept = slice(0, num_edges - 2) if keep == "head" else slice(2, num_edges)
    prepared.edge_index, prepared.edge_attr = prepared.edge_index[:, kept], prepared.edge_attr[kept]
    with pytest.raises(ValueError, match="apply PreparePLSTM last"):
        prepared.plstm_structure("P")


def test_a_transform_that_adds_edges_afterwards_raises():
    prepared = prepared_molecule_with_directed_attributes()
    extra = torch.tensor([[0, prepared.num_nodes - 1], [prepared.num_nodes - 1, 0]])
    prepared.edge_index = torch.cat([prepared.edge_index, extra], dim=1)
    with pytest.raises(ValueError, match="edges are not part of the stored DAG"):
        prepared.plstm_structure("P")


def test_node_levels_are_stored_batch_unchanged_and_used():
    graphs = [PreparePLSTM()(graph) for graph in molecules(6)]
    batch = next(iter(DataLoader(graphs, batch_size=6)))
    for reverse, key in ((False, "dag_node_level_forward"), (True, "dag_node_level_reverse")):
        swept = reverse_dag(batch.dag_edge_index) if reverse else batch.dag_edge_index
        assert torch.equal(batch[key], node_levels(swept, batch.num_nodes)), key
        structure = batch.plstm_structure("P", reverse)
        assert structure.plan.node_level is batch[key]
    # The stored levels are what the plan is built from, so wrong ones are refused, not used.
    batch.dag_node_level_forward = batch.dag_node_level_forward + 1
    with pytest.raises(ValueError, match="node_level"):
        batch.plstm_structure("P", reverse=False)


def mixed_graphs():
    """Molecules, directed graphs (random DAGs), a graph with no edges and one with no nodes."""
    generator = torch.Generator().manual_seed(3)
    graphs = molecules(9)
    for num_nodes in (5, 9, 1, 0, 7):
        edges = torch.randint(0, max(num_nodes, 1), (2, 2 * num_nodes), generator=generator)
        edges = edges[:, edges[0] < edges[1]] if num_nodes else edges[:, :0]
        x = torch.zeros(num_nodes, 9, dtype=torch.long)  # the molecules' feature layout, so they batch together
        edge_attr = torch.zeros(edges.size(1), 3, dtype=torch.long)
        graphs.append(Data(x=x, edge_index=edges, edge_attr=edge_attr, num_nodes=num_nodes))
    return graphs[::2] + graphs[1::2]  # interleave the kinds


@pytest.mark.parametrize("chunk_size", [1, 3, 1024])
@pytest.mark.parametrize("directions", [("forward", "reverse"), ("reverse",)])
def test_prepare_many_equals_prepare_each(chunk_size, directions):
    transform = PreparePLSTM(directions=directions)
    graphs = mixed_graphs()
    prepared = transform.prepare_many(graphs, chunk_size=chunk_size)
    assert len(prepared) == len(graphs)
    for graph, many in zip(graphs, prepared):
        alone = transform(graph)
        assert isinstance(many, PLSTMData) and sorted(many.keys()) == sorted(alone.keys())
        for key in alone.keys():
            if isinstance(alone[key], torch.Tensor):
                assert torch.equal(many[key], alone[key]), key
                assert many[key].untyped_storage().nbytes() == alone[key].untyped_storage().nbytes(), key
    # and batches of them are what the layers see from graphs prepared one by one
    for a, b in zip(DataLoader(prepared, batch_size=4), DataLoader([transform(g) for g in graphs], batch_size=4)):
        for key in a.keys():
            if isinstance(a[key], torch.Tensor):
                assert torch.equal(a[key], b[key]), key


def test_prepare_many_with_an_order():
    graphs = molecules(6)
    for graph in graphs:
        graph.rank = -torch.arange(graph.num_nodes, dtype=torch.float)
    for order in ("rank", lambda data: -torch.arange(data.num_nodes, dtype=torch.float)):
        transform = PreparePLSTM(order=order)
        for graph, many in zip(graphs, transform.prepare_many(graphs, chunk_size=4)):
            assert torch.equal(many.dag_edge_index, transform(graph).dag_edge_index)


def test_prepare_many_bad_chunk_size():
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="chunk_size"):
            PreparePLSTM().prepare_many(molecules(2), chunk_size=bad)
