"""Offline builder: OGB's raw molecular dataset layout from a CSV of SMILES strings."""
import logging
import os
import os.path as osp
import pathlib
import shutil
import tempfile
import time
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from .molecule import parse_smiles, mol_to_graph
from .ogb import dataset_dir_name, ogb_master_table
from .scaffold import murcko_scaffold, scaffold_split

log = logging.getLogger(__name__)

# Byte-reproducible gzip output (no timestamp in the header).
GZIP = {"method": "gzip", "compresslevel": 6, "mtime": 0}


def hiv_active(targets: pd.DataFrame) -> pd.DataFrame:
    """MoleculeNet's HIV label: active (1) unless the screening class is CI (confirmed inactive)."""
    return pd.DataFrame({"HIV_active": (targets["target"] != "CI").astype(np.int64)})


# Targets of the MoleculeNet CSVs in /work/shared/data/moleculenet (columns smiles,target) for
# the OGB datasets built from them: (target columns, transform of those columns).
KNOWN_SOURCES: Dict[str, Tuple[Tuple[str, ...], Optional[Callable]]] = {
    "ogbg-molhiv": (("target",), hiv_active),
    "ogbg-molbbbp": (("target",), None),
    "ogbg-molbace": (("target",), None),
    "ogbg-molclintox": (("target",), None),
    "ogbg-mollipo": (("target",), None),
    "ogbg-molfreesolv": (("target",), None),
}


def build_ogb_dataset(csv: Union[str, os.PathLike, pd.DataFrame], name: str,
                      root: Union[str, os.PathLike] = "datasets", smiles_column: str = "smiles",
                      target_columns: Optional[Sequence[str]] = None,
                      target_transform: Optional[Callable] = None, strict: bool = False,
                      id_column: Optional[str] = None, relaxed_valence: bool = True,
                      frac_train: float = 0.8, frac_valid: float = 0.1,
                      overwrite: bool = False) -> pathlib.Path:
    r"""Writes OGB's raw layout for a molecular dataset, as OGB ships it, from SMILES strings.

    The folder :obj:`root/<name with - replaced by _>/` gets::

        RELEASE_v1.txt
        mapping/mol.csv.gz, mapping/README.md   (task columns, smiles, mol_id; with header)
        raw/edge.csv.gz            one row "src,dst" per bond (each bond once: OGB's loaders
                                   add the reverse edges, add_inverse_edge=True in master.csv)
        raw/edge-feat.csv.gz       one row of 3 bond features per bond
        raw/node-feat.csv.gz       one row of 9 atom features per atom
        raw/num-node-list.csv.gz   atoms per molecule
        raw/num-edge-list.csv.gz   bonds per molecule
        raw/graph-label.csv.gz     one row of num_tasks labels per molecule (empty = missing)
        split/scaffold/{train,valid,test}.csv.gz   molecule indices

    Features are OGB's (:func:`ogb.utils.smiles2graph`); the split is OGB's scaffold split
    (:func:`~plstm_geometric.datasets.scaffold.scaffold_split`). :class:`OGBMolDataset` then loads
    the folder as if it had been downloaded; so does OGB's own loader.

    Args:
        csv: a CSV file with a header, or a :class:`pandas.DataFrame`.
        name (str): the dataset's name, e.g. :obj:`"ogbg-molhiv"`.
        root: the data root the dataset folder is written into.
        smiles_column (str): the column holding SMILES strings.
        target_columns (sequence of str, optional): the label columns. Required unless
            :obj:`name` is one of :obj:`KNOWN_SOURCES` (OGB datasets built from the MoleculeNet
            CSVs with columns :obj:`smiles,target`).
        target_transform (callable, optional): maps the DataFrame of target columns to the
            numeric label DataFrame (its columns name the tasks) or array [rows, tasks].
        strict (bool): raise a :class:`ValueError` naming the first invalid SMILES row instead
            of skipping invalid rows (skipped rows are counted in a logged warning).
        id_column (str, optional): the column copied to :obj:`mol_id` in the mapping; default:
            the row number in :obj:`csv` (0-based, header excluded).
        relaxed_valence (bool): accept molecules that RDKit rejects only for exceeding its
            valence table (see :func:`~plstm_geometric.datasets.molecule.parse_smiles`); needed to
            rebuild OGB's sets, which were made with an older, more permissive RDKit.
        frac_train, frac_valid (float): the scaffold split's fractions (test gets the rest).
        overwrite (bool): replace an existing dataset folder (processed files included).

    Returns:
        the dataset folder.
    """
    frame, source = _read_frame(csv)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    if target_columns is None:
        if name not in KNOWN_SOURCES:
            raise ValueError(f"target_columns is required for {name!r} (known sources: "
                             f"{sorted(KNOWN_SOURCES)})")
        target_columns, known_transform = KNOWN_SOURCES[name]
        target_transform = target_transform or known_transform
    target_columns = list(target_columns)
    for argument, columns in (("smiles_column", [smiles_column]),
                              ("target_columns", target_columns),
                              ("id_column", [] if id_column is None else [id_column])):
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise ValueError(f"{argument}: {source} has no column {missing} (columns: "
                             f"{list(frame.columns)})")
    if not target_columns:
        raise ValueError("target_columns must name at least one column")

    labels = _labels(frame, target_columns, target_transform, name)
    root = pathlib.Path(root)
    target = root / dataset_dir_name(name)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to rebuild it")

    start = time.perf_counter()
    log.info("building %s from %s (%d rows)", name, source, len(frame))
    graphs, scaffolds, kept, relaxed = [], [], [], 0
    invalid = []
    for row, smiles in enumerate(frame[smiles_column].tolist()):
        mol, was_relaxed = parse_smiles(smiles, relaxed_valence=relaxed_valence)
        if mol is None:
            if strict:
                raise ValueError(f"{source}, row {row} (0-based, header excluded): invalid "
                                 f"SMILES {smiles!r} in column {smiles_column!r}")
            log.debug("%s row %d: skipped invalid SMILES %r", source, row, smiles)
            invalid.append(row)
            continue
        relaxed += was_relaxed
        graphs.append(mol_to_graph(mol))
        scaffolds.append(murcko_scaffold(mol))
        kept.append(row)
    if invalid:
        log.warning("%s: skipped %d of %d rows with invalid SMILES (rows %s%s)", source,
                    len(invalid), len(frame), invalid[:10], " ..." if len(invalid) > 10 else "")
    if relaxed:
        log.info("%s: %d molecules parsed without RDKit's valence check", source, relaxed)
    if not graphs:
        raise ValueError(f"{source}: no valid SMILES in column {smiles_column!r}")

    split = scaffold_split(scaffolds, frac_train=frac_train, frac_valid=frac_valid)
    labels = labels.iloc[kept].reset_index(drop=True)
    ids = frame[id_column].iloc[kept].to_numpy() if id_column is not None else np.asarray(kept)

    root.mkdir(parents=True, exist_ok=True)
    # Written into a scratch folder and moved into place at the end, so that an interrupted
    # build never leaves a half-written dataset that a loader would take as complete.
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        _write_layout(staging, name, source, graphs, labels, frame[smiles_column].iloc[kept],
                      ids, split)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("built %s in %s: %d graphs, train/valid/test = %d/%d/%d (%.1f s)", name, target,
             len(graphs), len(split["train"]), len(split["valid"]), len(split["test"]),
             time.perf_counter() - start)
    return target


def _read_frame(csv) -> Tuple[pd.DataFrame, str]:
    if isinstance(csv, pd.DataFrame):
        # DataFrame.attrs["source"] lets a caller name the data in log messages.
        return csv.reset_index(drop=True), csv.attrs.get("source", "the given DataFrame")
    if isinstance(csv, (str, os.PathLike)):
        if not osp.isfile(csv):
            raise ValueError(f"csv: no such file {os.fspath(csv)!r}")
        # keep_default_na=False keeps strings such as "NA" or "None" verbatim in SMILES and
        # class columns; empty cells still become NaN so missing labels stay missing.
        return pd.read_csv(csv, keep_default_na=False, na_values=[""]), os.fspath(csv)
    raise TypeError(f"csv must be a path or a pandas DataFrame, got {type(csv).__name__}")


def _labels(frame: pd.DataFrame, target_columns, target_transform, name) -> pd.DataFrame:
    targets = frame[target_columns]
    if target_transform is not None:
        targets = target_transform(targets)
    if not isinstance(targets, pd.DataFrame):
        array = np.asarray(targets)
        array = array.reshape(len(array), -1)
        columns = target_columns if array.shape[1] == len(target_columns) else [
            f"task_{index}" for index in range(array.shape[1])]
        targets = pd.DataFrame(array, columns=columns)
    if len(targets) != len(frame):
        raise ValueError(f"target_transform returned {len(targets)} rows for {len(frame)} rows")
    targets = targets.reset_index(drop=True)
    for column in targets.columns:
        if targets[column].dtype == bool:
            targets[column] = targets[column].astype(np.int64)
        if not pd.api.types.is_numeric_dtype(targets[column]):
            raise ValueError(f"target_columns: column {column!r} is not numeric; pass a "
                             f"target_transform that maps it to numbers")
    master = ogb_master_table()
    if name in master:
        if "classification" in master[name]["task type"]:
            values = targets.to_numpy(dtype=np.float64)
            if not np.isin(values[~np.isnan(values)], (0.0, 1.0)).all():
                raise ValueError(f"target_columns: {name} is a binary classification dataset, "
                                 f"but the labels are not all 0, 1 or missing")
        if targets.shape[1] != int(master[name]["num tasks"]):
            log.warning("%s: building %d task(s) where OGB's has %s", name, targets.shape[1],
                        master[name]["num tasks"])
    return targets


def _write_csv(array, path: pathlib.Path) -> None:
    frame = array if isinstance(array, pd.DataFrame) else pd.DataFrame(array)
    frame.to_csv(path, header=False, index=False, compression=GZIP)


def _write_layout(folder: pathlib.Path, name, source, graphs, labels, smiles, ids, split):
    raw, mapping, split_dir = folder / "raw", folder / "mapping", folder / "split" / "scaffold"
    for directory in (raw, mapping, split_dir):
        directory.mkdir(parents=True)

    # smiles2graph lists each bond twice, (begin, end) then (end, begin); OGB's raw files hold
    # the first of each pair and its loaders re-insert the reverse right after it, which gives
    # back smiles2graph's exact edge order.
    _write_csv(np.concatenate([graph["edge_index"][:, ::2].T for graph in graphs]),
               raw / "edge.csv.gz")
    _write_csv(np.concatenate([graph["edge_feat"][::2] for graph in graphs]),
               raw / "edge-feat.csv.gz")
    _write_csv(np.concatenate([graph["node_feat"] for graph in graphs]), raw / "node-feat.csv.gz")
    _write_csv(np.array([graph["num_nodes"] for graph in graphs], dtype=np.int64),
               raw / "num-node-list.csv.gz")
    _write_csv(np.array([graph["edge_index"].shape[1] // 2 for graph in graphs], dtype=np.int64),
               raw / "num-edge-list.csv.gz")
    _write_csv(labels, raw / "graph-label.csv.gz")

    for part, indices in split.items():
        _write_csv(np.asarray(indices, dtype=np.int64), split_dir / f"{part}.csv.gz")

    table = labels.copy()
    table["smiles"] = smiles.to_numpy()
    table["mol_id"] = ids
    table.to_csv(mapping / "mol.csv.gz", index=False, compression=GZIP)
    (mapping / "README.md").write_text(
        f"# {name}\n\n## mol.csv.gz\n\nThe columns are organized as follows:\n\n"
        f"[task_1, ... task_n], smiles, mol_id\n\nThe i-th row describes the i-th graph. Built "
        f"offline by plstm_geometric from {source}; mol_id is the source row (or id column).\n")
    (folder / "RELEASE_v1.txt").write_text(
        f"# Release note for {name}\n\n### v1: rebuilt offline by plstm_geometric.datasets."
        f"build_ogb_dataset from {source}\n")
