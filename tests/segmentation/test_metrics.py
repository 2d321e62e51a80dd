import math

import numpy as np
import pytest

from imaging.errors import SpaceMismatchError
from segmentation.metrics import dice, hd95_mm, soft_dice, volume_error_percent


def ball(shape, centre_mm, radius_mm, spacing_mm):
    axes = [np.arange(n) * s for n, s in zip(shape, spacing_mm)]
    grid = np.meshgrid(*axes, indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grid, centre_mm))
    return r2 <= radius_mm ** 2


def test_dice_of_two_half_overlapping_cubes_is_one_half():
    a = np.zeros((30, 30, 30), bool)
    b = np.zeros_like(a)
    a[5:15, 5:15, 5:15] = True
    b[10:20, 5:15, 5:15] = True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0


def test_empty_mask_conventions():
    empty = np.zeros((8, 8, 8), bool)
    full = empty.copy()
    full[2:4, 2:4, 2:4] = True
    assert dice(empty, empty) == 1.0
    assert hd95_mm(empty, empty, (1, 1, 1)) == 0.0
    assert hd95_mm(full, empty, (1, 1, 1)) == math.inf
    assert hd95_mm(empty, full, (1, 1, 1)) == math.inf
    assert volume_error_percent(0, 0) == 0.0
    assert volume_error_percent(3, 0) == math.inf


@pytest.mark.parametrize("offset_mm", [2.0, 4.0, 6.0])
@pytest.mark.parametrize("spacing", [(0.5, 0.5, 0.5), (0.5, 0.5, 1.0)])
def test_hd95_of_two_balls_offset_by_d_is_about_d(offset_mm, spacing):
    shape = tuple(int(40 / s) for s in spacing)
    a = ball(shape, (20, 20, 20), 10, spacing)
    for axis in range(3):
        centre = [20.0, 20.0, 20.0]
        centre[axis] += offset_mm
        b = ball(shape, centre, 10, spacing)
        # directed distances on a sphere are d|cos(theta)| -> 95th percentile 0.95 d
        assert hd95_mm(a, b, spacing) == pytest.approx(0.95 * offset_mm, abs=max(spacing) * 0.75)


def test_hd95_of_identical_masks_is_zero():
    a = ball((30, 30, 30), (15, 15, 15), 8, (1, 1, 1))
    assert hd95_mm(a, a, (1, 1, 1)) == 0.0


def test_hd95_of_concentric_balls_is_radius_difference():
    spacing = (0.4, 0.4, 0.4)
    a = ball((100, 100, 100), (20, 20, 20), 12, spacing)
    b = ball((100, 100, 100), (20, 20, 20), 8, spacing)
    assert hd95_mm(a, b, spacing) == pytest.approx(4.0, abs=0.4)


def test_metrics_do_not_change_with_orientation(rng):
    spacing = (0.5, 0.8, 1.2)
    a = ball((40, 30, 20), (10, 12, 11), 6, spacing)
    b = ball((40, 30, 20), (11.5, 11, 12), 5, spacing)
    reference = (dice(a, b), hd95_mm(a, b, spacing))
    for _ in range(6):
        order = rng.permutation(3)
        flips = tuple(i for i in range(3) if rng.random() < 0.5)
        pa = np.flip(np.transpose(a, order), flips)
        pb = np.flip(np.transpose(b, order), flips)
        ps = tuple(spacing[i] for i in order)
        assert dice(pa, pb) == pytest.approx(reference[0])
        assert hd95_mm(pa, pb, ps) == pytest.approx(reference[1])


def test_mismatched_shapes_are_refused():
    with pytest.raises(SpaceMismatchError, match=r"shapes \(4, 4, 4\) and \(4, 4, 5\)"):
        dice(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))


def test_bad_spacing_is_refused():
    a = np.ones((3, 3, 3), bool)
    with pytest.raises(ValueError, match="spacing"):
        hd95_mm(a, a, (1, 1))


def test_volume_error_is_signed_percent():
    assert volume_error_percent(110, 100) == pytest.approx(10.0)
    assert volume_error_percent(75, 100) == pytest.approx(-25.0)


def test_soft_dice_equals_dice_on_binary_maps_and_rewards_partial_volume():
    a = np.zeros((10, 10, 10))
    a[2:6, 2:6, 2:6] = 1
    b = np.zeros_like(a)
    b[3:7, 2:6, 2:6] = 1
    assert soft_dice(a, b) == pytest.approx(dice(a > 0, b > 0))
    assert soft_dice(a * 0.5, a * 0.5) == pytest.approx(0.5)
