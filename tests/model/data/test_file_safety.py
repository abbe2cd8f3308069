"""The output rule of every command that writes (``check_output``), and atomic writes through symlinks."""

import os

import pytest

from cga_model.data.errors import DataError
from cga_model.data.file_safety import atomic_write, check_holds_only, check_output, safe_case_path


@pytest.fixture
def dataset(tmp_path):
    """An input dataset folder with one file: ``tmp/data/imagesTr/A.nii.gz``."""
    (tmp_path / "data" / "imagesTr").mkdir(parents=True)
    (tmp_path / "data" / "imagesTr" / "A.nii.gz").write_bytes(b"input")
    return tmp_path / "data"


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_out_inside_or_equal_to_an_input_is_refused_even_with_overwrite(dataset, overwrite):
    for out in (dataset, dataset / "imagesTr", dataset / "imagesTr" / "new"):
        with pytest.raises(DataError, match="is inside the input .*refused even with --overwrite"):
            check_output(out, inputs=(dataset,), overwrite=overwrite, will_write=[out / "A.nii.gz"])


def test_a_symlink_into_the_input_is_seen_through(dataset, tmp_path):
    link = tmp_path / "pred"
    link.symlink_to(dataset / "imagesTr")
    with pytest.raises(DataError, match="is inside the input"):
        check_output(link, inputs=(dataset,), overwrite=True, will_write=[link / "A.nii.gz"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "A.nii.gz").symlink_to(dataset / "imagesTr" / "A.nii.gz")
    with pytest.raises(DataError, match="A.nii.gz leads into the input"):
        check_output(out, inputs=(dataset,), overwrite=True, will_write=[out / "A.nii.gz"])


def test_a_folder_replaced_as_a_whole_must_not_hold_an_input(dataset, tmp_path):
    with pytest.raises(DataError, match="holds the input .*would delete the input"):
        check_output(tmp_path, inputs=(dataset,), overwrite=True, will_write=(tmp_path,), replaces=True)
    check_output(tmp_path / "other", inputs=(dataset,), will_write=(tmp_path / "other",), replaces=True)


def test_existing_files_are_replaced_only_with_overwrite(tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    files = [out / "A.nii.gz", out / "A_overlay.png", out / "B.nii.gz"]
    check_output(out, will_write=files)  # nothing there yet
    files[1].write_bytes(b"old")
    files[2].write_bytes(b"old")
    with pytest.raises(DataError, match=r"A_overlay.png exists \(and 1 more it would replace\); pass --overwrite"):
        check_output(out, will_write=files)
    check_output(out, will_write=files, overwrite=True)


def test_a_name_over_255_bytes_is_refused(tmp_path):
    check_output(tmp_path / ("a" * 255), will_write=())
    for name in ("a" * 256, "é" * 128):
        with pytest.raises(DataError, match=f"is {len(name.encode())} bytes, over the 255 bytes"):
            check_output(tmp_path / name / "x", will_write=())
    with pytest.raises(DataError, match="256 bytes"):
        check_output(tmp_path, will_write=[tmp_path / ("b" * 249 + ".nii.gz")])


def test_atomic_write_through_a_symlink_keeps_the_link(tmp_path):
    target, link = tmp_path / "real.csv", tmp_path / "link.csv"
    target.write_text("old")
    link.symlink_to(target)
    atomic_write(link, lambda tmp: open(tmp, "w").write("new"))
    assert link.is_symlink() and os.readlink(link) == str(target) and target.read_text() == "new"
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "later.csv")
    atomic_write(dangling, lambda tmp: open(tmp, "w").write("made"))
    assert dangling.is_symlink() and (tmp_path / "later.csv").read_text() == "made"


def test_a_folder_holding_other_files_is_refused(tmp_path):
    mine = [tmp_path / "A" / "A_flair.nii.gz"]
    check_holds_only(tmp_path / "missing", mine, reason="r")
    mine[0].parent.mkdir()
    mine[0].write_bytes(b"x")
    check_holds_only(tmp_path, mine, reason="r")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds .*notes.txt; mixing"):
        check_holds_only(tmp_path, mine, reason="mixing")


def test_an_unsafe_case_id_is_refused_with_the_rule_it_breaks(tmp_path):
    for bad in ("Müller_001", "é", "a b", "_x"):
        with pytest.raises(DataError, match="ASCII letters and digits, then also '.', '_', '-'"):
            safe_case_path(tmp_path, bad, ".nii.gz")
    assert safe_case_path(tmp_path, "BraTS-GLI-00001-000", ".nii.gz").name == "BraTS-GLI-00001-000.nii.gz"
