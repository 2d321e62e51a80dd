import numpy as np
import pytest

from imaging.errors import InvalidVolumeError, ModelError
from imaging.volume import LabelVolume, Volume
from models.input import (block_average, image_for_model, locator_grid, model_grid,
                          normalise_for_model, percentile_range, refine, to_model_grid)

OBLIQUE_FREE_AFFINE = np.array([[0, 0, -3.0, 10], [-0.5, 0, 0, 20], [0, 0.7, 0, -5], [0, 0, 0, 1]])


def test_normalise_is_invariant_to_scanner_scaling(rng):
    image = rng.gamma(2.0, 50.0, size=(20, 21, 22))
    a = normalise_for_model(image)
    b = normalise_for_model(image * 1000.0)
    assert a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.percentile(a, 0.5) == pytest.approx(0.0, abs=1e-6)
    assert np.percentile(a, 99.5) == pytest.approx(1.0, abs=1e-6)


def test_normalise_with_another_arrays_range_maps_that_range_to_0_1(rng):
    image = rng.gamma(2.0, 50.0, size=(20, 21, 22))
    box = image[5:12, 5:12, 5:12]
    low, high = percentile_range(box)
    out = normalise_for_model(image, value_range=(low, high))
    np.testing.assert_allclose(normalise_for_model(image, value_range=percentile_range(image)),
                               normalise_for_model(image), atol=1e-6)
    inside = (image >= low) & (image <= high)
    np.testing.assert_allclose(out[inside], ((image[inside] - low) / (high - low)), atol=1e-5)
    with pytest.raises(InvalidVolumeError, match="non-finite"):
        percentile_range(np.array([1.0, np.nan]))


def test_normalise_rejects_unknown_scheme_and_constant_is_zero():
    with pytest.raises(ModelError, match="zscore"):
        normalise_for_model(np.ones((3, 3, 3)), "zscore")
    assert not normalise_for_model(np.full((3, 3, 3), 7.0)).any()


def test_multi_echo_becomes_rms_image(rng):
    echoes = rng.random((4, 5, 6, 3)).astype(np.float32)
    vol = Volume(echoes, np.eye(4), {"contrast": "T2starw"})
    out = image_for_model(vol)
    assert out.shape == (4, 5, 6)
    np.testing.assert_allclose(out.array, np.sqrt((echoes ** 2).mean(axis=3)), rtol=1e-6)
    assert out.meta["contrast"] == "T2starw"
    three_d = Volume(echoes[..., 0], np.eye(4))
    assert image_for_model(three_d) is three_d


def test_model_grid_refines_ras_grid_by_integer_factors():
    vol = Volume(np.zeros((5, 6, 7), np.float32), OBLIQUE_FREE_AFFINE)
    shape, affine, factors = model_grid(vol, (0.6, 0.6, 0.6))
    assert factors == (5, 1, 1)  # RAS x is the 3 mm axis
    assert shape == (35, 5, 6)
    ras = vol.reorient("RAS")
    # the centre of each block of fine voxels is the centre of its input voxel
    fine_centre = affine @ np.array([2.0, 0, 0, 1])  # block 0 = fine voxels 0..4
    np.testing.assert_allclose(fine_centre, ras.affine @ np.array([0, 0, 0, 1.0]), atol=1e-9)


def test_block_average_inverts_refinement_exactly(rng):
    coarse = rng.random((2, 4, 3, 5))
    np.testing.assert_allclose(block_average(refine(coarse, (3, 1, 2), False), (3, 1, 2)), coarse)
    fine = refine(coarse, (3, 1, 2), linear=True)
    assert fine.shape == (2, 12, 3, 10)
    assert fine.min() >= coarse.min() and fine.max() <= coarse.max()
    with pytest.raises(ModelError, match="multiple"):
        block_average(np.zeros((5, 4, 4)), (2, 2, 2))


def test_labels_refine_by_repetition_and_keep_their_type():
    labels = LabelVolume(np.arange(5 * 6 * 7).reshape(5, 6, 7).astype(np.int16), OBLIQUE_FREE_AFFINE)
    fine, factors = to_model_grid(labels, (0.6, 0.6, 0.6))
    assert isinstance(fine, LabelVolume) and fine.array.dtype == np.int16
    ras = labels.reorient("RAS")
    np.testing.assert_array_equal(fine.array[::factors[0]], ras.array)


def test_locator_grid_coarsens_to_its_spacing():
    vol = Volume(np.ones((40, 40, 20), np.float32), np.diag([0.5, 0.5, 1.0, 1.0]))
    coarse = locator_grid(vol, (2.0, 2.0, 2.0))
    assert coarse.shape == (10, 10, 10)
    np.testing.assert_allclose(coarse.spacing, (2.0, 2.0, 2.0))
