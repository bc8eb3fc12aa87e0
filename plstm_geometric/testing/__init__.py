"""Helpers for the tests and benchmarks of plstm_geometric, as :mod:`torch_geometric.testing` is for PyG's:
data paths, small graph factories, random op inputs and real molecule batches. Not part of the modelling API;
:func:`nci_batch` needs the ``chemistry`` extra (rdkit, ogb)."""

from .dag_inputs import NAMES, batch_of_graphs, forward_and_grads, random_case, random_graph, random_inputs
from .graphs import chain_dag, grid_dag, random_dag, random_ordered_dag
from .molecules import nci_batch, nci_smiles
from .paths import SHARED, TEST_DATA, golden_path, shared_path
from .scan_inputs import random_scan_inputs

__all__ = [
    "TEST_DATA",
    "SHARED",
    "golden_path",
    "shared_path",
    "chain_dag",
    "grid_dag",
    "random_dag",
    "random_ordered_dag",
    "NAMES",
    "random_graph",
    "random_inputs",
    "random_case",
    "batch_of_graphs",
    "forward_and_grads",
    "random_scan_inputs",
    "nci_smiles",
    "nci_batch",
]
