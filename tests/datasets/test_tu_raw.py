"""The raw TU text files are checked before PyG's reader sees them: a damaged file is a DatasetFileError naming the
file, the line and the fix, never a raw IndexError, a gigabyte allocation or a dataset that loads wrong."""

import pathlib

import pytest
import torch

from plstm_geometric.datasets import DatasetFileError, TUGraphDataset
from plstm_geometric.datasets.__main__ import main
from plstm_geometric.datasets.tu import prepare_tu, tu_raw_dir

# A small valid set: graph 1 a triangle (nodes 1-3), graph 2 one edge (4-5), graph 3 a path (6-8); every
# undirected edge listed in both directions, as the TU collection lists them.
TINY = {
    "A": "1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n4, 5\n5, 4\n6, 7\n7, 6\n7, 8\n8, 7\n",
    "graph_indicator": "1\n1\n1\n2\n2\n3\n3\n3\n",
    "graph_labels": "1\n-1\n1\n",
    "node_labels": "0\n1\n2\n0\n0\n1\n1\n2\n",
    "node_attributes": "".join(f"{node / 2}, {node}.0\n" for node in range(8)),
    "edge_labels": "0\n0\n1\n1\n0\n0\n2\n2\n0\n0\n1\n1\n",
}


def write_tu(folder, files, name="TINY"):
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part, text in files.items():
        (folder / f"{name}_{part}.txt").write_bytes(text.encode() if isinstance(text, str) else text)
    return folder


def changed(**parts):
    """TINY with some files replaced (a value of None removes the file)."""
    files = dict(TINY, **parts)
    return {part: text for part, text in files.items() if text is not None}


def test_the_tiny_set_loads_as_written(tmp_path):
    write_tu(tu_raw_dir("TINY", tmp_path), TINY)
    dataset = TUGraphDataset("TINY", tmp_path, use_edge_attr=True)
    assert len(dataset) == 3 and dataset.y.tolist() == [1, 0, 1]
    assert [graph.num_nodes for graph in dataset] == [3, 2, 3]
    assert dataset[1].edge_index.tolist() == [[0, 1], [1, 0]]
    # 2 node attributes, then the 3 node labels one-hot; the edge labels one-hot.
    assert dataset[0].x.tolist() == [[0.0, 0.0, 1, 0, 0], [0.5, 1.0, 0, 1, 0], [1.0, 2.0, 0, 0, 1]]
    assert dataset[1].edge_attr.tolist() == [[0, 0, 1], [0, 0, 1]]
    assert dataset[2].edge_attr.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]]


# (what is wrong, the files, the file named, what the message says)
DAMAGED = [
    (
        "an edge to node 1000 of an 8-node set",
        changed(A=TINY["A"] + "1, 1000\n"),
        "A",
        r"expected node numbers in \[1, 8\] \(the lines of TINY_graph_indicator.txt\), got 1000 on line 13",
    ),
    (
        "an edge to node 0 (TU numbers nodes from 1)",
        changed(A="0, 1\n" + TINY["A"]),
        "A",
        r"expected node numbers in \[1, 8\] .*got 0 on line 1\b",
    ),
    (
        "an edge between two graphs",
        changed(A=TINY["A"] + "3, 4\n"),
        "A",
        r"expected both nodes of an edge in one graph, got 3, 4 on line 13 \(node 3 in graph 1, node 4 in graph 2",
    ),
    (
        "an unsorted graph_indicator",
        changed(graph_indicator="1\n1\n2\n1\n2\n3\n3\n3\n"),
        "graph_indicator",
        r"expected graph numbers sorted and consecutive from 1 .*got 1 after 2 on line 4",
    ),
    (
        "a graph_indicator that skips a graph",
        changed(graph_indicator="1\n1\n1\n2\n2\n4\n4\n4\n"),
        "graph_indicator",
        r"got 4 after 2 on line 6",
    ),
    (
        "a graph_indicator that starts at 0 (negative indices after PyG's -1)",
        changed(graph_indicator="0\n0\n0\n1\n1\n2\n2\n2\n"),
        "graph_indicator",
        r"expected graph 1 on line 1, got 0",
    ),
    (
        "NaN in the node attributes",
        changed(node_attributes=TINY["node_attributes"].replace("1.5, 3.0", "nan, 3.0")),
        "node_attributes",
        r"expected finite numbers .*got 'nan' on line 4",
    ),
    (
        "an attribute beyond float32",
        changed(node_attributes=TINY["node_attributes"].replace("1.5, 3.0", "1.5, 1e39")),
        "node_attributes",
        r"expected finite numbers \(float32.*got '1e39' on line 4",
    ),
    (
        "a graph label near 1e8",
        changed(graph_labels="1\n-1\n100000000\n"),
        "graph_labels",
        r"expected labels whose one-hot width .* is at most 1000, got 100000002 .*100000000 on line 3",
    ),
    (
        "a node label near 1e8 (gigabytes of one-hot)",
        changed(node_labels=TINY["node_labels"].replace("2\n", "100000000\n", 1)),
        "node_labels",
        r"at most 1000, got 100000001 .*100000000 on line 3",
    ),
    (
        "a label beyond int64",
        changed(edge_labels=TINY["edge_labels"].replace("2\n", "99999999999999999999\n", 1)),
        "edge_labels",
        r"expected integers within int64, got '99999999999999999999' on line 7",
    ),
    (
        "three columns in A",
        changed(A=TINY["A"].replace("4, 5\n", "4, 5, 1\n")),
        "A",
        r"expected 2 comma-separated value\(s\) on every line, got 3 on line 7",
    ),
    (
        "a line of node attributes with a value missing",
        changed(node_attributes=TINY["node_attributes"].replace("1.5, 3.0", "1.5")),
        "node_attributes",
        r"expected 2 comma-separated value\(s\) on every line \(as on line 1\), got 1 on line 4",
    ),
    (
        "two class columns in graph_labels",
        changed(graph_labels="1, 0\n-1, 0\n1, 0\n"),
        "graph_labels",
        r"expected 1 comma-separated value\(s\) on every line, got 2 on line 1",
    ),
    ("a non-numeric cell", changed(A=TINY["A"].replace("7, 8", "7, x")), "A", r"expected integers, got 'x' on line 11"),
    (
        "a fraction in an integer file",
        changed(node_labels=TINY["node_labels"].replace("1\n", "1.5\n", 1)),
        "node_labels",
        r"expected integers, got '1.5' on line 2",
    ),
    ("an empty cell", changed(A=TINY["A"].replace("4, 5", "4,")), "A", r"expected integers, got '' on line 7"),
    ("a blank line", changed(graph_labels="1\n\n-1\n1\n"), "graph_labels", r"expected integers, got '' on line 2"),
    ("an empty A", changed(A=""), "A", r"expected at least one line, got an empty file"),
    ("an empty graph_labels", changed(graph_labels=""), "graph_labels", r"got an empty file"),
    (
        "a single edge (PyG's reader squeezes it to one dimension)",
        changed(A="1, 2\n", edge_labels="0\n"),
        "A",
        r"expected at least 2 lines .*got 1",
    ),
    (
        "a single graph",
        changed(
            A="1, 2\n2, 1\n",
            graph_indicator="1\n1\n",
            graph_labels="0\n",
            node_labels=None,
            node_attributes=None,
            edge_labels=None,
        ),
        "graph_indicator",
        r"expected at least 2 graphs .*got 1",
    ),
    (
        "more graph labels than graphs",
        changed(graph_labels="1\n-1\n1\n1\n"),
        "graph_labels",
        r"expected one line per graph \(3 graphs in TINY_graph_indicator.txt\), got 4 lines",
    ),
    ("fewer graph labels than graphs", changed(graph_labels="1\n-1\n"), "graph_labels", r"got 2 lines"),
    (
        "a node more in graph_indicator than in the label files",
        changed(graph_indicator=TINY["graph_indicator"] + "3\n"),
        "node_labels",
        r"expected one line per node \(9 nodes in TINY_graph_indicator.txt\), got 8 lines",
    ),
    (
        "node_labels one line short",
        changed(node_labels="0\n1\n2\n0\n0\n1\n1\n"),
        "node_labels",
        r"expected one line per node \(8 nodes .*got 7 lines",
    ),
    (
        "node_attributes one line long",
        changed(node_attributes=TINY["node_attributes"] + "9.0, 9.0\n"),
        "node_attributes",
        r"got 9 lines",
    ),
    (
        "edge_labels for fewer edges than A",
        changed(edge_labels="0\n0\n0\n"),
        "edge_labels",
        r"expected one line per edge \(12 edges in TINY_A.txt\), got 3 lines",
    ),
    (
        "edge attributes for more edges than A",
        changed(edge_attributes="0.5\n" * 13),
        "edge_attributes",
        r"expected one line per edge \(12 edges .*got 13 lines",
    ),
    (
        "a repeated edge with edge labels (PyG's reader would add up their labels)",
        changed(A=TINY["A"] + "1, 2\n", edge_labels=TINY["edge_labels"] + "2\n"),
        "A",
        r"expected each edge once .*got 1, 2 on lines 1 and 13",
    ),
    (
        "a last line without a line end (PyG's reader drops it)",
        changed(A=TINY["A"].rstrip("\n")),
        "A",
        r"expected a line end after the last line .*line 12",
    ),
    (
        "a byte that is not ASCII (int() reads other scripts' digits)",
        changed(A=TINY["A"].replace("7, 8", "7, \u0668")),
        "A",
        r"expected ASCII text.*line 11",
    ),
    ("no graph_labels file", changed(graph_labels=None), "graph_labels", r"expected a raw file, got nothing"),
    (
        "graph attributes (PyG would make them the target instead of the class labels)",
        changed(graph_attributes="0.5\n1.5\n2.5\n"),
        "graph_attributes",
        r"expected no graph attributes",
    ),
]


@pytest.mark.parametrize("what, files, part, message", DAMAGED, ids=[case[0] for case in DAMAGED])
def test_damaged_raw_files_are_refused_naming_file_line_and_fix(tmp_path, what, files, part, message):
    raw = write_tu(tu_raw_dir("TINY", tmp_path), files)
    with pytest.raises(DatasetFileError, match=message) as error:
        TUGraphDataset("TINY", tmp_path)
    text = str(error.value)
    assert text.startswith(str(raw / f"TINY_{part}.txt") + ": "), text
    assert "prepare TINY --from" in text  # the fix
    assert not (tmp_path / "TU" / "TINY" / "processed" / "data.pt").exists()


def test_prepare_from_checks_the_source_and_keeps_the_old_files(tmp_path, caplog):
    root = tmp_path / "root"
    good = write_tu(tmp_path / "good", TINY)
    prepare_tu("TINY", good, root)
    assert len(TUGraphDataset("TINY", root)) == 3
    bad = write_tu(tmp_path / "bad", changed(A=TINY["A"] + "1, 1000\n"))
    with pytest.raises(DatasetFileError, match=r"bad/TINY_A.txt: expected node numbers in \[1, 8\]"):
        prepare_tu("TINY", bad, root)
    # Nothing was replaced: the good files and their processed data are still there.
    assert (root / "TU" / "TINY" / "raw" / "TINY_A.txt").read_text() == TINY["A"]
    assert len(TUGraphDataset("TINY", root)) == 3
    # The command line reports it as an error naming the file, without a traceback.
    assert main(["prepare", "TINY", "--root", str(root), "--from", str(bad)]) == 1
    assert "TINY_A.txt: expected node numbers in [1, 8]" in caplog.text


def test_valid_spellings_load_the_same_data(tmp_path):
    """Windows line ends, spaces, '+' signs and self-loops (dropped by PyG) are valid: same graphs as TINY."""
    write_tu(tu_raw_dir("TINY", tmp_path / "a"), TINY)
    expected = TUGraphDataset("TINY", tmp_path / "a", use_edge_attr=True)
    variant = {part: text.replace("\n", "\r\n") for part, text in TINY.items()}
    variant["A"] = variant["A"].replace("1, 2", " +1 ,2 ") + "5, 5\r\n"
    variant["edge_labels"] = variant["edge_labels"] + "0\r\n"
    write_tu(tu_raw_dir("TINY", tmp_path / "b"), variant)
    dataset = TUGraphDataset("TINY", tmp_path / "b", use_edge_attr=True)
    for one, other in zip(expected, dataset):
        for key in ("x", "edge_index", "edge_attr", "y"):
            assert torch.equal(one[key], other[key]), key


def test_trailing_graphs_without_edges_stay_graphs(tmp_path):
    """PyG's reader ends the edge slices at the last graph with an edge, which merged the graphs after it into
    that graph (3 graphs loaded as 1); they load as graphs of their own."""
    files = changed(
        graph_indicator=TINY["graph_indicator"] + "4\n5\n5\n",
        graph_labels=TINY["graph_labels"] + "-1\n1\n",
        node_labels=TINY["node_labels"] + "0\n1\n2\n",
        node_attributes=TINY["node_attributes"] + "8.0, 8.0\n9.0, 9.0\n10.0, 10.0\n",
        A=TINY["A"] + "10, 10\n",  # a self-loop, which PyG drops: graph 5 has no edge either
        edge_labels=TINY["edge_labels"] + "0\n",
    )
    write_tu(tu_raw_dir("TINY", tmp_path), files)
    dataset = TUGraphDataset("TINY", tmp_path)
    assert len(dataset) == 5 and dataset.y.tolist() == [1, 0, 1, 0, 1]
    assert [graph.num_nodes for graph in dataset] == [3, 2, 3, 1, 2]
    assert [graph.edge_index.size(1) for graph in dataset] == [6, 2, 4, 0, 0]
    assert dataset[4].x[:, :2].tolist() == [[9.0, 9.0], [10.0, 10.0]]


def test_shared_sets_pass_the_check(tmp_path):
    from plstm_geometric.datasets.tu import check_tu_raw
    from plstm_geometric.testing import shared_path

    for name in ("MUTAG", "PROTEINS", "ENZYMES"):
        check_tu_raw(shared_path("data", "tu", name), name)
