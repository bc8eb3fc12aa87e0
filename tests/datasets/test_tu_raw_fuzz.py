"""Damaged variants of a small valid TU set, drawn by a seeded generator: each one either loads exactly the data its
files describe or raises a DatasetFileError naming one of its files; never another exception, never wrong data.

What the files describe is computed here by an independent reading of the rules that
:func:`~plstm_geometric.datasets.tu_raw.check_tu_raw` documents (:func:`describe`), from the text itself: a variant
that loads must be valid by those rules and load as described, and a refused variant must break one of them.
"""

import math
import random
import warnings

import numpy as np
import pytest

from plstm_geometric.datasets import DatasetFileError, TUGraphDataset
from plstm_geometric.datasets.tu import tu_raw_dir
from plstm_geometric.datasets.tu_raw import MAX_TU_LABEL_VALUES, TU_FILES
from tests.datasets.test_tu_raw import TINY, write_tu

NUM_CASES = 200
INTEGER_PARTS = ("A", "graph_indicator", "graph_labels", "node_labels", "edge_labels")
# Cells a damaged file may hold: numbers in and out of range, what int() and float() accept or refuse.
TOKENS = ["0", "1", "2", "3", "-1", "8", "9", "1000", "100000000", "99999999999999999999", "1.5", "nan", "inf"]
TOKENS += ["1e39", "", " ", "x", " 2 ", "+3", "1_0", "0x1", "\u0663", "\t4", "1 2"]


class Invalid(Exception):
    """The files break a rule of check_tu_raw."""


def rows_of(data: bytes, integers: bool, columns: int | None = None) -> list[list]:
    if not data or not data.isascii():
        raise Invalid("empty or not ASCII")
    text = data.decode().replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        raise Invalid("no line end after the last line")
    rows = []
    for line in text[:-1].split("\n"):
        try:
            rows.append([int(cell) if integers else float(cell) for cell in line.split(",")])
        except ValueError as error:
            raise Invalid(str(error)) from None
    if len({len(row) for row in rows}) != 1 or (columns is not None and len(rows[0]) != columns):
        raise Invalid("column count")
    for row in rows:
        for value in row:
            if integers and not -(2**63) <= value < 2**63:
                raise Invalid("beyond int64")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if not integers and not math.isfinite(np.float32(value)):
                    raise Invalid("not finite as float32")
    return rows


def one_hot(rows: list[list[int]]) -> list[list[float]]:
    """PyG's one-hot of label columns: each column shifted to start at 0, the columns side by side."""
    columns = list(zip(*rows))
    if sum(max(column) - min(column) + 1 for column in columns) > MAX_TU_LABEL_VALUES:
        raise Invalid("label span")
    encoded = [[] for _ in rows]
    for column in columns:
        low, width = min(column), max(column) - min(column) + 1
        for row, value in enumerate(column):
            encoded[row] += [1.0 if value - low == index else 0.0 for index in range(width)]
    return encoded


def describe(files: dict[str, bytes]) -> list[dict]:
    """The graphs the files describe (raises Invalid when they break a rule)."""
    if any(part not in files for part in ("A", "graph_indicator", "graph_labels")) or "graph_attributes" in files:
        raise Invalid("files")
    indicator = [row[0] for row in rows_of(files["graph_indicator"], True, 1)]
    if indicator[0] != 1 or any(b - a not in (0, 1) for a, b in zip(indicator, indicator[1:])):
        raise Invalid("graph_indicator not sorted and consecutive from 1")
    num_nodes, num_graphs = len(indicator), indicator[-1]
    labels = rows_of(files["graph_labels"], True, 1)
    if num_graphs < 2 or len(labels) != num_graphs:
        raise Invalid("graph count")
    one_hot(labels)
    edges = rows_of(files["A"], True, 2)
    if len(edges) < 2 or any(not 1 <= node <= num_nodes for edge in edges for node in edge):
        raise Invalid("edges")
    if any(indicator[u - 1] != indicator[v - 1] for u, v in edges):
        raise Invalid("edge between graphs")
    has_edge_features = "edge_labels" in files or "edge_attributes" in files
    if has_edge_features and len({tuple(edge) for edge in edges}) != len(edges):
        raise Invalid("repeated edge with features")
    node_x = [[] for _ in range(num_nodes)]
    edge_x = [[] for _ in edges]
    for part, features, count in (
        ("node_attributes", node_x, num_nodes),
        ("node_labels", node_x, num_nodes),
        ("edge_attributes", edge_x, len(edges)),
        ("edge_labels", edge_x, len(edges)),
    ):
        if part in files:
            rows = rows_of(files[part], part.endswith("labels"))
            if len(rows) != count:
                raise Invalid(f"{part} count")
            for row, values in zip(features, one_hot(rows) if part.endswith("labels") else rows):
                row += values
    classes = sorted({row[0] for row in labels})
    first = {graph: indicator.index(graph) for graph in range(1, num_graphs + 1)}
    graphs = []
    for graph in range(1, num_graphs + 1):
        nodes = [node for node in range(num_nodes) if indicator[node] == graph]
        graph_edges = {
            (u - 1 - first[graph], v - 1 - first[graph]): tuple(edge_x[index])
            for index, (u, v) in enumerate(edges)
            if indicator[u - 1] == graph and u != v  # PyG drops self-loops
        }
        graphs.append(
            {
                "num_nodes": len(nodes),
                "x": [node_x[node] for node in nodes],
                "edges": graph_edges,
                "y": classes.index(labels[graph - 1][0]),
            }
        )
    return graphs


# ------------------------------------------------------------------------------------------------ damage
def lines_of(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def damage(files: dict[str, bytes], rng: random.Random) -> str:
    """Applies one random change to files (in place) and says what it did."""
    part = rng.choice(sorted(files))
    data = files[part]
    lines = lines_of(data)
    body = lines[:-1] if lines[-1] == b"" else lines
    kind = rng.choice(
        [
            "delete line",
            "repeat line",
            "swap lines",
            "replace cell",
            "add cell",
            "drop cell",
            "truncate",
            "no final newline",
            "empty",
            "remove file",
            "add file",
            "blank line",
            "crlf",
            "flip byte",
            "shift number",
            "add edge",
            "spaces",
        ]
    )
    index = rng.randrange(len(body)) if body else 0
    if kind == "delete line" and body:
        del body[index]
    elif kind == "repeat line" and body:
        body.insert(rng.randrange(len(body) + 1), body[index])
    elif kind == "swap lines" and len(body) > 1:
        other = rng.randrange(len(body))
        body[index], body[other] = body[other], body[index]
    elif kind in ("replace cell", "add cell", "drop cell", "shift number", "spaces") and body:
        cells = body[index].decode("ascii", "replace").split(",")
        cell = rng.randrange(len(cells))
        if kind == "replace cell":
            cells[cell] = rng.choice(TOKENS)
        elif kind == "add cell":
            cells.insert(cell, rng.choice(TOKENS))
        elif kind == "drop cell":
            del cells[cell]
        elif kind == "spaces":
            cells[cell] = f" {cells[cell].strip()}  "
        else:
            try:
                cells[cell] = str(int(cells[cell]) + rng.choice([-1, 1, 2, -5, 10]))
            except ValueError:
                pass
        body[index] = ",".join(cells).encode()
    elif kind == "truncate":
        files[part] = data[: rng.randrange(len(data) + 1)]
        return f"{part}: {kind}"
    elif kind == "no final newline":
        files[part] = data.rstrip(b"\n")
        return f"{part}: {kind}"
    elif kind == "empty":
        files[part] = b""
        return f"{part}: {kind}"
    elif kind == "remove file" and part not in ("A", "graph_indicator"):
        # A missing A or graph_indicator is a set that is not there (PyG's download step, a FileNotFoundError
        # for a set it cannot download), not a damaged one.
        del files[part]
        return f"{part}: {kind}"
    elif kind == "add file":
        extra = rng.choice(["edge_attributes", "graph_attributes", "edge_labels"])
        count = len(lines_of(files.get("A", b""))) - 1 + rng.choice([0, 0, 0, 1, -1])
        files[extra] = "".join(f"{rng.choice(['0', '1', '0.5', '2'])}\n" for _ in range(max(count, 0))).encode()
        return f"{extra}: {kind} with {count} lines"
    elif kind == "blank line":
        body.insert(rng.randrange(len(body) + 1), b"")
    elif kind == "crlf":
        files[part] = data.replace(b"\n", b"\r\n")
        return f"{part}: {kind}"
    elif kind == "flip byte" and data:
        position = rng.randrange(len(data))
        files[part] = data[:position] + bytes([rng.choice(b"0123456789,- .\n\xc3\xa9e")]) + data[position + 1 :]
        return f"{part}: {kind} at {position}"
    elif kind == "add edge":
        u, v = rng.randrange(0, 11), rng.randrange(0, 11)
        files["A"] = files.get("A", b"") + f"{u}, {v}\n".encode()
        if "edge_labels" in files and rng.random() < 0.8:
            files["edge_labels"] += f"{rng.randrange(3)}\n".encode()
        return f"A: {kind} {u}, {v}"
    else:
        return f"{part}: {kind} (nothing to change)"
    files[part] = b"\n".join(body) + (b"\n" if lines[-1] == b"" else b"")
    return f"{part}: {kind} at line {index + 1}"


def compare(dataset, graphs) -> str | None:
    """What differs between the loaded dataset and the described graphs (None when nothing does)."""
    if len(dataset) != len(graphs):
        return f"{len(dataset)} graphs loaded, {len(graphs)} described"
    for number, (data, graph) in enumerate(zip(dataset, graphs)):
        if data.num_nodes != graph["num_nodes"] or int(data.y) != graph["y"]:
            return f"graph {number}: nodes or class differ"
        x = np.array(graph["x"], dtype=np.float32)
        if (data.x is None) != (x.size == 0) or (data.x is not None and not np.array_equal(data.x.numpy(), x)):
            return f"graph {number}: x {None if data.x is None else data.x.tolist()} != {graph['x']}"
        pairs = [tuple(pair) for pair in data.edge_index.t().tolist()]
        if sorted(pairs) != sorted(graph["edges"]) or len(set(pairs)) != len(pairs):
            return f"graph {number}: edges {pairs} != {sorted(graph['edges'])}"
        features = {pair: np.array(values, dtype=np.float32) for pair, values in graph["edges"].items()}
        if data.edge_attr is None:
            if any(values.size for values in features.values()):
                return f"graph {number}: no edge_attr loaded"
        elif any(not np.array_equal(row, features[pair]) for pair, row in zip(pairs, data.edge_attr.numpy())):
            return f"graph {number}: edge features differ"
    return None


def test_damaged_variants_load_as_described_or_raise_a_dataset_file_error(tmp_path):
    base = {part: text.encode() for part, text in TINY.items()}
    assert describe(base)  # the undamaged set is valid
    failures, outcomes = [], {"loaded": 0, "refused": 0}
    for seed in range(NUM_CASES):
        rng = random.Random(seed)
        files = dict(base)
        if rng.random() < 0.3:  # a third of the cases without the optional files
            for part in ("node_labels", "node_attributes", "edge_labels"):
                if rng.random() < 0.5:
                    del files[part]
        changes = [damage(files, rng) for _ in range(rng.choice([1, 1, 2, 3]))]
        root = tmp_path / str(seed)
        raw = write_tu(tu_raw_dir("TINY", root), files)
        try:
            expected = describe(files)
        except Invalid as reason:
            expected, why = None, str(reason)
        where = f"seed {seed} ({'; '.join(changes)})"
        try:
            dataset = TUGraphDataset("TINY", root, use_node_attr=True, use_edge_attr=True)
        except DatasetFileError as error:
            outcomes["refused"] += 1
            named = [part for part in TU_FILES if str(error).startswith(f"{raw / f'TINY_{part}.txt'}: ")]
            if not named:
                failures.append(f"{where}: the error names no file of the set: {error}")
            elif expected is not None:
                failures.append(f"{where}: valid files refused: {error}")
            continue
        except Exception as error:  # any other exception is what this test looks for
            failures.append(f"{where}: {type(error).__name__} instead of a DatasetFileError: {error}")
            continue
        outcomes["loaded"] += 1
        if expected is None:
            failures.append(f"{where}: loaded files that break a rule ({why})")
            continue
        difference = compare(dataset, expected)
        if difference:
            failures.append(f"{where}: loaded data differs from the files: {difference}")
    assert not failures, "\n".join(failures)
    # The generator reaches both outcomes, each often.
    assert min(outcomes.values()) >= NUM_CASES // 10, outcomes


@pytest.mark.parametrize("seed", [0, 1])
def test_the_generator_is_reproducible(seed):
    first, second = dict(TINY), dict(TINY)
    first = {part: text.encode() for part, text in first.items()}
    second = {part: text.encode() for part, text in second.items()}
    assert damage(first, random.Random(seed)) == damage(second, random.Random(seed)) and first == second
