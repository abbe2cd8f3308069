"""cga_model.data.nifti: reading NIfTI files."""

import nibabel as nib
import numpy as np
import pytest

from cga_model.data.errors import DataError
from cga_model.data.geometry import check_image
from cga_model.data.nifti import load_nifti, read_array


def test_a_zero_voxel_size_prints_nothing_and_is_refused_in_one_line(tmp_path, capfd):
    path = tmp_path / "t1.nii.gz"
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4))
    image.header["pixdim"][1:4] = 0
    nib.save(image, path)
    capfd.readouterr()
    loaded = load_nifti(path)
    assert read_array(loaded, path).shape == (4, 4, 4)
    with pytest.raises(DataError, match=r"t1.nii.gz: voxel size \[0.0, 0.0, 0.0\] mm"):
        check_image(loaded, path)
    assert capfd.readouterr() == ("", "")  # nibabel's own fix-up line ("setting 0 dims to 1") is not printed
    assert nib.imageglobals.logger.level == 0  # and its logger is as it was


def test_a_file_that_is_not_nifti_is_named(tmp_path):
    path = tmp_path / "t1.nii.gz"
    path.write_bytes(b"not a nifti file")
    with pytest.raises(DataError, match="cannot read .*t1.nii.gz as NIfTI"):
        load_nifti(path)
