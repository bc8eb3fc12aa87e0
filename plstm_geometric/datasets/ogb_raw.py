r"""A checked reader of OGB's raw graph layout (headerless gzip CSVs, one row per node, edge or graph).

It gives what :func:`ogb.io.read_graph_raw.read_csv_graph_raw` gives, after checking that the files agree:
:obj:`num-node-list` sums to the rows of :obj:`node-feat`, :obj:`num-edge-list` to the rows of
:obj:`edge` and :obj:`edge-feat`, every edge joins nodes of its own graph, and labels are finite or
missing. OGB's reader trusts the counts and silently shifts every later graph when they disagree.
"""

import os.path as osp

import numpy as np
import pandas as pd

from .safe_load import file_error

RAW_FIX = (
    "rebuild the dataset with `python -m plstm_geometric.datasets build-ogb ... --overwrite`, or delete "
    "the dataset folder to download it again"
)


def read_table(path: str, fix: str = RAW_FIX, required: bool = True) -> np.ndarray | None:
    """A headerless gzip CSV as a 2-d array ([0, 0] when empty), :obj:`None` when absent and optional."""
    if not osp.isfile(path):
        if not required:
            return None
        raise file_error(path, "expected a raw file, got nothing at this path", fix)
    try:
        return pd.read_csv(path, compression="gzip", header=None).values
    except pd.errors.EmptyDataError:  # a tiny dataset can leave a split (or a graph without bonds) empty
        return np.empty((0, 0))
    except (OSError, EOFError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise file_error(path, f"damaged raw file ({type(error).__name__}: {error})", fix) from error


def _integers(table: np.ndarray, path: str, columns: int | None = None) -> np.ndarray:
    if table.size == 0:
        return np.empty((0, columns or 1), dtype=np.int64)
    if columns is not None and table.shape[1] != columns:
        raise file_error(path, f"expected {columns} column(s), got {table.shape[1]}", RAW_FIX)
    if not np.issubdtype(table.dtype, np.integer):
        raise file_error(path, f"expected integers, got values of dtype {table.dtype}", RAW_FIX)
    return table.astype(np.int64)


def _features(table: np.ndarray | None) -> np.ndarray | None:
    if table is None:
        return None
    # As OGB: integer features stay int64, anything else becomes float32.
    return table.astype(np.int64) if np.issubdtype(table.dtype, np.integer) else table.astype(np.float32)


def read_ogb_raw(raw_dir: str, add_inverse_edge: bool) -> list[dict]:
    r"""The graphs of :obj:`raw_dir` as OGB's reader returns them, with the counts checked.

    Returns:
        one dict per graph with :obj:`edge_index` (int64 [2, E], each edge followed by its reverse when
        :obj:`add_inverse_edge`), :obj:`edge_feat`, :obj:`node_feat` (or :obj:`None` when the file is
        absent) and :obj:`num_nodes`.

    Raises:
        DatasetFileError: a file is missing, damaged, or disagrees with the others (the message names it).
    """
    path = {
        name: osp.join(raw_dir, f"{name}.csv.gz")
        for name in ("edge", "edge-feat", "node-feat", "num-node-list", "num-edge-list")
    }
    num_nodes = _integers(read_table(path["num-node-list"]), path["num-node-list"], 1)[:, 0]
    num_edges = _integers(read_table(path["num-edge-list"]), path["num-edge-list"], 1)[:, 0]
    edge = _integers(read_table(path["edge"]), path["edge"], 2)
    node_feat = _features(read_table(path["node-feat"], required=False))
    edge_feat = _features(read_table(path["edge-feat"], required=False))

    for name, counts in (("num-node-list", num_nodes), ("num-edge-list", num_edges)):
        if (counts < 0).any():
            row = int(np.flatnonzero(counts < 0)[0])
            raise file_error(path[name], f"expected non-negative counts, got {counts[row]} in row {row}", RAW_FIX)
    if len(num_nodes) != len(num_edges):
        raise file_error(
            path["num-edge-list"],
            f"expected one row per graph ({len(num_nodes)} in num-node-list.csv.gz), got {len(num_edges)}",
            RAW_FIX,
        )
    checks = [
        ("edge", edge, num_edges, "num-edge-list"),
        ("edge-feat", edge_feat, num_edges, "num-edge-list"),
        ("node-feat", node_feat, num_nodes, "num-node-list"),
    ]
    for name, table, counts, source in checks:
        if table is not None and len(table) != int(counts.sum()):
            raise file_error(
                path[name], f"expected {int(counts.sum())} rows (the sum of {source}.csv.gz), got {len(table)}", RAW_FIX
            )
    # Every edge joins two nodes of its own graph (OGB's edge indices are local to the graph).
    nodes_of_edge = np.repeat(num_nodes, num_edges)
    bad = (edge < 0).any(axis=1) | (edge >= nodes_of_edge[:, None]).any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        graph = int(np.searchsorted(np.cumsum(num_edges), row, side="right"))
        raise file_error(
            path["edge"],
            f"expected node indices in [0, {nodes_of_edge[row]}) for graph {graph}, "
            f"got {edge[row].tolist()} in row {row}",
            RAW_FIX,
        )

    graphs = []
    node_offsets = np.concatenate([[0], np.cumsum(num_nodes)])
    edge_offsets = np.concatenate([[0], np.cumsum(num_edges)])
    for graph in range(len(num_nodes)):
        edges = slice(edge_offsets[graph], edge_offsets[graph + 1])
        edge_index = edge[edges].T
        features = None if edge_feat is None else edge_feat[edges]
        if add_inverse_edge:
            # Each edge followed by its reverse, as OGB's reader orders them.
            edge_index = np.stack([edge_index, edge_index[::-1]], axis=2).reshape(2, -1)
            features = None if features is None else np.repeat(features, 2, axis=0)
        graphs.append(
            {
                "edge_index": np.ascontiguousarray(edge_index),
                "edge_feat": features,
                "node_feat": None if node_feat is None else node_feat[node_offsets[graph] : node_offsets[graph + 1]],
                "num_nodes": int(num_nodes[graph]),
            }
        )
    return graphs


def read_labels(raw_dir: str, num_graphs: int) -> np.ndarray:
    """:obj:`graph-label.csv.gz` as float64 [num_graphs, num_tasks] (NaN = missing), finite values checked."""
    path = osp.join(raw_dir, "graph-label.csv.gz")
    labels = read_table(path)
    if len(labels) != num_graphs:
        raise file_error(path, f"expected one row per graph ({num_graphs}), got {len(labels)}", RAW_FIX)
    try:
        labels = labels.astype(np.float64)
    except ValueError as error:
        raise file_error(path, f"expected numeric labels, got {error}", RAW_FIX) from error
    if np.isinf(labels).any():
        row, column = (int(index[0]) for index in np.nonzero(np.isinf(labels)))
        raise file_error(
            path, f"expected finite or missing labels, got {labels[row, column]} in row {row}, column {column}", RAW_FIX
        )
    return labels
