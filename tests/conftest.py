import os

import pytest
import torch

# Without a GPU, Triton kernels run in Triton's CPU interpreter. The variable is read when a kernel is
# defined (at import of its module), so it is set here, before any test imports plstm_geometric.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The suite is thousands of small ops; with two OpenMP threads on a 2-core machine each one can stall
# for milliseconds waking the other thread (measured: repeat_interleave of 7 elements, 12 ms vs 5 us).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
