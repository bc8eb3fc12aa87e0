"""benchmarks/prepare.py at a tiny size: the graphs it cuts out of the stored batches, and its table."""

import torch

from benchmarks import prepare
from benchmarks.data import graphs_of, load_graphs


def test_graphs_of_a_stored_batch_are_its_graphs():
    batch = load_graphs("nci1024", 5)
    graphs = graphs_of("nci1024", 5)
    assert len(graphs) == 5
    assert sum(g.num_nodes for g in graphs) == batch.x.size(0)
    assert torch.equal(torch.cat([g.x for g in graphs]), batch.x)
    for g in graphs:
        assert g.edge_index.numel() == 0 or int(g.edge_index.max()) < g.num_nodes


def test_table(capsys):
    prepare.main(["--graphs", "4"])
    out = capsys.readouterr().out
    assert "| 4 NCI molecules |" in out and "| 64 LRGB peptides |" in out
