import os
import pathlib

import pytest
import torch

# Without a GPU, Triton kernels run in Triton's CPU interpreter. The variable is read when a kernel is
# defined (at import of its module), so it is set here, before any test imports plstm_geometric.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The suite is thousands of small ops; with two OpenMP threads on a 2-core machine each one can stall
# for milliseconds waking the other thread (measured: repeat_interleave of 7 elements, 12 ms vs 5 us).
torch.set_num_threads(1)

SHARED = pathlib.Path(os.environ.get("PLSTM_SHARED", pathlib.Path(__file__).resolve().parents[1] / ".." / "shared"))


def shared_path(*parts):
    """Path inside ../shared, or skip the test with a reason when the folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: the shared reference material (../shared) is absent")
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped on CPU-only machines)")
    config.addinivalue_line("markers", "slow: longer than a few seconds")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
