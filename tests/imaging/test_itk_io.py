"""NRRD / MetaImage through SimpleITK: same voxels and RAS geometry as nibabel on the NIfTI."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from imaging import load
from imaging.errors import ImageReadError, InvalidVolumeError
from imaging.itk_io import load_itk
from tests.conftest import shared_path


def _oblique_psr_affine() -> np.ndarray:
    aff = np.zeros((4, 4))
    aff[1, 0], aff[2, 1], aff[0, 2] = -0.8, 0.9, 3.0
    a = np.deg2rad(12.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    aff[:3, :3] = rot @ aff[:3, :3]
    aff[:, 3] = (-20.0, 30.0, -40.0, 1.0)
    return aff


def _nifti(tmp_path: Path, rng) -> Path:
    path = tmp_path / "vol.nii.gz"
    array = rng.integers(0, 3000, (7, 6, 5)).astype(np.int16)
    nib.save(nib.Nifti1Image(array, _oblique_psr_affine()), str(path))
    return path


def _convert(nifti: Path, suffix: str) -> Path:
    out = nifti.with_name("vol" + suffix)
    sitk.WriteImage(sitk.ReadImage(str(nifti)), str(out))
    return out


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd"])
def test_itk_formats_match_nibabel_on_the_nifti(tmp_path, rng, suffix):
    nifti = _nifti(tmp_path, rng)
    other = _convert(nifti, suffix)
    vol = load(other)
    ref = nib.load(str(nifti))
    np.testing.assert_array_equal(vol.array, np.asanyarray(ref.dataobj))
    np.testing.assert_allclose(vol.affine, ref.affine, rtol=0, atol=1e-4)
    assert vol.orientation == "PSR"
    assert vol.meta["source"] == str(other)


def test_the_real_psr_t2_through_nrrd(tmp_path):
    nifti = shared_path("sct_testing_data", "t2", "t2.nii.gz")
    nrrd = tmp_path / "t2.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(nifti)), str(nrrd))
    vol, ref = load(nrrd), nib.load(str(nifti))
    np.testing.assert_array_equal(vol.array, np.asanyarray(ref.dataobj))
    np.testing.assert_allclose(vol.affine, ref.affine, rtol=0, atol=1e-4)
    assert vol.meta["format"] == "nrrd"


def test_lps_geometry_becomes_ras(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((4, 3, 2), np.float32))
    image.SetSpacing((0.5, 0.6, 2.0))
    image.SetOrigin((10.0, 20.0, 30.0))
    path = tmp_path / "lps.mha"
    sitk.WriteImage(image, str(path))
    vol = load_itk(path)
    assert vol.shape == (2, 3, 4) and vol.orientation == "LPS"
    np.testing.assert_allclose(vol.affine, [[-0.5, 0, 0, -10], [0, -0.6, 0, -20], [0, 0, 2, 30],
                                            [0, 0, 0, 1]])


def test_four_d_scalar_image(tmp_path, rng):
    tzyx = rng.random((3, 5, 4, 6)).astype(np.float32)
    image = sitk.GetImageFromArray(tzyx, isVector=False)
    image.SetSpacing((0.5, 0.7, 2.0, 1.0))
    image.SetOrigin((1.0, 2.0, 3.0, 0.0))
    path = tmp_path / "series.nrrd"
    sitk.WriteImage(image, str(path))
    vol = load_itk(path)
    assert vol.shape == (6, 4, 5, 3) and vol.meta["fourth_axis"] == "time"
    np.testing.assert_array_equal(vol.array[2, 1, 4, 0], tzyx[0, 4, 1, 2])
    np.testing.assert_allclose(vol.spacing, (0.5, 0.7, 2.0))
    np.testing.assert_allclose(vol.origin, (-1.0, -2.0, 3.0))


def test_vector_pixels_are_refused(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((4, 4, 4, 3), np.float32), isVector=True)
    path = tmp_path / "field.mha"
    sitk.WriteImage(image, str(path))
    with pytest.raises(InvalidVolumeError, match=r"field\.mha: pixels are vectors of 3"):
        load_itk(path)


def test_two_dimensional_image_is_refused(tmp_path):
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.float32)), str(path))
    with pytest.raises(InvalidVolumeError, match=r"slice\.nrrd: image is 2-D"):
        load(path)


def test_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "broken.nrrd"
    path.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n\n12")
    with pytest.raises(ImageReadError, match=r"broken\.nrrd: SimpleITK cannot read it"):
        load(path)
