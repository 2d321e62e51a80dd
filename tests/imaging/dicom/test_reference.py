"""The loader against dcm2niix's reference NIfTI files and pydicom's bundled test files."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from imaging import load
from imaging.dicom import list_series, load_dicom
from tests.conftest import shared_path

AFFINE_TOLERANCE_MM = 1e-3


def assert_matches_reference(volume, reference_path):
    """Both in RAS: identical voxels (after the reference's scl_slope/inter), affines within 1e-3 mm."""
    ours = volume.reorient("RAS")
    ref = load(reference_path).reorient("RAS")
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours.array, ref.array)
    np.testing.assert_allclose(ours.affine, ref.affine, atol=AFFINE_TOLERANCE_MM, rtol=0)


@pytest.mark.parametrize("plane, reference", [("sag", "sag_asc_36sl_19.nii"),
                                              ("ax", "ax_asc_36sl_9.nii"),
                                              ("cor", "cor_asc_36sl_13.nii")])
def test_siemens_mosaics_match_reference(plane, reference):
    folder = shared_path("dcm_qa", "In", "Orientation", plane)
    volume = load_dicom(folder)
    assert volume.meta["fourth_axis"] == "time"
    assert volume.shape == (64, 64, 36, 2)
    assert_matches_reference(volume, shared_path("dcm_qa", "Ref", reference))


def test_dual_echo_gradient_echo_gives_two_echoes_matching_reference():
    volume = load_dicom(shared_path("dcm_qa_fmap", "In", "Siemens", "2_gre_field_magph"))
    assert volume.meta["fourth_axis"] == "echo"
    assert volume.meta["echo_times_ms"] == pytest.approx((5.19, 7.65))
    assert volume.shape == (64, 64, 36, 2)
    for echo in (0, 1):
        reference = shared_path("dcm_qa_fmap", "Ref", f"Si_2_gre_field_magph_e{echo + 1}.nii")
        assert_matches_reference(volume.echo(echo), reference)


def test_enhanced_multiframe_t1w_matches_reference():
    volume = load_dicom(shared_path("dcm_qa_xa30", "In", "5_anat-T1w_acq-tfl"))
    assert volume.meta["contrast"] == "T1w"
    assert volume.meta["repetition_time_ms"] == pytest.approx(1800.0)
    assert volume.meta["echo_times_ms"] == pytest.approx((2.41,))
    assert_matches_reference(volume, shared_path("dcm_qa_xa30", "Ref", "5_anat-T1w_acq-tfl.nii"))


def test_every_shared_dicom_series_is_listed_without_problems():
    infos = list_series(shared_path())
    assert {s.description for s in infos} == {"ax_asc_36sl", "cor_asc_36sl", "sag_asc_36sl",
                                              "gre_field_magph", "anat-T1w_acq-tfl"}
    assert all(s.problem is None for s in infos)
    planes = {s.description: s.plane for s in infos}
    assert planes["sag_asc_36sl"] == "sagittal" and planes["cor_asc_36sl"] == "coronal"
    assert planes["anat-T1w_acq-tfl"] == "sagittal"


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_expb.dcm", "MR_small_implicit.dcm"])
def test_pydicom_transfer_syntax_variants_load_to_the_same_pixels(name):
    plain_path = get_testdata_file("MR_small.dcm")
    plain = load_dicom([plain_path])
    variant = load_dicom([get_testdata_file(name)])
    expected = dcmread(plain_path).pixel_array.T[:, :, None]
    np.testing.assert_array_equal(plain.array, expected)
    np.testing.assert_array_equal(variant.array, plain.array)
    np.testing.assert_allclose(variant.affine, plain.affine)
    assert variant.array.dtype.isnative
