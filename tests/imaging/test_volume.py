"""The Volume: checked construction, geometry from the affine, and no way to change it in place."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from imaging.errors import InvalidVolumeError, SpaceMismatchError
from imaging.volume import LabelVolume, Volume, require_same_space, thawed


def _affine(spacing=(0.5, 0.5, 3.0), origin=(-10.0, 20.0, 5.0)) -> np.ndarray:
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = origin
    return aff


@pytest.fixture
def volume(rng) -> Volume:
    return Volume(rng.random((6, 5, 4)).astype(np.float32), _affine(),
                  {"contrast": "T2w", "sidecar": {"EchoTime": [0.003, 0.006]}})


# --- immutability ----------------------------------------------------------------------------
def test_array_writes_raise(volume):
    with pytest.raises(ValueError, match="read-only"):
        volume.array[0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        volume.affine[0, 3] = 1.0


def test_writeable_flag_cannot_be_turned_back_on(volume):
    with pytest.raises(ValueError, match="WRITEABLE"):
        volume.array.flags.writeable = True
    with pytest.raises(ValueError, match="WRITEABLE"):
        volume.affine.flags.writeable = True


def test_attribute_assignment_raises(volume):
    with pytest.raises(dataclasses.FrozenInstanceError):
        volume.array = np.zeros((6, 5, 4))  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        volume.meta = {}  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del volume.affine  # type: ignore[misc]


def test_meta_is_read_only_all_the_way_down(volume):
    with pytest.raises(TypeError):
        volume.meta["contrast"] = "T1w"  # type: ignore[index]
    with pytest.raises(TypeError):
        volume.meta["sidecar"]["EchoTime"] = 0.1  # type: ignore[index]
    assert volume.meta["sidecar"]["EchoTime"] == (0.003, 0.006)
    assert json.loads(json.dumps(thawed(volume.meta)))["sidecar"]["EchoTime"] == [0.003, 0.006]


def test_callers_array_affine_and_meta_mutated_afterwards_change_nothing(rng):
    array = rng.random((4, 4, 4))
    affine = _affine()
    meta = {"contrast": "T2w", "echo_times_ms": [5.0]}
    vol = Volume(array, affine, meta)
    array[:] = -1
    affine[0, 0] = 99
    meta["contrast"] = "changed"
    meta["echo_times_ms"].append(7.0)
    assert vol.array.min() >= 0
    assert vol.affine[0, 0] == 0.5
    assert vol.meta["contrast"] == "T2w" and vol.meta["echo_times_ms"] == (5.0,)


def test_read_only_caller_array_is_still_copied(rng):
    array = rng.random((3, 3, 3))
    array.flags.writeable = False
    vol = Volume(array, np.eye(4))
    array.flags.writeable = True  # the caller owns it and may unlock it
    array[:] = 7
    assert vol.array.max() < 1


def test_new_volumes_share_the_frozen_buffer_without_copying(volume):
    assert np.shares_memory(volume.with_meta(contrast="T1w").array, volume.array)
    assert volume.with_meta(contrast="T1w").meta["contrast"] == "T1w"
    assert volume.meta["contrast"] == "T2w"


# --- constructor refuses bad input ------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 5), (5,), (2, 2, 2, 2, 2)])
def test_wrong_dimensions_raise(shape):
    with pytest.raises(InvalidVolumeError, match=rf"{len(shape)} dimensions .*expected 3"):
        Volume(np.zeros(shape), np.eye(4))


def test_empty_axis_raises():
    with pytest.raises(InvalidVolumeError, match="empty axis"):
        Volume(np.zeros((3, 0, 3)), np.eye(4))


def test_singular_affine_raises():
    aff = np.eye(4)
    aff[2, 2] = 0
    with pytest.raises(InvalidVolumeError, match="(?s)singular .*non-zero voxel spacing"):
        Volume(np.zeros((2, 2, 2)), aff)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_affine_raises(bad):
    aff = np.eye(4)
    aff[1, 3] = bad
    with pytest.raises(InvalidVolumeError, match="non-finite"):
        Volume(np.zeros((2, 2, 2)), aff)


@pytest.mark.parametrize("affine, message", [(np.eye(3), "shape \\(3, 3\\)"),
                                             ([["a"] * 4] * 4, "not a numeric matrix"),
                                             (np.diag([1, 1, 1, 2]), "last row")])
def test_malformed_affine_raises(affine, message):
    with pytest.raises(InvalidVolumeError, match=message):
        Volume(np.zeros((2, 2, 2)), affine)


@pytest.mark.parametrize("array", [np.array([[["a"]]]), np.zeros((2, 2, 2), dtype=object)])
def test_non_numeric_dtype_raises(array):
    with pytest.raises(InvalidVolumeError, match="not numeric"):
        Volume(array, np.eye(4))


def test_float_labels_raise():
    with pytest.raises(InvalidVolumeError, match="not integer; round or threshold"):
        LabelVolume(np.full((2, 2, 2), 0.5), np.eye(4))


def test_labels_accept_integers_and_bool():
    assert LabelVolume(np.ones((2, 2, 2), dtype=np.uint8), np.eye(4)).array.dtype == np.uint8
    assert LabelVolume(np.ones((2, 2, 2), dtype=bool), np.eye(4)).array.dtype == bool


def test_meta_must_be_a_mapping():
    with pytest.raises(InvalidVolumeError, match="expected a mapping"):
        Volume(np.zeros((2, 2, 2)), np.eye(4), [("a", 1)])  # type: ignore[arg-type]


# --- geometry ------------------------------------------------------------------------------------
def test_geometry_comes_from_the_affine(volume):
    assert volume.spacing == (0.5, 0.5, 3.0)
    assert volume.origin == (-10.0, 20.0, 5.0)
    assert volume.orientation == "RAS"
    assert volume.voxel_volume_mm3 == pytest.approx(0.75)
    np.testing.assert_allclose(volume.world_coordinates([[2, 2, 2]]), [[-9.0, 21.0, 11.0]])


def test_crop_moves_the_affine_so_voxels_stay_in_place(volume):
    cropped = volume.crop((1, 2, 1), (4, 5, 3))
    assert cropped.shape == (3, 3, 2)
    np.testing.assert_array_equal(cropped.array, volume.array[1:4, 2:5, 1:3])
    np.testing.assert_allclose(cropped.world_coordinates([[0, 0, 0]]),
                               volume.world_coordinates([[1, 2, 1]]))


@pytest.mark.parametrize("lower, upper", [((0, 0, 0), (7, 5, 4)), ((2, 0, 0), (2, 5, 4)),
                                          ((-1, 0, 0), (3, 3, 3))])
def test_crop_outside_raises(volume, lower, upper):
    with pytest.raises(InvalidVolumeError, match="outside"):
        volume.crop(lower, upper)


def test_echo_of_a_4d_volume(rng):
    vol = Volume(rng.random((3, 3, 3, 2)), np.eye(4), {"fourth_axis": "echo"})
    np.testing.assert_array_equal(vol.echo(1).array, vol.array[..., 1])
    assert vol.n_volumes == 2 and vol.echo(1).n_volumes == 1
    with pytest.raises(InvalidVolumeError, match="echo index 1"):
        vol.echo(0).echo(1)


def test_with_array_keeps_geometry_and_refuses_other_shapes(volume):
    doubled = volume.with_array(volume.array * 2)
    np.testing.assert_array_equal(doubled.affine, volume.affine)
    with pytest.raises(InvalidVolumeError, match="spatial shape"):
        volume.with_array(np.zeros((2, 2, 2)))


def test_require_same_space(volume):
    nearly = np.array(volume.affine)
    nearly[:3] += 1e-4  # within the 1e-3 mm tolerance
    require_same_space(volume, LabelVolume(np.zeros((6, 5, 4), np.uint8), nearly))
    moved = Volume(volume.array, _affine(origin=(-10.0, 20.0, 6.0)))
    with pytest.raises(SpaceMismatchError, match="resample one onto the other"):
        require_same_space(volume, moved)
