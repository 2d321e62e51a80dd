"""Resampling with analytic answers: ramps stay ramps in world space, boxes keep their mm extent."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.errors import InvalidVolumeError
from imaging.resample import grid_for_spacing, resample_like, resample_to_grid, resample_to_spacing
from imaging.volume import LabelVolume, Volume

RAMP = np.array([0.7, -1.3, 2.1])  # intensity per mm along R, A, S
RAMP_OFFSET = 40.0


def _rotation(angle_deg: float, axis: int) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


def _affine(spacing, origin, rotation=np.eye(3)) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = rotation @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def _ramp_volume(shape, affine) -> Volume:
    ijk = np.indices(shape).reshape(3, -1).T
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    return Volume((world @ RAMP + RAMP_OFFSET).reshape(shape), affine, {"contrast": "T2w"})


def _source_positions(source: Volume, target: Volume) -> np.ndarray:
    ijk = np.indices(target.spatial_shape).reshape(3, -1).T
    world = target.world_coordinates(ijk)
    return (np.linalg.inv(source.affine) @ np.c_[world, np.ones(len(world))].T)[:3].T


@pytest.mark.parametrize("target_rotation", [np.eye(3), _rotation(20, 2) @ _rotation(-10, 0)])
def test_linear_ramp_stays_the_same_ramp_in_world_space(target_rotation):
    source = _ramp_volume((30, 24, 12), _affine((0.8, 0.9, 3.0), (-12, -10, -15),
                                                _rotation(15, 0)))
    target_affine = _affine((1.1, 0.7, 1.6), (-8, -6, -10), target_rotation)
    out = resample_to_grid(source, (14, 18, 16), target_affine)
    expected = _ramp_volume(out.spatial_shape, target_affine).array
    src = _source_positions(source, out).reshape(*out.spatial_shape, 3)
    interior = np.all((src >= 0) & (src <= np.array(source.spatial_shape) - 1), axis=-1)
    assert interior.sum() > 500  # the test looks at many voxels
    np.testing.assert_allclose(out.array[interior], expected[interior], atol=1e-9)
    outside = np.any((src < -0.5) | (src > np.array(source.spatial_shape) - 0.5), axis=-1)
    assert outside.sum() > 0 and np.all(out.array[outside] == 0)


def _box_labels(spacing) -> LabelVolume:
    array = np.zeros((20, 16, 10), dtype=np.uint8)
    array[4:12, 3:9, 2:7] = 3
    return LabelVolume(array, _affine(spacing, (5, -7, 2)), {"contrast": "T2w"})


@pytest.mark.parametrize("new_spacing", [(0.5, 0.5, 0.5), (0.25, 1.0, 0.5), (0.5, 0.25, 1.25)])
def test_label_box_keeps_its_mm_extent(new_spacing):
    labels = _box_labels((1.0, 1.0, 2.5))
    out = resample_to_spacing(labels, new_spacing)
    assert isinstance(out, LabelVolume) and out.array.dtype == np.uint8
    assert set(np.unique(out.array)) == {0, 3}
    np.testing.assert_allclose(out.spacing, new_spacing)
    box_mm3 = 8 * 6 * 5 * 2.5
    assert (out.array == 3).sum() * out.voxel_volume_mm3 == pytest.approx(box_mm3)
    inside = np.argwhere(out.array == 3)
    lo = out.world_coordinates(inside.min(axis=0)) - np.asarray(new_spacing) / 2
    hi = out.world_coordinates(inside.max(axis=0)) + np.asarray(new_spacing) / 2
    np.testing.assert_allclose(lo[0], labels.world_coordinates([4, 3, 2])[0] - [0.5, 0.5, 1.25])
    np.testing.assert_allclose(hi[0], labels.world_coordinates([11, 8, 6])[0] + [0.5, 0.5, 1.25])


def test_finer_grid_over_the_same_field_of_view_has_no_zero_border():
    ones = Volume(np.ones((8, 8, 4), dtype=np.float32), _affine((1, 1, 3), (0, 0, 0)))
    out = resample_to_spacing(ones, (0.4, 0.4, 1.0))
    assert out.shape == (20, 20, 12)
    np.testing.assert_array_equal(out.array, 1.0)


@pytest.mark.parametrize("codes", ["LPI", "SRA", "PSL"])
def test_resample_like_onto_a_reoriented_copy_returns_the_same_voxels(codes, rng):
    image = Volume(rng.random((7, 6, 5, 2)), _affine((0.5, 0.6, 2.0), (1, 2, 3), _rotation(5, 1)))
    labels = LabelVolume(rng.integers(0, 4, (7, 6, 5)).astype(np.int16), image.affine)
    for vol in (image, labels):
        reoriented = vol.reorient(codes)
        out = resample_like(vol, reoriented)
        assert out.array.dtype == vol.array.dtype
        np.testing.assert_array_equal(out.array, reoriented.array)
        np.testing.assert_array_equal(out.affine, reoriented.affine)


def test_whole_voxel_shift_is_exact_and_pads_with_zero(rng):
    image = Volume(rng.random((6, 6, 6)), np.eye(4))
    shifted = np.eye(4)
    shifted[:3, 3] = (2, -1, 0)
    out = resample_to_grid(image, (6, 6, 6), shifted)
    np.testing.assert_array_equal(out.array[:4, 1:, :], image.array[2:, :5, :])
    assert np.all(out.array[4:] == 0) and np.all(out.array[:, 0] == 0)


def test_four_d_is_resampled_volume_by_volume(rng):
    vol = Volume(rng.random((10, 9, 6, 3)), _affine((1, 1, 2), (0, 0, 0)), {"fourth_axis": "echo"})
    out = resample_to_spacing(vol, (0.7, 1.3, 1.1))
    assert out.shape[3] == 3 and out.meta["fourth_axis"] == "echo"
    for k in range(3):
        np.testing.assert_array_equal(out.array[..., k],
                                      resample_to_spacing(vol.echo(k), (0.7, 1.3, 1.1)).array)


def test_integer_image_interpolates_as_float_and_labels_keep_dtype():
    array = (np.arange(4 * 4 * 4).reshape(4, 4, 4) % 7).astype(np.int16)
    image = Volume(array, np.eye(4)).resample_to_spacing((0.5, 0.5, 0.5))
    assert image.array.dtype == np.float32
    assert image.array.max() > 0 and not np.allclose(image.array, np.rint(image.array))
    mask = LabelVolume(array > 3, np.eye(4)).resample_to_spacing((0.5, 0.5, 0.5))
    assert mask.array.dtype == bool and mask.array.sum() == (array > 3).sum() * 8


def test_spline_order_on_an_image():
    """A cubic spline reproduces a ramp away from the edges (the boundary extension
    is not linear, and its effect decays a few voxels in)."""
    ramp = _ramp_volume((16, 16, 16), np.eye(4))
    out = resample_to_spacing(ramp, (0.75, 0.75, 0.75), order=3)
    core = (slice(8, 14),) * 3  # source positions 5.6 to 9.4
    expected = _ramp_volume(out.spatial_shape, out.affine).array
    np.testing.assert_allclose(out.array[core], expected[core], atol=2e-3)


def test_grid_for_spacing_keeps_the_outer_corner():
    vol = Volume(np.zeros((10, 10, 5)), _affine((1.0, 1.0, 3.0), (3, 4, 5), _rotation(30, 2)))
    shape, affine = grid_for_spacing(vol, (0.5, 2.0, 1.0))
    assert shape == (20, 5, 15)
    old_corner = vol.affine @ [-0.5, -0.5, -0.5, 1]
    new_corner = affine @ [-0.5, -0.5, -0.5, 1]
    np.testing.assert_allclose(new_corner, old_corner, atol=1e-12)


def test_same_grid_returns_the_same_voxels():
    vol = _ramp_volume((4, 4, 4), np.eye(4))
    assert np.shares_memory(resample_like(vol, vol).array, vol.array)


@pytest.mark.parametrize("order", [1, 3])
def test_labels_refuse_interpolation(order):
    with pytest.raises(InvalidVolumeError, match="labels resample with order 0"):
        resample_to_spacing(_box_labels((1, 1, 1)), (2, 2, 2), order=order)


@pytest.mark.parametrize("kwargs, message", [
    ({"shape": (4, 4), "affine": np.eye(4)}, "expected three positive sizes"),
    ({"shape": (4, 0, 4), "affine": np.eye(4)}, "expected three positive sizes"),
    ({"shape": (4, 4, 4), "affine": np.full((4, 4), np.nan)}, "non-finite"),
    ({"shape": (4, 4, 4), "affine": np.eye(4), "order": 7}, "interpolation order 7"),
])
def test_bad_grid_raises(kwargs, message):
    with pytest.raises(InvalidVolumeError, match=message):
        resample_to_grid(_ramp_volume((4, 4, 4), np.eye(4)), **kwargs)


@pytest.mark.parametrize("spacing", [(1, 1), (1, 0, 1), (1, -2, 1), (1, np.inf, 1)])
def test_bad_spacing_raises(spacing):
    with pytest.raises(InvalidVolumeError, match="expected three positive sizes in mm"):
        resample_to_spacing(_ramp_volume((4, 4, 4), np.eye(4)), spacing)
