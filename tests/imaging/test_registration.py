"""Rigid registration: the transform type, applying it, and recovering known motion.

Recovery is measured where it matters: the mean distance, at the fixed cord's
voxels, between where the true and the estimated transforms send them (target
< 0.5 mm for motion up to 5 mm and 5 degrees, across resolutions/orientations).
"""

from __future__ import annotations

import json
import zlib

import nibabel as nib
import numpy as np
import pytest

from imaging.errors import RegistrationError
from imaging.registration import (RegistrationSettings, RigidTransform, apply_transform,
                                  load_itk_transform, register_rigid, save_itk_transform)
from imaging.volume import LabelVolume, Volume
from tests.conftest import shared_path
from tests.imaging.phantom_motion import plane_change_pair
from tests.imaging.synthetic_cord import cord_mask, grid_affine, make_neck, sample_session

FIXED_SHAPE = (50, 40, 75)
FLIP = np.diag([-1.0, -1.0, -1.0])
# axial slices ordered foot to head, first axis A->P: another orientation entirely (PRS)
AXIAL_PRS = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
MOVING_GRIDS = {
    "0.8mm-iso-flipped": ((0.8, 0.8, 0.8), FLIP, FIXED_SHAPE),
    "0.5x0.5x3mm-axial-flipped": ((0.5, 0.5, 3.0), FLIP, (90, 80, 20)),
    "0.5x0.5x3mm-axial-PRS": ((0.5, 0.5, 3.0), AXIAL_PRS, (80, 90, 20)),
}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def session():
    """Fixed session: 0.8 mm isotropic RAS grid with its cord mask."""
    rng = np.random.default_rng(2024)
    neck = make_neck(rng)
    affine = grid_affine((0.8, 0.8, 0.8), np.eye(3), (0.0, -3.0, 0.0), FIXED_SHAPE)
    fixed = sample_session(neck, affine, FIXED_SHAPE, RigidTransform.identity(), rng)
    return neck, fixed, cord_mask(neck, affine, FIXED_SHAPE)


def _random_motion(rng: np.random.Generator) -> RigidTransform:
    """Up to 5 degrees about each axis and a 5 mm translation, about a point near the cord."""
    direction = rng.normal(size=3)
    shift = direction / np.linalg.norm(direction) * rng.uniform(2.0, 5.0)
    return RigidTransform.from_parameters(rng.uniform(-5, 5, 3), shift, (0.0, -2.0, 0.0))


# --- the transform type -------------------------------------------------------------------
def test_transform_parameters_inverse_and_compose():
    motion = RigidTransform.from_parameters([3, -4, 5], [1, 2, -3], center_ras=(10, 0, 5))
    points = np.array([[10.0, 0.0, 5.0], [0.0, 0.0, 0.0], [20.0, -7.0, 30.0]])
    # the centre moves by the translation only
    np.testing.assert_allclose(motion.transform_points(points[:1]), [[11, 2, 2]], atol=1e-12)
    back = motion.compose(motion.inverse())
    np.testing.assert_allclose(back.transform_points(points), points, atol=1e-10)
    assert motion.rotation_deg == pytest.approx(np.degrees(np.arccos(
        (np.trace(motion.matrix[:3, :3]) - 1) / 2)))
    assert 5.0 < motion.rotation_deg < 9.0


def test_transform_saves_and_loads_with_its_diagnostics(tmp_path):
    motion = RigidTransform.from_parameters([1, 2, 3], [4, 5, 6])
    saved = RigidTransform(motion.matrix, metric_value=-0.8, residual_mm=0.1, motion_mm=7.0,
                           iterations=42, stop_condition="converged")
    path = saved.save(tmp_path / "sub-1_ses-2_xfm.json")
    record = json.loads(path.read_text())
    assert record["direction"] == "fixed_to_moving" and record["space"] == "RAS+ mm"
    loaded = RigidTransform.load(path)
    np.testing.assert_array_equal(loaded.matrix, saved.matrix)
    assert loaded.to_dict() == saved.to_dict()
    # NaN diagnostics survive as JSON null
    assert np.isnan(RigidTransform.load(motion.save(tmp_path / "plain.json")).residual_mm)


def test_transform_rejects_non_rigid_and_broken_files(tmp_path):
    shear = np.eye(4)
    shear[0, 1] = 0.2
    with pytest.raises(RegistrationError, match="not rigid"):
        RigidTransform(shear)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(RegistrationError, match="bad.json: holds list"):
        RigidTransform.load(bad)
    with pytest.raises(RegistrationError, match="direction 'moving_to_fixed'"):
        RigidTransform.from_dict({"direction": "moving_to_fixed", "matrix": np.eye(4).tolist()})


def test_itk_transform_file_maps_points_and_resamples_like_the_transform(tmp_path, rng):
    import SimpleITK as sitk
    from imaging.sitk_bridge import sitk_to_volume, volume_to_sitk
    motion = RigidTransform.from_parameters([4, -3, 2], [2.5, -1.0, 3.0], center_ras=(5, -8, 12))
    path = save_itk_transform(motion, tmp_path / "sub-1_ses-2_from-1_to-2_mode-image_xfm.txt")
    points = rng.normal(size=(20, 3)) * 40
    np.testing.assert_allclose(load_itk_transform(path).transform_points(points),
                               motion.transform_points(points), atol=1e-9)
    # ITK itself, reading the file, resamples exactly as apply_transform does
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    affine[:3, 3] = (-10, -12, -15)
    image = Volume(rng.random((25, 30, 15)).astype(np.float32), affine)
    by_itk = sitk.Resample(volume_to_sitk(image, dtype=np.float32), volume_to_sitk(image),
                           sitk.ReadTransform(str(path)), sitk.sitkLinear, 0.0)
    np.testing.assert_allclose(sitk_to_volume(by_itk).array,
                               apply_transform(image, motion, image).array, atol=1e-5)
    with pytest.raises(RegistrationError, match="needs a .txt or .tfm name"):
        save_itk_transform(motion, tmp_path / "x.json")
    (tmp_path / "broken.txt").write_text("not a transform")
    with pytest.raises(RegistrationError, match="broken.txt: cannot read"):
        load_itk_transform(tmp_path / "broken.txt")


# --- applying a transform -----------------------------------------------------------------
def test_identity_on_the_same_grid_changes_nothing(rng):
    image = Volume(rng.normal(size=(8, 9, 10)).astype(np.float32), np.diag([0.5, 0.5, 2.0, 1.0]))
    labels = LabelVolume(rng.integers(0, 4, size=(8, 9, 10)).astype(np.int16), image.affine)
    np.testing.assert_allclose(apply_transform(image, RigidTransform.identity(), image).array,
                               image.array, atol=1e-6)
    moved = apply_transform(labels, RigidTransform.identity(), image)
    assert isinstance(moved, LabelVolume) and moved.array.dtype == np.int16
    np.testing.assert_array_equal(moved.array, labels.array)


def test_translation_by_whole_voxels_shifts_the_array_and_keeps_labels(rng):
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    labels = LabelVolume(rng.integers(0, 4, size=(10, 10, 6)).astype(np.uint8), affine)
    # p_moving = p_fixed + (2, 0, 4) mm: fixed voxel (i, j, k) shows moving voxel (i+2, j, k+2)
    shift = RigidTransform.from_parameters([0, 0, 0], [2.0, 0.0, 4.0])
    moved = apply_transform(labels, shift, labels)
    np.testing.assert_array_equal(moved.array[:8, :, :4], labels.array[2:, :, 2:])
    assert moved.array[8:].sum() == 0
    probabilities = Volume(labels.array.astype(np.float32) / 3, affine)
    half = apply_transform(probabilities, RigidTransform.from_parameters([0, 0, 0], [0.5, 0, 0]),
                           probabilities)
    expected = (probabilities.array[:-1] + probabilities.array[1:]) / 2
    np.testing.assert_allclose(half.array[:-1], expected, atol=1e-6)


def test_four_d_volumes_are_moved_echo_by_echo(rng):
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    echoes = Volume(rng.random((6, 6, 6, 3)).astype(np.float32), affine)
    shift = RigidTransform.from_parameters([0, 0, 0], [1.0, 0, 0])
    moved = apply_transform(echoes, shift, echoes)
    assert moved.shape == echoes.shape
    np.testing.assert_allclose(moved.array[:5, ..., 2], echoes.array[1:, ..., 2], atol=1e-6)


# --- recovering known motion -------------------------------------------------------------
@pytest.mark.parametrize("grid", sorted(MOVING_GRIDS))
def test_known_motion_is_recovered_at_the_cord(session, grid):
    neck, fixed, mask = session
    rng = np.random.default_rng(zlib.crc32(grid.encode()))
    spacing, axes, shape = MOVING_GRIDS[grid]
    moving_affine = grid_affine(spacing, axes, (1.0, -2.0, 2.0), shape)
    truth = _random_motion(rng)
    moving = sample_session(neck, moving_affine, shape, truth, rng)
    found = register_rigid(fixed, moving, mask)
    cord = fixed.world_coordinates(np.argwhere(mask.array > 0))
    error_mm = found.displacement_mm(cord, truth)
    assert error_mm.mean() < 0.5, (grid, error_mm.mean())
    assert found.motion_mm == pytest.approx(truth.displacement_mm(cord).mean(), abs=0.5)
    assert 0 <= found.residual_mm < 0.5
    assert found.iterations > 0 and found.metric_value < 0
    # the moving cord mask put back on the fixed grid lands on the fixed cord
    moved_mask = apply_transform(cord_mask(neck, moving_affine, shape, truth), found, fixed)
    before = apply_transform(cord_mask(neck, moving_affine, shape, truth),
                             RigidTransform.identity(), fixed)
    assert _dice(moved_mask.array > 0, mask.array > 0) > 0.85
    assert _dice(moved_mask.array > 0, mask.array > 0) > _dice(before.array > 0, mask.array > 0)


def test_large_offset_is_found_from_the_moving_cord_mask(session):
    neck, fixed, mask = session
    affine = grid_affine((0.8, 0.8, 0.8), np.eye(3), (0.0, -3.0, 0.0), FIXED_SHAPE)
    truth = RigidTransform.from_parameters([2, -3, 1], [12.0, -6.0, 0.0], (0.0, -2.0, 0.0))
    moving = sample_session(neck, affine, FIXED_SHAPE, truth, np.random.default_rng(7))
    found = register_rigid(fixed, moving, mask, moving_mask=cord_mask(neck, affine, FIXED_SHAPE,
                                                                       truth))
    cord = fixed.world_coordinates(np.argwhere(mask.array > 0))
    assert found.displacement_mm(cord, truth).mean() < 0.5


def test_a_search_that_runs_away_is_repeated_more_carefully(session, caplog):
    """A learning rate of 32 mm sends the first search out of the images (SimpleITK fails or
    the residual is large); the retries at 16, 8, 4 mm find the motion."""
    neck, fixed, mask = session
    truth = _random_motion(np.random.default_rng(5))
    moving = sample_session(neck, fixed.affine, FIXED_SHAPE, truth, np.random.default_rng(6))
    cord = fixed.world_coordinates(np.argwhere(mask.array > 0))
    with caplog.at_level("INFO", logger="imaging.registration"):
        found = register_rigid(fixed, moving, mask,
                               settings=RegistrationSettings(learning_rate_mm=32.0, retries=3))
    assert "searching again at learning rate 16.00 mm" in caplog.text
    assert found.displacement_mm(cord, truth).mean() < 0.5
    assert found.residual_mm < 0.5
    with pytest.raises(RegistrationError, match="retries=-1"):
        RegistrationSettings(retries=-1)


def test_bad_registration_input_raises(session):
    _, fixed, mask = session
    with pytest.raises(RegistrationError, match="fixed_mask .* is empty"):
        register_rigid(fixed, fixed, mask.with_array(np.zeros_like(mask.array)))
    far = Volume(fixed.array, fixed.affine @ np.array(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 500], [0, 0, 0, 1.0]]))
    with pytest.raises(RegistrationError, match="does not overlap the moving image"):
        register_rigid(fixed, far, mask)
    with pytest.raises(RegistrationError, match="pass rng="):
        register_rigid(fixed, fixed, mask, settings=RegistrationSettings(sampling_fraction=0.2))
    with pytest.raises(RegistrationError, match="one smoothing per level"):
        RegistrationSettings(shrink_factors=(4, 2, 1), smoothing_sigmas_mm=(1.0,))


# --- real scans ---------------------------------------------------------------------------
def _gm_session(name: str) -> tuple[Volume, LabelVolume]:
    from imaging import load
    root = shared_path("gm-challenge-data")
    image = load(root / name / "anat" / f"{name}_run-1_T2starw.nii.gz")
    # The mask is read with nibabel directly: its JSON sidecar in the shared data is an empty
    # file, which imaging.load refuses (reported to the lead).
    seg = nib.load(str(root / "derivatives" / "labels" / name / "anat"
                       / f"{name}_run-1_T2starw_seg-manual.nii.gz"))
    mask = LabelVolume((np.asanyarray(seg.dataobj) > 0.5).astype(np.uint8), seg.affine)
    return image, mask


def test_two_real_sessions_line_up_after_registration():
    """sub-9709, sessions 1 and 2: cord Dice 0.862 before, 0.929 after (measured)."""
    fixed, fixed_mask = _gm_session("sub-9709Ses1")
    moving, moving_mask = _gm_session("sub-9709Ses2")
    found = register_rigid(fixed, moving, fixed_mask)
    before = _dice(fixed_mask.array > 0, moving_mask.array > 0)
    after = _dice(fixed_mask.array > 0, apply_transform(moving_mask, found, fixed).array > 0)
    assert before < 0.87
    assert after > 0.91 and after > before + 0.04
    assert found.residual_mm < 0.5



@pytest.mark.parametrize("seed", [0, 6])
def test_plane_change_with_5mm_5deg_motion_registers_within_half_a_mm(seed):
    # with the metric on cord + CSF only (mask_dilation_mm 4) one of these ended 2.5 mm off
    # (along the cord, where a tube gives the metric little to hold on to)
    fixed, moving, (fixed_cord, moving_cord), truth = plane_change_pair(seed)
    cord = fixed_cord.world_coordinates(np.argwhere(fixed_cord.array > 0))
    assert truth.displacement_mm(cord).mean() == pytest.approx(5.0, abs=0.5)
    assert truth.rotation_deg == pytest.approx(5.0, abs=0.01)
    found = register_rigid(fixed, moving, fixed_cord, moving_cord)
    assert found.displacement_mm(cord, truth).mean() < 0.5
    assert found.residual_mm < 0.5
