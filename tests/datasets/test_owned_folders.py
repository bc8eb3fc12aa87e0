"""``prepare --from`` replaces raw/ and processed/ of a dataset folder: never through a symbolic link that
leads out of the data root."""

import pytest

from plstm_geometric.datasets.lrgb import prepare_peptides
from plstm_geometric.datasets.tu import prepare_tu


def tu_files(folder, name="TINY"):
    folder.mkdir(parents=True)
    # Two graphs of one edge each: the least PyG's reader reads (prepare_tu checks the files).
    (folder / f"{name}_A.txt").write_text("1, 2\n2, 1\n3, 4\n4, 3\n")
    (folder / f"{name}_graph_indicator.txt").write_text("1\n1\n2\n2\n")
    (folder / f"{name}_graph_labels.txt").write_text("0\n1\n")


@pytest.mark.parametrize("linked", ["TU", "TU/TINY"])
def test_prepare_tu_refuses_a_dataset_folder_linked_out_of_the_root(tmp_path, linked):
    tu_files(tmp_path / "source")
    elsewhere = tmp_path / "elsewhere"
    victim = elsewhere / ("TINY" if linked == "TU" else "") / "processed" / "keep.txt"
    victim.parent.mkdir(parents=True)
    victim.write_text("not the library's")
    root = tmp_path / "root"
    link = root / linked
    link.parent.mkdir(parents=True)
    link.symlink_to(elsewhere)
    with pytest.raises(ValueError, match="outside the data root"):
        prepare_tu("TINY", tmp_path / "source", root)
    assert victim.read_text() == "not the library's"


def test_prepare_tu_still_replaces_its_own_folders(tmp_path):
    tu_files(tmp_path / "source")
    root = tmp_path / "root"
    (root / "TU" / "TINY" / "processed").mkdir(parents=True)
    (root / "TU" / "TINY" / "processed" / "old.pt").write_text("old")
    raw = prepare_tu("TINY", tmp_path / "source", root)
    assert sorted(p.name for p in (root / "TU" / "TINY" / "raw").iterdir()) == [
        "TINY_A.txt",
        "TINY_graph_indicator.txt",
        "TINY_graph_labels.txt",
    ]
    assert raw.endswith("raw") and not (root / "TU" / "TINY" / "processed").exists()


def test_prepare_peptides_refuses_a_dataset_folder_linked_out_of_the_root(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    victim = elsewhere / "processed" / "keep.txt"
    victim.parent.mkdir(parents=True)
    victim.write_text("not the library's")
    source = tmp_path / "source"
    source.mkdir()
    (source / "peptide_multi_class_dataset.csv.gz").write_bytes(b"x")
    (source / "splits_random_stratified_peptide.pickle").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "peptides-functional").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="outside the data root"):
        prepare_peptides(source, root, check_md5_sums=False)
    assert victim.read_text() == "not the library's"
