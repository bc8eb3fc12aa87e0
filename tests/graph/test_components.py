"""Size buckets of the per-graph dense layout."""

import torch

from plstm_geometric.graph.components import BUCKET_COST, size_buckets


def test_a_few_small_graphs_join_the_bucket_of_many_larger_ones():
    # A bucket of its own would cost BUCKET_COST; padding two 2-node graphs to 30 costs far less.
    size = torch.tensor([2, 30, 2] + [30] * 50)
    assert 2 * 30**3 < BUCKET_COST
    assert size_buckets(size).unique().numel() == 1


def test_many_small_graphs_keep_their_own_bucket():
    size = torch.tensor([4] * 1000 + [100] * 10)
    bucket = size_buckets(size)
    assert bucket[:1000].unique().numel() == 1 and bucket[1000:].unique().numel() == 1
    assert bucket[0] != bucket[-1]


def test_buckets_are_ranges_of_sizes():
    size = torch.randint(1, 200, (500,), generator=torch.Generator().manual_seed(0))
    bucket = size_buckets(size)
    ranges = sorted((int(size[bucket == b].min()), int(size[bucket == b].max())) for b in bucket.unique())
    assert all(hi < next_lo for (_, hi), (next_lo, _) in zip(ranges, ranges[1:]))
    assert size_buckets(torch.empty(0, dtype=torch.long)).numel() == 0
