"""Geometry of synthetic series with known answers: axes, slice order, spacing, 4-D layouts."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from imaging import load
from imaging.dicom import load_dicom
from imaging.dicom.geometry import plane_of
from tests.imaging.dicom.conftest import SHAPE, ramp


def test_sagittal_series_has_known_affine_and_voxels(t2_series):
    volume = load_dicom(t2_series[0].parent)
    np.testing.assert_array_equal(volume.array, ramp())
    # x = column index along the row direction +P (LPS) = -A, by the column spacing;
    # y = row index along -S by the row spacing; z along the normal -L = +R by 3 mm.
    expected = np.array([[0, 0, 3.0, 20], [-0.5, 0, 0, 100], [0, -0.5, 0, 80], [0, 0, 0, 1]])
    np.testing.assert_allclose(volume.affine, expected, atol=1e-6)
    assert volume.orientation == "PIR"
    assert volume.meta["original_affine"] == tuple(map(tuple, expected))
    assert volume.meta["fourth_axis"] is None


def test_row_and_column_spacing_are_not_swapped(make_series):
    paths = make_series("aniso", pixel_spacing_mm=(0.8, 0.4))  # rows 0.8 apart, columns 0.4
    volume = load_dicom(paths[0].parent)
    assert volume.spacing == pytest.approx((0.4, 0.8, 3.0))


def test_slices_sorted_by_position_not_by_instance_number_or_name(make_series):
    n = SHAPE[2]
    offsets = tuple(-3.0 * k for k in range(n))  # written in descending position
    volume = load_dicom(make_series("desc", slice_offsets_mm=offsets)[0].parent)
    np.testing.assert_array_equal(volume.array, ramp()[:, :, ::-1])
    assert volume.affine[0, 2] == pytest.approx(3.0)  # still steps towards +R (RAS)
    assert volume.affine[0, 3] == pytest.approx(20 - 3.0 * (n - 1))


def test_rescale_gives_float_output(make_series):
    volume = load_dicom(make_series("scaled", rescale=(2.5, -10.0))[0].parent)
    assert volume.array.dtype == np.float32
    np.testing.assert_allclose(volume.array, ramp() * 2.5 - 10.0)


def test_trivial_rescale_keeps_integers(make_series):
    volume = load_dicom(make_series("unit", rescale=(1.0, 0.0))[0].parent)
    assert volume.array.dtype == np.int16


def test_multi_echo_series_is_4d_along_echo(make_series):
    paths = make_series("megre", echo_times_ms=(4.0, 9.0, 14.0), scanning_sequence="GR",
                        sequence_variant="SP", flip_angle_deg=20.0, repetition_time_ms=50.0)
    volume = load_dicom(paths[0].parent)
    assert volume.shape == SHAPE + (3,)
    assert volume.meta["fourth_axis"] == "echo"
    assert volume.meta["echo_times_ms"] == (4.0, 9.0, 14.0)
    assert volume.meta["contrast"] == "T2starw"
    np.testing.assert_array_equal(volume.array, ramp(n_echoes=3))


def test_repeated_acquisitions_are_4d_along_time(make_series, tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.77"
    for acquisition in (2, 1):
        make_series(f"rep/a{acquisition}", array=ramp() + 10 * acquisition, series_uid=uid,
                    extra={"AcquisitionNumber": acquisition})
    volume = load_dicom(tmp_path / "rep")
    assert volume.meta["fourth_axis"] == "time"
    np.testing.assert_array_equal(volume.array[..., 0], ramp() + 10)
    np.testing.assert_array_equal(volume.array[..., 1], ramp() + 20)


def test_uneven_spacing_resampled_only_when_asked(make_series):
    paths = make_series("gap", slice_offsets_mm=(0, 3, 6, 9, 15, 18))
    volume = load_dicom(paths[0].parent, allow_uneven=True)
    assert volume.shape[2] == 7 and volume.spacing[2] == pytest.approx(3.0)
    assert volume.meta["resampled_uneven_slices"] is True
    source = ramp().astype(np.float32)
    np.testing.assert_allclose(volume.array[:, :, 4], (source[:, :, 3] + source[:, :, 4]) / 2)
    np.testing.assert_allclose(volume.array[:, :, 6], source[:, :, 5])


def test_single_slice_uses_slice_thickness_for_z():
    path = get_testdata_file("MR_small.dcm")
    volume = load_dicom([path])
    assert volume.shape == (64, 64, 1)
    assert volume.spacing[2] == pytest.approx(float(dcmread(path).SliceThickness))


def test_imaging_load_reads_folders_and_files(t2_series):
    np.testing.assert_array_equal(load(t2_series[0].parent).array, ramp())
    assert load(sorted(t2_series)).meta["format"] == "dicom"


@pytest.mark.parametrize("iop, plane", [((1, 0, 0, 0, 1, 0), "axial"),
                                        ((1, 0, 0, 0, 0, -1), "coronal"),
                                        ((0, 1, 0, 0, 0, -1), "sagittal"),
                                        ((1, 0, 0, 0, 0.94, -0.34), "axial"),
                                        ((1, 0, 0, 0, 0.707, -0.707), "oblique")])
def test_plane_from_orientation(iop, plane):
    assert plane_of(iop) == plane


def test_oblique_geometry_positions_voxels_in_space(make_series):
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    iop = (1.0, 0.0, 0.0, 0.0, c, -s)
    volume = load_dicom(make_series("obl", orientation=iop, origin_lps=(5.0, 6.0, 7.0))[0].parent)
    corner_lps = np.array([5.0, 6.0, 7.0]) + 9 * 0.5 * np.array(iop[3:])  # row 9, column 0
    normal = np.cross(iop[:3], iop[3:])
    far_lps = corner_lps + 5 * 3.0 * normal + 11 * 0.5 * np.array(iop[:3])
    world = volume.world_coordinates([[0, 9, 0], [11, 9, 5]])
    np.testing.assert_allclose(world, [corner_lps * [-1, -1, 1], far_lps * [-1, -1, 1]], atol=1e-5)
