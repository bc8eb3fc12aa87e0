"""Symbolic links out of the data root: nothing outside it is written or deleted, by any writer."""

import os

import pandas as pd
import pytest

from plstm_geometric.datasets import OGBMolDataset, TUGraphDataset, build_ogb_dataset, prepare_peptides, prepare_tu
from plstm_geometric.datasets.paths import owned_path
from tests.datasets.test_lrgb import write_official_files
from tests.datasets.test_tu import write_tu_raw

ESCAPE = "a symbolic link leads out of the data root"


def planted(folder):
    """A folder outside the data root with raw/ and processed/ holding files that must survive."""
    for part in ("raw", "processed"):
        (folder / part).mkdir(parents=True)
        (folder / part / "keep.txt").write_text("precious")
    return folder


def untouched(folder):
    return all((folder / part / "keep.txt").read_text() == "precious" for part in ("raw", "processed")) and sorted(
        path.name for path in folder.iterdir()
    ) == ["processed", "raw"]


def test_prepare_tu_refuses_a_dataset_folder_that_links_outside(tmp_path):
    source = tmp_path / "source"
    write_tu_raw(source, "TOY", num_graphs=6)
    outside = planted(tmp_path / "outside")
    (tmp_path / "root" / "TU").mkdir(parents=True)
    os.symlink(outside, tmp_path / "root" / "TU" / "TOY")
    with pytest.raises(ValueError, match=ESCAPE):
        prepare_tu("TOY", source, tmp_path / "root")
    assert untouched(outside)


@pytest.mark.parametrize("part", ["raw", "processed"])
def test_prepare_tu_refuses_a_raw_or_processed_folder_that_links_outside(tmp_path, part):
    source = tmp_path / "source"
    write_tu_raw(source, "TOY", num_graphs=6)
    outside = planted(tmp_path / "outside")
    dataset = tmp_path / "root" / "TU" / "TOY"
    dataset.mkdir(parents=True)
    os.symlink(outside / part, dataset / part)
    with pytest.raises(ValueError, match=ESCAPE):
        prepare_tu("TOY", source, tmp_path / "root")
    assert untouched(outside)


def test_prepare_peptides_refuses_a_dataset_folder_that_links_outside(tmp_path):
    source = write_official_files(tmp_path / "source")
    outside = planted(tmp_path / "outside")
    (tmp_path / "root").mkdir()
    os.symlink(outside, tmp_path / "root" / "peptides-functional")
    with pytest.raises(ValueError, match=ESCAPE):
        prepare_peptides(source, tmp_path / "root", check_md5_sums=False)
    assert untouched(outside)


def test_prepare_peptides_refuses_a_processed_folder_that_links_outside(tmp_path):
    source = write_official_files(tmp_path / "source")
    outside = planted(tmp_path / "outside")
    (tmp_path / "root" / "peptides-functional").mkdir(parents=True)
    os.symlink(outside / "processed", tmp_path / "root" / "peptides-functional" / "processed")
    with pytest.raises(ValueError, match=ESCAPE):
        prepare_peptides(source, tmp_path / "root", check_md5_sums=False)
    assert untouched(outside)


def test_build_ogb_refuses_to_overwrite_a_dataset_folder_that_links_outside(tmp_path):
    outside = planted(tmp_path / "outside")
    (tmp_path / "root").mkdir()
    os.symlink(outside, tmp_path / "root" / "my_set")
    frame = pd.DataFrame({"smiles": ["CCO", "c1ccccc1O", "CC(=O)O", "C1CCCCC1N"], "y": [0, 1, 0, 1]})
    with pytest.raises(ValueError, match=ESCAPE):
        build_ogb_dataset(frame, "my-set", tmp_path / "root", target_columns=["y"], overwrite=True)
    assert untouched(outside)


def test_processing_never_writes_through_a_linked_dataset_folder(tmp_path):
    # The raw files are readable through the link, but processing would write processed/ outside.
    outside = tmp_path / "outside"
    write_tu_raw(outside / "raw", "TOY", num_graphs=6)
    (tmp_path / "root" / "TU").mkdir(parents=True)
    os.symlink(outside, tmp_path / "root" / "TU" / "TOY")
    with pytest.raises(ValueError, match=ESCAPE):
        TUGraphDataset("TOY", tmp_path / "root")
    assert sorted(path.name for path in outside.iterdir()) == ["raw"]


def test_a_download_never_replaces_a_linked_dataset_folder(tmp_path):
    outside = planted(tmp_path / "outside")
    (tmp_path / "root").mkdir()
    os.symlink(outside, tmp_path / "root" / "custom_set")
    meta = {
        "num tasks": 1,
        "eval metric": "rocauc",
        "task type": "binary classification",
        "add_inverse_edge": "True",
        "split": "scaffold",
        "url": f"file://{tmp_path}/absent.zip",
        "download_name": "absent",
    }
    with pytest.raises(ValueError, match=ESCAPE):
        OGBMolDataset("custom-set", tmp_path / "root", meta_info=meta)
    assert untouched(outside)


def test_a_linked_data_root_and_links_inside_it_are_fine(tmp_path):
    source = tmp_path / "source"
    write_tu_raw(source, "TOY", num_graphs=6)
    (tmp_path / "real_root").mkdir()
    os.symlink(tmp_path / "real_root", tmp_path / "root")
    prepare_tu("TOY", source, tmp_path / "root", link=True)  # raw/ holds links to the source files
    prepare_tu("TOY", source, tmp_path / "root")  # replacing those links is fine
    assert len(TUGraphDataset("TOY", tmp_path / "root")) == 6
    # A link inside the root that stays inside it is followed.
    os.symlink(tmp_path / "real_root" / "TU", tmp_path / "real_root" / "TU_alias")
    assert owned_path(tmp_path / "root" / "TU_alias" / "TOY", tmp_path / "root")
    # A link that is itself replaced is checked without following it.
    os.symlink(tmp_path / "source", tmp_path / "real_root" / "link")
    assert owned_path(tmp_path / "root" / "link", tmp_path / "root", follow=False)
    with pytest.raises(ValueError, match=ESCAPE):
        owned_path(tmp_path / "root" / "link", tmp_path / "root")
    with pytest.raises(ValueError, match=ESCAPE):
        owned_path(tmp_path / "root" / ".." / "elsewhere", tmp_path / "root")
