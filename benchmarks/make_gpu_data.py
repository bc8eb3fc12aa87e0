"""Build the molecule and peptide batches the benchmarks run on (:mod:`benchmarks.data`), as plain tensor files.

    python -m benchmarks.make_gpu_data [--lrgb ../shared/data/lrgb] [--out benchmarks/gpu_data]

The GPU check runs on machines without RDKit and OGB, so the featurised graphs are computed here once and
shipped in the repository:

- ``nci1024.pt``: the first 1,024 molecules of RDKit's NCI sample (``RDConfig.RDDataDir/NCI/first_5K.smi``)
  that have at least one bond, featurised with OGB's ``smiles2graph`` (9 atom and 3 bond features). The
  check's 128-molecule batch is the first 128 graphs of this file (the same batch as
  ``nci_batch(128)`` of the molecule benchmarks).
- ``peptides64.pt``: the first 64 training peptides of LRGB Peptides-func (the split file's ``train``
  indices in order), featurised the same way.

Each file is a dict of tensors, stored compactly and widened to int64 by ``benchmarks.data.load_graphs``:
``x`` uint8 ``[N, 9]``, ``edge_attr`` uint8 ``[E, 3]``, ``edge_index`` int32 ``[2, E]`` (indices into the
whole batch, edges grouped by graph), ``num_nodes`` and ``num_edges`` int32 ``[G]`` (per graph, in order).
Only tensors, so ``torch.load(weights_only=True)`` reads them.
"""

import argparse
import gzip
import io
import os
import pickle
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_LRGB = HERE.parent / ".." / "shared" / "data" / "lrgb"


class SplitUnpickler(pickle.Unpickler):
    """Reads the LRGB split file: numpy int64 arrays in a dict, nothing else may be constructed."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"split file: refusing to load {module}.{name}")
        return super().find_class(module, name)


def featurise(smiles_list, count):
    """The first ``count`` graphs with at least one bond, as a dict of compact tensors."""
    from ogb.utils import smiles2graph

    xs, edge_indices, edge_attrs, num_nodes, num_edges = [], [], [], [], []
    offset = 0
    for smiles in smiles_list:
        graph = smiles2graph(smiles)
        if graph["edge_index"].shape[1] == 0:
            continue
        xs.append(torch.from_numpy(graph["node_feat"]))
        edge_indices.append(torch.from_numpy(graph["edge_index"]) + offset)
        edge_attrs.append(torch.from_numpy(graph["edge_feat"]))
        num_nodes.append(graph["num_nodes"])
        num_edges.append(graph["edge_index"].shape[1])
        offset += graph["num_nodes"]
        if len(num_nodes) == count:
            break
    if len(num_nodes) < count:
        raise ValueError(f"count: expected at most {len(num_nodes)} graphs with bonds, got {count}")
    x, edge_attr = torch.cat(xs), torch.cat(edge_attrs)
    if x.min() < 0 or x.max() > 255 or edge_attr.min() < 0 or edge_attr.max() > 255:
        raise ValueError("features do not fit in uint8")
    return {
        "x": x.to(torch.uint8),
        "edge_attr": edge_attr.to(torch.uint8),
        "edge_index": torch.cat(edge_indices, dim=1).to(torch.int32),
        "num_nodes": torch.tensor(num_nodes, dtype=torch.int32),
        "num_edges": torch.tensor(num_edges, dtype=torch.int32),
    }


def nci_smiles():
    from rdkit import RDConfig

    with open(os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi")) as handle:
        return [line.split()[0] for line in handle if line.strip()]


def peptide_smiles(lrgb: Path, count: int):
    import pandas

    root = lrgb / "peptides-functional"
    with open(root / "splits_random_stratified_peptide.pickle", "rb") as handle:
        splits = SplitUnpickler(io.BytesIO(handle.read())).load()
    with gzip.open(root / "raw" / "peptide_multi_class_dataset.csv.gz", "rb") as handle:
        table = pandas.read_csv(handle)
    return [table["smiles"].iloc[int(index)] for index in splits["train"][:count]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lrgb", type=Path, default=DEFAULT_LRGB, help="folder holding peptides-functional/")
    parser.add_argument("--out", type=Path, default=HERE / "gpu_data")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, graphs in (
        ("nci1024", featurise(nci_smiles(), 1024)),
        ("peptides64", featurise(peptide_smiles(args.lrgb, 64), 64)),
    ):
        path = args.out / f"{name}.pt"
        torch.save(graphs, path)
        print(
            f"{path}: {len(graphs['num_nodes'])} graphs, {graphs['x'].size(0)} nodes, "
            f"{graphs['edge_index'].size(1)} edges, {path.stat().st_size / 2**20:.2f} MiB"
        )


if __name__ == "__main__":
    main()
