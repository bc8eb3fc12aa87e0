"""Batches of real molecules for tests and benchmarks: RDKit's NCI sample with OGB features (needs rdkit and ogb)."""

import os

import torch
from torch_geometric.data import Batch, Data


def nci_smiles(count: int):
    from rdkit import RDConfig

    path = os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi")
    with open(path) as handle:
        return [line.split()[0] for line in handle if line.strip()][:count]


def nci_batch(num_graphs: int) -> Batch:
    """A PyG batch of the first ``num_graphs`` NCI molecules that have at least one bond."""
    from ogb.utils import smiles2graph

    graphs = []
    for smiles in nci_smiles(2 * num_graphs + 100):
        graph = smiles2graph(smiles)
        if graph["edge_index"].shape[1] == 0:
            continue
        graphs.append(
            Data(
                x=torch.from_numpy(graph["node_feat"]),
                edge_index=torch.from_numpy(graph["edge_index"]),
                edge_attr=torch.from_numpy(graph["edge_feat"]),
                num_nodes=graph["num_nodes"],
            )
        )
        if len(graphs) == num_graphs:
            break
    return Batch.from_data_list(graphs)
