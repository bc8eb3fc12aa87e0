import importlib.util
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

# Test modules that import an optional package at their top: RDKit and OGB come with the chemistry extra,
# nbformat with the test extra. A machine without them (the GPU machine carries tensors, not chemistry)
# leaves these modules out, and the header of the run names them; everything else is collected.
NEEDS = {
    "datasets/test_build_ogb.py": ("ogb", "rdkit"),
    "datasets/test_build_ogb_tasks.py": ("ogb", "rdkit"),
    "datasets/test_data_root_links.py": ("ogb", "rdkit"),
    "datasets/test_dataset_names.py": ("ogb", "rdkit"),
    "datasets/test_embedded.py": ("rdkit",),
    "datasets/test_lrgb.py": ("ogb", "rdkit"),
    "datasets/test_molecule_graph.py": ("ogb", "rdkit"),
    "datasets/test_ogb_dataset.py": ("ogb", "rdkit"),
    "datasets/test_ogb_style_evaluator.py": ("ogb",),
    "datasets/test_ogb_tools.py": ("ogb",),
    "datasets/test_scaffold_split.py": ("rdkit",),
    "models/test_baselines.py": ("ogb", "rdkit"),
    "test_notebooks.py": ("nbformat",),
}
MISSING = {name for names in NEEDS.values() for name in names if importlib.util.find_spec(name) is None}
collect_ignore = [path for path, names in NEEDS.items() if MISSING.intersection(names)]


def pytest_report_header(config):
    if collect_ignore:
        return f"not installed: {', '.join(sorted(MISSING))}; left out: {', '.join(collect_ignore)}"


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
