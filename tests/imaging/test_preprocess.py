"""Bias field, intensity normalisation and crop-to-mask on phantoms with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.errors import InvalidVolumeError, SpaceMismatchError
from imaging.preprocess import (CropBox, correct_bias_field, crop_to_mask, estimate_bias_field,
                                normalise_intensity)
from imaging.volume import LabelVolume, Volume

SHAPE = (48, 48, 16)
SPACING = (1.0, 1.0, 2.5)


def _grid():
    axes = [np.arange(n) * s for n, s in zip(SHAPE, SPACING)]
    return np.meshgrid(*axes, indexing="ij")


@pytest.fixture
def tissue() -> np.ndarray:
    """A disc of soft tissue with a brighter 'cord' in the middle, constant along z."""
    x, y, _ = _grid()
    radius = np.hypot(x - 24.0, y - 24.0)
    return np.where(radius < 20, 1.0, 0.0) + np.where(radius < 5, 0.5, 0.0)


@pytest.fixture
def bias() -> np.ndarray:
    """A smooth multiplicative field of about +-35 % (the phantom contract allows +-40 %)."""
    x, _, z = _grid()
    return np.exp(0.3 * np.sin(x / 30.0) + 0.2 * (z - 20.0) / 20.0)


def _affine() -> np.ndarray:
    return np.diag(SPACING + (1.0,))


def test_bias_field_estimate_follows_the_true_field(tissue, bias, rng):
    image = tissue * bias + rng.normal(0, 0.02, SHAPE)
    field = estimate_bias_field(Volume(np.abs(image), _affine()))
    inside = tissue > 0
    r = np.corrcoef(np.log(field.array[inside]), np.log(bias[inside]))[0, 1]
    assert r > 0.95
    assert field.same_space(Volume(image, _affine()))


def test_bias_correction_flattens_a_uniform_tissue(tissue, bias, rng):
    image = np.abs(tissue * bias + rng.normal(0, 0.02, SHAPE))
    corrected = correct_bias_field(Volume(image, _affine()))
    x, y, _ = _grid()
    ring = (np.hypot(x - 24.0, y - 24.0) > 8) & (np.hypot(x - 24.0, y - 24.0) < 17)

    def cv(a):
        return a[ring].std() / a[ring].mean()

    assert cv(image) > 0.1
    assert cv(corrected.array) < 0.4 * cv(image)
    assert corrected.meta["bias_corrected"] is True


def test_bias_field_of_4d_volume_is_applied_to_every_echo(tissue, bias, rng):
    echo1 = np.abs(tissue * bias + rng.normal(0, 0.02, SHAPE))
    four_d = Volume(np.stack([echo1, 0.5 * echo1], axis=-1), _affine())
    corrected = correct_bias_field(four_d)
    assert corrected.shape == four_d.shape
    ratio = corrected.array[..., 1][tissue > 0] / corrected.array[..., 0][tissue > 0]
    np.testing.assert_allclose(ratio, 0.5, rtol=1e-5)


def test_bias_field_with_empty_mask_is_refused(tissue):
    empty = LabelVolume(np.zeros(SHAPE, np.uint8), _affine())
    with pytest.raises(InvalidVolumeError, match="fewer than 27 positive voxels"):
        correct_bias_field(Volume(tissue, _affine()), mask=empty)


@pytest.mark.parametrize("method", ["percentile", "zscore"])
def test_normalisation_ignores_scanner_scaling(method, tissue, rng):
    image = Volume(tissue * 300 + rng.normal(0, 5, SHAPE), _affine())
    mask = LabelVolume((tissue > 0).astype(np.uint8), _affine())
    once = normalise_intensity(image, mask, method=method)
    scaled = normalise_intensity(image.with_array(image.array * 1000.0), mask, method=method)
    np.testing.assert_allclose(scaled.array, once.array, rtol=1e-5, atol=1e-5)
    inside = once.array[tissue > 0]
    if method == "zscore":
        assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1) < 1e-4
    else:
        assert np.percentile(inside, 1) == pytest.approx(0, abs=1e-5)
        assert np.percentile(inside, 99) == pytest.approx(1, abs=1e-5)


def test_normalisation_refuses_constant_input():
    flat = Volume(np.full(SHAPE, 7.0), _affine())
    with pytest.raises(InvalidVolumeError, match="no spread"):
        normalise_intensity(flat, method="zscore")
    with pytest.raises(InvalidVolumeError, match="expected one of"):
        normalise_intensity(flat, method="minmax")


def test_crop_box_has_the_margin_in_mm_and_pastes_back(tissue):
    image = Volume(tissue, _affine())
    mask = np.zeros(SHAPE, np.uint8)
    mask[20:28, 22:26, 6:8] = 1
    cropped, box = crop_to_mask(image, LabelVolume(mask, _affine()), margin_mm=5.0)
    # 5 mm is 5 voxels in-plane and ceil(5 / 2.5) = 2 slices.
    assert box.lower == (15, 17, 4) and box.upper == (33, 31, 10)
    # the cropped volume sits at the same place in space
    np.testing.assert_allclose(cropped.world_coordinates([0, 0, 0]),
                               image.world_coordinates([15, 17, 4]))
    pasted = box.paste(cropped.with_array(cropped.array * 2))
    assert pasted.same_space(image)
    np.testing.assert_array_equal(pasted.array[15:33, 17:31, 4:10], 2 * tissue[15:33, 17:31, 4:10])
    assert pasted.array[:15].sum() == 0


def test_crop_box_is_clipped_at_the_edges_and_serialises(tissue):
    mask = np.zeros(SHAPE, np.uint8)
    mask[0, 0, 0] = 1
    _, box = crop_to_mask(Volume(tissue, _affine()), LabelVolume(mask, _affine()), margin_mm=3)
    assert box.lower == (0, 0, 0) and box.upper == (4, 4, 3)
    assert CropBox(**{k: tuple(map(tuple, v)) if k == "full_affine" else tuple(v)
                      for k, v in box.to_dict().items()}) == box


def test_crop_refuses_empty_mask_and_other_grids(tissue):
    image = Volume(tissue, _affine())
    with pytest.raises(InvalidVolumeError, match="empty mask"):
        crop_to_mask(image, LabelVolume(np.zeros(SHAPE, np.uint8), _affine()))
    mask = np.zeros(SHAPE, np.uint8)
    mask[10, 10, 5] = 1
    _, box = crop_to_mask(image, LabelVolume(mask, _affine()), margin_mm=2)
    shifted = np.array(_affine())
    shifted[0, 3] = 4.0
    with pytest.raises(SpaceMismatchError, match="not on the grid this box was cut from"):
        box.crop(Volume(tissue, shifted))
    with pytest.raises(SpaceMismatchError, match="paste only what was cropped"):
        box.paste(image)
