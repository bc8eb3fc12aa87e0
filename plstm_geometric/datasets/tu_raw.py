r"""The check of a TU set's raw text files, before PyG's reader sees them.

PyG's :func:`~torch_geometric.io.read_tu_data` trusts the files. An edge to a node that does not exist, an
edge between two graphs, or an unsorted :obj:`graph_indicator` gives negative or foreign node indices; a
label file one line short shifts every later node; a last line without a line end is dropped; a node label
of :math:`10^8` asks for a one-hot matrix of gigabytes; anything else surfaces as a raw :class:`ValueError`
or :class:`IndexError` from deep inside the reader. :func:`check_tu_raw` reads every file the reader would
read, with the reader's own number conversion, and raises
:class:`~plstm_geometric.datasets.safe_load.DatasetFileError` naming the file, the line and the fix.
"""

import os
import os.path as osp

import numpy as np

from .safe_load import file_error

__all__ = ["check_tu_raw", "MAX_TU_LABEL_VALUES", "TU_FILES"]

# The files of a TU set (PyG reads <name>_<part>.txt for each); the first three are required.
TU_FILES = (
    "A",
    "graph_indicator",
    "graph_labels",
    "node_labels",
    "node_attributes",
    "edge_labels",
    "edge_attributes",
    "graph_attributes",
)
# PyG one-hot encodes node and edge labels over their span (max - min + 1 per column, the columns side by
# side): a bound on that width bounds the memory of x and edge_attr. The largest sets of the TU collection
# have under a hundred node labels; a span of thousands is a damaged file or ids that are not labels.
MAX_TU_LABEL_VALUES = 1000
# Lines parsed at a time: the reader's conversion is Python's int() / float() per cell, and a chunk at a
# time keeps the Python objects of a large file (millions of edges) from being alive all at once.
_CHUNK = 1 << 16
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _fix(name: str) -> str:
    return (
        f"correct the file and copy the set's files again with `python -m plstm_geometric.datasets prepare "
        f"{name} --from FOLDER` (a set PyG downloads: delete its dataset folder to download it again)"
    )


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _read(path: str, integers: bool, columns: int | None, fix: str) -> np.ndarray:
    r"""The file as PyG's :func:`~torch_geometric.io.read_txt_array` reads it (text mode, lines split at
    :obj:`"\n"`, cells at :obj:`","`, each cell through :func:`int` or :func:`float`), as an array
    [lines, columns], with every way that reading can go wrong or silently lose data refused."""
    with open(path, "rb") as handle:
        content = handle.read()
    if not content:
        raise file_error(path, "expected at least one line, got an empty file", fix)
    if not content.isascii():
        # int() and float() read other scripts' digits (int('\u0668') is 8), and PyG decodes the file with
        # the platform's encoding: only ASCII means the same numbers everywhere.
        offset = next(index for index, byte in enumerate(content) if byte > 127)
        line = content.count(b"\n", 0, offset) + 1
        raise file_error(
            path, f"expected ASCII text (numbers, commas, spaces), got byte 0x{content[offset]:02x} on line {line}", fix
        )
    # Text mode's universal newlines, as PyG opens the file: \r\n and \r end a line too.
    lines = content.decode("ascii").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] != "":
        # PyG keeps split("\n")[:-1]: a last line without a line end would silently disappear.
        raise file_error(
            path,
            f"expected a line end after the last line (PyG's reader drops a last line without one), got line "
            f"{len(lines)} {_shown(lines[-1])} without one; end the file with a newline",
            fix,
        )
    lines.pop()
    convert = int if integers else float
    kind = "integers" if integers else "numbers"
    width = columns
    chunks = []
    for start in range(0, len(lines), _CHUNK):
        values = []
        for number, line in enumerate(lines[start : start + _CHUNK], start + 1):
            cells = line.split(",")
            if width is None:
                width = len(cells)
            if len(cells) != width:
                where = "" if columns is not None else " (as on line 1)"
                raise file_error(
                    path,
                    f"expected {width} comma-separated value(s) on every line{where}, got {len(cells)} on line "
                    f"{number}: {_shown(line)}",
                    fix,
                )
            try:
                values.extend(convert(cell) for cell in cells)
            except ValueError:
                bad = next(cell for cell in cells if not _converts(convert, cell))
                raise file_error(path, f"expected {kind}, got {_shown(bad.strip())} on line {number}", fix) from None
        try:
            chunks.append(np.array(values, dtype=np.int64 if integers else np.float64).reshape(-1, width))
        except OverflowError:
            number, cell = next(
                (number, cell)
                for number, line in enumerate(lines[start : start + _CHUNK], start + 1)
                for cell in line.split(",")
                if not _INT64[0] <= int(cell) <= _INT64[1]
            )
            raise file_error(
                path, f"expected integers within int64, got {_shown(cell.strip())} on line {number}", fix
            ) from None
    table = np.concatenate(chunks)
    if not integers:
        # PyG stores attributes as float32: 1e39 is finite here and infinite there.
        with np.errstate(over="ignore", invalid="ignore"):
            finite = np.isfinite(table.astype(np.float32))
        if not finite.all():
            row, column = (int(index[0]) for index in np.nonzero(~finite))
            cell = lines[row].split(",")[column].strip()
            problem = f"expected finite numbers (float32, as PyG stores them), got {_shown(cell)} on line {row + 1}"
            raise file_error(path, problem, fix)
    return table


def _converts(convert, cell: str) -> bool:
    try:
        convert(cell)
    except ValueError:
        return False
    return True


def _check_label_span(path: str, labels: np.ndarray, fix: str) -> None:
    # Python ints: max - min of int64 labels can overflow int64.
    spans = [int(column.max()) - int(column.min()) + 1 for column in labels.T]
    if sum(spans) > MAX_TU_LABEL_VALUES:
        column = int(np.argmax(spans))
        low, high = int(labels[:, column].min()), int(labels[:, column].max())
        far = high if abs(high) >= abs(low) else low
        line = int(np.flatnonzero(labels[:, column] == far)[0]) + 1
        raise file_error(
            path,
            f"expected labels whose one-hot width (max - min + 1 per column, summed over the columns) is at most "
            f"{MAX_TU_LABEL_VALUES}, got {sum(spans)} (column {column + 1} spans {low} to {high}, {far} on line "
            f"{line}); number the labels 0, 1, 2, ...",
            fix,
        )


def _check_lines(path: str, table: np.ndarray, expected: int, what: str, source: str, fix: str) -> None:
    if len(table) != expected:
        raise file_error(
            path, f"expected one line per {what} ({expected} {what}s in {source}), got {len(table)} lines", fix
        )


def check_tu_raw(folder: str | os.PathLike, name: str) -> None:
    r"""Checks the raw TU text files :obj:`<name>_*.txt` of :obj:`folder` before PyG's reader reads them.

    Each file is read as PyG reads it (lines, comma-separated cells, Python's :func:`int` or :func:`float`
    per cell) and must be non-empty ASCII text whose last line ends with a line end, with the same number of
    cells on every line. Then:

    * :obj:`graph_indicator` (required): one integer per node, sorted and consecutive from 1 (each line
      equal to the one before or one more), at least 2 nodes and 2 graphs (PyG's reader squeezes a
      single line to a scalar);
    * :obj:`graph_labels` (required): one integer per graph;
    * :obj:`A` (required): two integers per line, at least 2 lines, both node numbers in
      :math:`[1, N]` and in one graph; when the set has edge labels or attributes, no edge twice (PyG's
      reader merges repeated edges and adds up their labels). Self-loops are allowed: PyG drops them;
    * :obj:`node_labels`, :obj:`node_attributes` (optional): one line per node;
      :obj:`edge_labels`, :obj:`edge_attributes` (optional): one line per line of :obj:`A`;
    * labels (node, edge, graph) are integers within int64 whose one-hot width, :math:`\max - \min + 1`
      per column summed over the columns, is at most :obj:`MAX_TU_LABEL_VALUES` (1000); attributes are
      finite as float32;
    * :obj:`graph_attributes` is refused: PyG's reader would make those regression targets the graphs'
      :obj:`y` in place of the class labels.

    Args:
        folder: the folder holding the files.
        name (str): the set's name, the files' prefix.

    Raises:
        DatasetFileError: a file is missing, damaged or disagrees with the others; the message names the
            file, the line where there is one, and the fix.
    """
    folder = os.fspath(folder)
    fix = _fix(name)
    path = {part: osp.join(folder, f"{name}_{part}.txt") for part in TU_FILES}
    present = {part: osp.isfile(path[part]) for part in TU_FILES}
    for part in ("A", "graph_indicator", "graph_labels"):
        if not present[part]:
            raise file_error(path[part], "expected a raw file, got nothing at this path", fix)
    if present["graph_attributes"]:
        raise file_error(
            path["graph_attributes"],
            "expected no graph attributes: PyG's reader would take these regression targets as the graphs' y in "
            "place of the class labels of graph_labels, and a TU dataset here is a classification set; remove the "
            "file from the set's files to classify by graph_labels",
            fix,
        )
    indicator_name = f"{name}_graph_indicator.txt"

    indicator = _read(path["graph_indicator"], True, 1, fix)[:, 0]
    if indicator[0] != 1:
        raise file_error(path["graph_indicator"], f"expected graph 1 on line 1, got {indicator[0]}", fix)
    steps = np.diff(indicator)
    bad = np.flatnonzero((steps != 0) & (steps != 1))
    if bad.size:
        line = int(bad[0]) + 2
        raise file_error(
            path["graph_indicator"],
            f"expected graph numbers sorted and consecutive from 1 (each line equal to the one before or one "
            f"more), got {indicator[line - 1]} after {indicator[line - 2]} on line {line}",
            fix,
        )
    num_nodes, num_graphs = len(indicator), int(indicator[-1])
    if num_graphs < 2:
        raise file_error(
            path["graph_indicator"],
            f"expected at least 2 graphs (PyG's reader cannot read a set of one), got {num_graphs}",
            fix,
        )

    graph_labels = _read(path["graph_labels"], True, 1, fix)
    _check_lines(path["graph_labels"], graph_labels, num_graphs, "graph", indicator_name, fix)
    _check_label_span(path["graph_labels"], graph_labels, fix)

    edges = _read(path["A"], True, 2, fix)
    if len(edges) < 2:
        raise file_error(
            path["A"], f"expected at least 2 lines (PyG's reader cannot read a single edge), got {len(edges)}", fix
        )
    outside = (edges < 1) | (edges > num_nodes)
    if outside.any():
        row, column = (int(index[0]) for index in np.nonzero(outside))
        raise file_error(
            path["A"],
            f"expected node numbers in [1, {num_nodes}] (the lines of {indicator_name}), got "
            f"{edges[row, column]} on line {row + 1}",
            fix,
        )
    graph_of = indicator[edges - 1]
    across = np.flatnonzero(graph_of[:, 0] != graph_of[:, 1])
    if across.size:
        row = int(across[0])
        (source, target), (first, second) = edges[row].tolist(), graph_of[row].tolist()
        raise file_error(
            path["A"],
            f"expected both nodes of an edge in one graph, got {source}, {target} on line {row + 1} (node {source} "
            f"in graph {first}, node {target} in graph {second} by {indicator_name})",
            fix,
        )
    if present["edge_labels"] or present["edge_attributes"]:
        key = edges[:, 0] * (num_nodes + 1) + edges[:, 1]
        order = np.argsort(key, kind="stable")  # among equal keys, file order
        repeated = order[1:][key[order][1:] == key[order][:-1]]
        if repeated.size:
            again = int(repeated.min())
            first = int(order[np.searchsorted(key[order], key[again])])
            source, target = edges[again].tolist()
            raise file_error(
                path["A"],
                f"expected each edge once when edges carry labels or attributes (PyG's reader merges repeated "
                f"edges and adds up their labels), got {source}, {target} on lines {first + 1} and {again + 1}",
                fix,
            )

    a_name = f"{name}_A.txt"
    for part, integers, count, what, source in (
        ("node_labels", True, num_nodes, "node", indicator_name),
        ("node_attributes", False, num_nodes, "node", indicator_name),
        ("edge_labels", True, len(edges), "edge", a_name),
        ("edge_attributes", False, len(edges), "edge", a_name),
    ):
        if not present[part]:
            continue
        table = _read(path[part], integers, None, fix)
        _check_lines(path[part], table, count, what, source, fix)
        if integers:
            _check_label_span(path[part], table, fix)
