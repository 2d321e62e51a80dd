"""Orientation codes and reorientation: bit-exact, and every voxel keeps its place in space."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaging.errors import OrientationError
from imaging.orientation import axis_codes, normalise_codes
from imaging.volume import LabelVolume, Volume

ALL_CODES = tuple(
    "".join(letters)
    for perm in itertools.permutations((("R", "L"), ("A", "P"), ("S", "I")))
    for letters in itertools.product(*perm))


def test_there_are_48_distinct_orientations():
    assert len(set(ALL_CODES)) == 48


@st.composite
def volumes(draw, label: bool | None = None, four_d: bool | None = None):
    """A small volume of unique voxel values with a random axis-aligned (or slightly oblique) affine."""
    is_label = draw(st.booleans()) if label is None else label
    is_4d = draw(st.booleans()) if four_d is None else four_d
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=3, max_size=3)))
    if is_4d:
        shape = (*shape, draw(st.integers(1, 3)))
    values = np.arange(int(np.prod(shape))).reshape(shape)
    array = values.astype(np.int32) if is_label else (values * 0.37 + 0.1).astype(np.float32)
    start = draw(st.sampled_from(ALL_CODES))
    spacing = draw(st.lists(st.floats(0.2, 5.0), min_size=3, max_size=3))
    origin = draw(st.lists(st.floats(-200, 200), min_size=3, max_size=3))
    tilt = draw(st.floats(-0.2, 0.2))  # radians about the third world axis
    affine = _affine_for(start, spacing, origin, tilt)
    kind = LabelVolume if is_label else Volume
    return kind(array, affine, {"contrast": "T2w"})


def _affine_for(codes: str, spacing, origin, tilt: float) -> np.ndarray:
    ornt = nib.orientations.axcodes2ornt(codes)
    aff = np.zeros((4, 4))
    for axis, (world, sign) in enumerate(ornt):
        aff[int(world), axis] = sign * spacing[axis]
    c, s = np.cos(tilt), np.sin(tilt)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    aff[:3, :3] = rot @ aff[:3, :3]
    aff[:3, 3] = origin
    aff[3, 3] = 1
    return aff


@settings(max_examples=60, deadline=None)
@given(volume=volumes(), codes=st.sampled_from(ALL_CODES))
def test_reorient_and_back_is_bit_exact(volume, codes):
    there = volume.reorient(codes)
    assert there.orientation == codes
    assert type(there) is type(volume)
    back = there.reorient(volume.orientation)
    assert back.array.dtype == volume.array.dtype
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, volume.affine, rtol=0, atol=1e-9)
    assert dict(back.meta) == dict(volume.meta)


@pytest.mark.parametrize("label, four_d", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("codes", ALL_CODES)
def test_every_orientation_round_trips(codes, label, four_d):
    """Exhaustive over the 48 codes for each kind of volume (3-D/4-D image/labels)."""
    kind = LabelVolume if label else Volume
    shape = (2, 3, 4, 2) if four_d else (2, 3, 4)
    array = np.arange(np.prod(shape)).reshape(shape).astype(np.int16 if label else np.float64)
    volume = kind(array, _affine_for("PSR", (1.0, 2.0, 3.0), (5, -5, 1), 0.0))
    there = volume.reorient(codes)
    assert there.orientation == codes
    assert there.shape[3:] == volume.shape[3:]
    back = there.reorient("PSR")
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, volume.affine, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(volume=volumes(), codes=st.sampled_from(ALL_CODES))
def test_every_voxel_keeps_its_world_position(volume, codes):
    there = volume.reorient(codes)
    ijk = np.indices(there.spatial_shape).reshape(3, -1).T
    world = there.world_coordinates(ijk)
    source = (np.linalg.inv(volume.affine) @ np.c_[world, np.ones(len(world))].T)[:3].T
    rounded = np.rint(source).astype(int)
    np.testing.assert_allclose(source, rounded, atol=1e-6)
    np.testing.assert_array_equal(there.array[tuple(ijk.T)],
                                  volume.array[tuple(rounded.T)])


def test_reorient_to_the_current_orientation_returns_the_same_volume():
    vol = Volume(np.zeros((2, 2, 2)), np.eye(4))
    assert vol.reorient("RAS") is vol


def test_reoriented_volume_is_still_immutable():
    vol = Volume(np.zeros((2, 3, 4)), _affine_for("LPS", (1, 1, 1), (0, 0, 0), 0.0))
    ras = vol.reorient("RAS")
    with pytest.raises(ValueError, match="read-only"):
        ras.array[0, 0, 0] = 1


@pytest.mark.parametrize("codes", ["RA", "RASX", "RRS", "LRS", "XYZ", "SIA"])
def test_bad_codes_raise(codes):
    with pytest.raises(OrientationError, match="expected"):
        normalise_codes(codes)


def test_codes_are_case_insensitive_and_accept_sequences():
    assert normalise_codes("las") == ("L", "A", "S")
    assert normalise_codes(["p", "S", "r"]) == ("P", "S", "R")


@pytest.mark.parametrize("codes", ALL_CODES[::7])
def test_axis_codes_agree_with_nibabel(codes):
    aff = _affine_for(codes, (0.5, 0.7, 3.0), (1, 2, 3), 0.1)
    assert axis_codes(aff) == "".join(nib.aff2axcodes(aff)) == codes
