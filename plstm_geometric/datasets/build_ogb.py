"""Offline builder: OGB's raw molecular dataset layout from a CSV of SMILES strings."""

import logging
import os
import os.path as osp
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .molecule import mol_to_graph, parse_smiles
from .ogb import dataset_dir_name, non_ogb_name, ogb_master_table
from .paths import owned_path
from .safe_dataset import check_dataset_name
from .scaffold import murcko_scaffold, scaffold_split

log = logging.getLogger(__name__)

# Byte-reproducible gzip output (no timestamp in the header).
GZIP = {"method": "gzip", "compresslevel": 6, "mtime": 0}

# Size limits of one molecule: the scaffold computation grows with the cube of the atom count (a
# 1,000-atom chain takes seconds, 3,000 atoms a minute), and the largest molecules of OGB's and
# MoleculeNet's sets have a few hundred atoms and SMILES of a few hundred characters.
MAX_ATOMS = 500
MAX_SMILES_LENGTH = 4000

# MoleculeNet's HIV screening classes: confirmed inactive, confirmed moderately active, confirmed active.
HIV_CLASSES = {"CI": 0, "CM": 1, "CA": 1}


def hiv_active(targets: pd.DataFrame) -> pd.DataFrame:
    """MoleculeNet's HIV label: 0 for CI (confirmed inactive), 1 for CM or CA; any other value raises."""
    classes = targets["target"]
    known = classes.isin(list(HIV_CLASSES))
    if not known.all():
        row = int(np.flatnonzero(~known.to_numpy())[0])
        raise ValueError(
            f"target: expected an HIV screening class {sorted(HIV_CLASSES)} in every row, got "
            f"{classes.iloc[row]!r} in row {row} (0-based, header excluded) of column 'target'"
        )
    return pd.DataFrame({"HIV_active": classes.map(HIV_CLASSES).astype(np.int64)})


# Targets of the MoleculeNet CSVs for the OGB datasets built from them: (target columns, transform of
# those columns). Most files have the columns smiles,target; ESOL, ClinTox and Tox21 keep their upstream
# layouts (DeepChem's delaney-processed.csv and clintox.csv.gz, whose two tasks OGB's ClinTox has; smiles
# followed by the twelve Tox21 assays, blanks for missing).
TOX21_TASKS = (
    "NR-AR",
    "NR-AR-LBD",
    "NR-AhR",
    "NR-Aromatase",
    "NR-ER",
    "NR-ER-LBD",
    "NR-PPAR-gamma",
    "SR-ARE",
    "SR-ATAD5",
    "SR-HSE",
    "SR-MMP",
    "SR-p53",
)
KNOWN_SOURCES: dict[str, tuple[tuple[str, ...], Callable | None]] = {
    "ogbg-molhiv": (("target",), hiv_active),
    "ogbg-molbbbp": (("target",), None),
    "ogbg-molbace": (("target",), None),
    "ogbg-molclintox": (("FDA_APPROVED", "CT_TOX"), None),
    "ogbg-mollipo": (("target",), None),
    "ogbg-molfreesolv": (("target",), None),
    "ogbg-molesol": (("measured log solubility in mols per litre",), None),
    "ogbg-moltox21": (TOX21_TASKS, None),
}
# OGB's task columns, in OGB's order, where a set has several (MoleculeNet's column names, which OGB keeps):
# a build that names them must keep that order, or its task i would be scored as OGB's task i.
OGB_TASK_COLUMNS: dict[str, tuple[str, ...]] = {
    "ogbg-molclintox": ("FDA_APPROVED", "CT_TOX"),
    "ogbg-moltox21": TOX21_TASKS,
}


def build_ogb_dataset(
    csv: str | os.PathLike | pd.DataFrame,
    name: str,
    root: str | os.PathLike = "datasets",
    smiles_column: str = "smiles",
    target_columns: Sequence[str] | None = None,
    target_transform: Callable | None = None,
    strict: bool = False,
    id_column: str | None = None,
    relaxed_valence: bool = True,
    frac_train: float = 0.8,
    frac_valid: float = 0.1,
    overwrite: bool = False,
    max_atoms: int = MAX_ATOMS,
    max_smiles_length: int = MAX_SMILES_LENGTH,
) -> pathlib.Path:
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
    the folder as if it had been downloaded, and OGB's :class:`~ogb.graphproppred.Evaluator` and split
    reader accept it. OGB 1.3.6's own :class:`PygGraphPropPredDataset` reads it too, but with torch >= 2.6
    it cannot reload its processed file unless PyG's data classes are registered as safe globals (importing
    :mod:`plstm_geometric` does that).

    Under one of OGB's names (:obj:`"ogbg-mol*"`) the labels must be OGB's tasks: as many columns as OGB's
    set has (a one-column ClinTox CSV cannot be :obj:`"ogbg-molclintox"`, which has two tasks), and where
    OGB's column names are known (:obj:`OGB_TASK_COLUMNS`) those columns in OGB's order; anything else
    raises a :class:`ValueError` before anything is written. Build other labels under a name of their
    own (e.g. :obj:`"clintox"`), which :func:`~plstm_geometric.datasets.load_dataset` loads by that name.

    Labels must be finite or missing (an empty cell): an infinite label (e.g. :obj:`inf` or
    :obj:`1e400` in the CSV) raises a :class:`ValueError` naming its row and column. Molecules over
    :obj:`max_smiles_length` characters or :obj:`max_atoms` atoms are skipped (or raise with
    :obj:`strict`) and counted like invalid SMILES, before the expensive scaffold computation.

    Args:
        csv: a CSV file with a header, or a :class:`pandas.DataFrame`.
        name (str): the dataset's name, e.g. :obj:`"ogbg-molhiv"`: a plain name (letters, digits,
            :obj:`_`, :obj:`-`, :obj:`.`; no path separators, not starting with :obj:`.`), so that the
            build never writes or deletes anything outside :obj:`root/<dir name>`.
        root: the data root the dataset folder is written into.
        smiles_column (str): the column holding SMILES strings.
        target_columns (sequence of str, optional): the label columns. Required unless
            :obj:`name` is one of :obj:`KNOWN_SOURCES` (OGB datasets built from the MoleculeNet
            CSVs, which read their upstream label columns by default).
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
        max_atoms (int): the largest molecule kept, in heavy atoms.
        max_smiles_length (int): the longest SMILES string parsed, in characters.

    Returns:
        the dataset folder.
    """
    check_dataset_name(name)
    for argument, value in (("max_atoms", max_atoms), ("max_smiles_length", max_smiles_length)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{argument}: expected an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{argument}: expected a positive int, got {value}")
    frame, source = _read_frame(csv)
    defaulted = target_columns is None
    if target_columns is None:
        if name not in KNOWN_SOURCES:
            raise ValueError(
                f"target_columns: expected label columns for {name!r} (only the known sources "
                f"{sorted(KNOWN_SOURCES)} have defaults), got None"
            )
        target_columns, known_transform = KNOWN_SOURCES[name]
        target_transform = target_transform or known_transform
    target_columns = list(target_columns)
    for argument, columns in (
        ("smiles_column", [smiles_column]),
        ("target_columns", target_columns),
        ("id_column", [] if id_column is None else [id_column]),
    ):
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            hint = ""
            if argument == "target_columns" and defaulted:
                hint = (
                    f"; {name} reads OGB's task columns {target_columns} by default: name the label columns with "
                    f"--target-columns (target_columns from Python), and build labels that are not OGB's tasks "
                    f"under a name that is not OGB's (--name {non_ogb_name(name)})"
                )
            raise ValueError(f"{argument}: {source} has no column {missing} (columns: {list(frame.columns)}){hint}")
    if not target_columns:
        raise ValueError("target_columns: expected at least one column, got none")

    labels = _labels(frame, target_columns, target_transform, name)
    root = pathlib.Path(root)
    target = root / dataset_dir_name(name)
    owned_path(target, root)  # an existing folder is replaced: never one a symbolic link leads out of the root
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to rebuild it")

    start = time.perf_counter()
    log.info("building %s from %s (%d rows)", name, source, len(frame))
    graphs, scaffolds, kept, relaxed = [], [], [], 0
    invalid, too_large = [], []
    for row, smiles in enumerate(frame[smiles_column].tolist()):
        problem = None
        if isinstance(smiles, str) and len(smiles) > max_smiles_length:
            mol, was_relaxed = None, False
            problem = f"a SMILES of {len(smiles)} characters (max_smiles_length={max_smiles_length})"
        else:
            mol, was_relaxed = parse_smiles(smiles, relaxed_valence=relaxed_valence)
            if mol is not None and mol.GetNumAtoms() > max_atoms:
                problem = f"a molecule of {mol.GetNumAtoms()} atoms (max_atoms={max_atoms})"
                mol = None
        if mol is None:
            shown = smiles if not isinstance(smiles, str) or len(smiles) <= 80 else smiles[:80] + "..."
            if strict:
                what = problem or "invalid SMILES"
                raise ValueError(
                    f"{source}, row {row} (0-based, header excluded): {what} {shown!r} in column {smiles_column!r}"
                )
            log.debug("%s row %d: skipped %s %r", source, row, problem or "invalid SMILES", shown)
            (too_large if problem else invalid).append(row)
            continue
        relaxed += was_relaxed
        graphs.append(mol_to_graph(mol))
        scaffolds.append(murcko_scaffold(mol))
        kept.append(row)
    if invalid:
        log.warning(
            "%s: skipped %d of %d rows with invalid SMILES (rows %s%s)",
            source,
            len(invalid),
            len(frame),
            invalid[:10],
            " ..." if len(invalid) > 10 else "",
        )
    if too_large:
        log.warning(
            "%s: skipped %d of %d rows with molecules over the size limits max_atoms=%d, "
            "max_smiles_length=%d (rows %s%s)",
            source,
            len(too_large),
            len(frame),
            max_atoms,
            max_smiles_length,
            too_large[:10],
            " ..." if len(too_large) > 10 else "",
        )
    if relaxed:
        log.info("%s: %d molecules parsed without RDKit's valence check", source, relaxed)
    if not graphs:
        raise ValueError(
            f"{smiles_column}: expected at least one valid SMILES within the size limits in {source}, got none"
        )

    split = scaffold_split(scaffolds, frac_train=frac_train, frac_valid=frac_valid)
    labels = labels.iloc[kept].reset_index(drop=True)
    ids = frame[id_column].iloc[kept].to_numpy() if id_column is not None else np.asarray(kept)

    root.mkdir(parents=True, exist_ok=True)
    # Written into a scratch folder and moved into place at the end, so that an interrupted
    # build never leaves a half-written dataset that a loader would take as complete.
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        _write_layout(staging, name, source, graphs, labels, frame[smiles_column].iloc[kept], ids, split)
        owned_path(target, root)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info(
        "built %s in %s: %d graphs, train/valid/test = %d/%d/%d (%.1f s)",
        name,
        target,
        len(graphs),
        len(split["train"]),
        len(split["valid"]),
        len(split["test"]),
        time.perf_counter() - start,
    )
    return target


def _read_frame(csv) -> tuple[pd.DataFrame, str]:
    if isinstance(csv, pd.DataFrame):
        # DataFrame.attrs["source"] lets a caller name the data in log messages.
        frame, source = csv.reset_index(drop=True), csv.attrs.get("source", "the given DataFrame")
    elif isinstance(csv, (str, os.PathLike)):
        source = os.fspath(csv)
        if not osp.isfile(csv):
            raise ValueError(f"csv: expected an existing file, got {source!r}")
        try:
            # keep_default_na=False keeps strings such as "NA" or "None" verbatim in SMILES and
            # class columns; empty cells still become NaN so missing labels stay missing.
            frame = pd.read_csv(csv, keep_default_na=False, na_values=[""])
        except pd.errors.EmptyDataError as error:
            raise ValueError(f"csv: expected a header and at least one row, got an empty file {source!r}") from error
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise ValueError(f"csv: expected a CSV file, got {source!r} ({error})") from error
    else:
        raise TypeError(f"csv: expected a path or a pandas DataFrame, got {type(csv).__name__}")
    if len(frame) == 0:
        raise ValueError(f"csv: expected at least one row below the header, got none in {source}")
    return frame, source


def _labels(frame: pd.DataFrame, target_columns, target_transform, name) -> pd.DataFrame:
    targets = frame[target_columns]
    if target_transform is not None:
        targets = target_transform(targets)
    if not isinstance(targets, pd.DataFrame):
        array = np.asarray(targets)
        array = array.reshape(len(array), -1)
        columns = (
            target_columns
            if array.shape[1] == len(target_columns)
            else [f"task_{index}" for index in range(array.shape[1])]
        )
        targets = pd.DataFrame(array, columns=columns)
    if len(targets) != len(frame):
        raise ValueError(f"target_transform: expected {len(frame)} rows (one per CSV row), got {len(targets)}")
    targets = targets.reset_index(drop=True)
    for column in targets.columns:
        if targets[column].dtype == bool:
            targets[column] = targets[column].astype(np.int64)
        if not pd.api.types.is_numeric_dtype(targets[column]):
            raise ValueError(f"target_columns: {_non_numeric(targets[column])}")
    values = targets.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        row, column = (int(index[0]) for index in np.nonzero(np.isinf(values)))
        raise ValueError(
            f"target_columns: expected finite or missing labels, got {values[row, column]} in row "
            f"{row} (0-based, header excluded) of column {targets.columns[column]!r}"
        )
    master = ogb_master_table()
    if name in master:
        if "classification" in master[name]["task type"]:
            values = targets.to_numpy(dtype=np.float64)
            if not np.isin(values[~np.isnan(values)], (0.0, 1.0)).all():
                raise ValueError(
                    f"target_columns: expected labels 0, 1 or missing for the binary "
                    f"classification dataset {name}, got other values"
                )
        _check_ogb_tasks(name, list(targets.columns), int(master[name]["num tasks"]))
    return targets


def _check_ogb_tasks(name: str, columns: list, num_tasks: int) -> None:
    """A dataset under one of OGB's names has OGB's tasks: OGB's Evaluator, OGB's example code and every
    published number for that name assume them."""
    known = OGB_TASK_COLUMNS.get(name)
    if len(columns) != num_tasks:
        ogb_columns = f" ({', '.join(known)})" if known else ""
        option = f"--target-columns {' '.join(known)}" if known else f"--target-columns with {num_tasks} columns"
        raise ValueError(
            f"target_columns: expected OGB's {num_tasks} task column{'s' if num_tasks != 1 else ''} for "
            f"{name}{ogb_columns}, got {len(columns)} ({columns}); build OGB's tasks ({option}; target_columns "
            f"from Python), or build these labels under a name that is not OGB's (--name {non_ogb_name(name)}), "
            f"which load_dataset (and the training CLI's --dataset) accepts by that name"
        )
    for position, column in enumerate(columns):
        if known and column in known and known.index(column) != position:
            raise ValueError(
                f"target_columns: expected OGB's column {column!r} as task {known.index(column) + 1} of {name} "
                f"(OGB's order: {', '.join(known)}), got it as task {position + 1}"
            )


def _non_numeric(column: pd.Series) -> str:
    """What a label column holds that is not a number: the first such cell, by row and value."""
    numbers = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero((numbers.isna() & column.notna()).to_numpy())
    where = (
        f"{column.iloc[bad[0]]!r} in row {bad[0]} (0-based, header excluded)"
        if bad.size
        else f"values of dtype {column.dtype}"
    )
    return (
        f"expected numbers or empty cells in label column {column.name!r}, got {where}; write the labels "
        f"as numbers in the CSV (or, from Python, pass build_ogb_dataset a target_transform that maps them)"
    )


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
    _write_csv(np.concatenate([graph["edge_index"][:, ::2].T for graph in graphs]), raw / "edge.csv.gz")
    _write_csv(np.concatenate([graph["edge_feat"][::2] for graph in graphs]), raw / "edge-feat.csv.gz")
    _write_csv(np.concatenate([graph["node_feat"] for graph in graphs]), raw / "node-feat.csv.gz")
    _write_csv(np.array([graph["num_nodes"] for graph in graphs], dtype=np.int64), raw / "num-node-list.csv.gz")
    _write_csv(
        np.array([graph["edge_index"].shape[1] // 2 for graph in graphs], dtype=np.int64), raw / "num-edge-list.csv.gz"
    )
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
        f"offline by plstm_geometric from {source}; mol_id is the source row (or id column).\n"
    )
    (folder / "RELEASE_v1.txt").write_text(
        f"# Release note for {name}\n\n### v1: rebuilt offline by plstm_geometric.datasets."
        f"build_ogb_dataset from {source}\n"
    )
