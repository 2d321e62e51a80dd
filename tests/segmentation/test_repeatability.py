"""Scan-rescan repeatability: CV known answers, and volumes over the extent two scans share."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imaging.errors import AnalysisError, SpaceMismatchError
from imaging.rigid import RigidTransform
from imaging.volume import Volume
from segmentation.repeatability import (coefficient_of_variation, common_slices, cranio_caudal_axis,
                                        paired_volumes, pooled_cv, volume_over_slices)

SPACING = (0.5, 0.5, 3.0)
SHAPE = (40, 40, 20)
MOVE_MM = (1.0, 0.0, 4.5)   # 2 voxels in x, 1.5 slices in z


def test_cv_of_two_measurements_is_their_difference_over_root_two_means():
    assert coefficient_of_variation([100.0, 102.0]) == pytest.approx(2.0 / math.sqrt(2) / 101.0)
    assert coefficient_of_variation([90.0, 100.0, 110.0]) == pytest.approx(0.1)
    assert coefficient_of_variation([5.0, 5.0]) == 0.0


def test_pooled_cv_is_the_root_mean_square():
    assert pooled_cv([0.03, 0.04]) == pytest.approx(math.sqrt((0.03 ** 2 + 0.04 ** 2) / 2))
    assert pooled_cv([0.02]) == pytest.approx(0.02)


@pytest.mark.parametrize("values, message", [([4.0], "at least two"), ([1.0, np.nan], "finite"),
                                             ([0.0, 0.0], "mean is 0")])
def test_cv_refuses_what_is_not_two_measurements_of_a_volume(values, message):
    with pytest.raises(AnalysisError, match=message):
        coefficient_of_variation(values)


def interval_fractions(n: int, spacing: float, low: float, high: float) -> np.ndarray:
    """Exact fraction of each voxel (centre i * spacing) inside [low, high] along one axis."""
    edges = (np.arange(n) - 0.5) * spacing
    return np.clip(np.minimum(edges + spacing, high) - np.maximum(edges, low), 0, None) / spacing


def cord_length_mm(body_z_mm: float) -> float:
    """Antero-posterior extent of the box 'cord': grows linearly towards superior."""
    return 4.0 + body_z_mm / 6.0


def box_cord(shift_mm=(0.0, 0.0, 0.0)) -> Volume:
    """A 4 mm wide box cord of linearly varying depth, as exact fractions, the body moved by
    ``shift_mm`` in the scanner (same grid)."""
    fractions = np.zeros(SHAPE, dtype=np.float32)
    across = interval_fractions(SHAPE[0], SPACING[0], 6.0 + shift_mm[0], 10.0 + shift_mm[0])
    for k in range(SHAPE[2]):
        body_z = k * SPACING[2] - shift_mm[2]
        depth = interval_fractions(SHAPE[1], SPACING[1], 5.0, 5.0 + cord_length_mm(body_z))
        fractions[:, :, k] = np.outer(across, depth)
    return Volume(fractions, np.diag(list(SPACING) + [1.0]))


def test_volumes_over_the_common_extent_agree_for_a_moved_cord():
    """The rescan's body sits 4.5 mm higher: the scan's top slices fall outside it. Over
    slices 0-17 both volumes are the exact box volume; over each whole field of view they
    differ by what the two views do not share."""
    scan, rescan = box_cord(), box_cord(MOVE_MM)
    transform = RigidTransform.from_parameters([0, 0, 0], MOVE_MM)
    paired = paired_volumes(scan, rescan, transform, scan.array > 0)
    expected = sum(4.0 * cord_length_mm(k * SPACING[2]) * SPACING[2] for k in range(18))
    assert (paired.axis, paired.first_slice, paired.last_slice) == (2, 0, 17)
    assert paired.length_mm == pytest.approx(54.0)
    assert paired.scan_mm3 == pytest.approx(expected, rel=1e-6)
    assert paired.rescan_mm3 == pytest.approx(expected, rel=1e-5)
    assert paired.cv < 1e-5
    whole = [volume_over_slices(v, 2, 0, SHAPE[2] - 1) for v in (scan, rescan)]
    assert coefficient_of_variation(whole) > 0.02


def test_identity_keeps_every_slice_holding_cord():
    scan = box_cord()
    region = np.zeros(SHAPE, dtype=bool)
    region[10:20, 10:20, 3:15] = True
    assert common_slices(scan, scan, RigidTransform.identity(), region) == (2, 3, 14)


def test_cranio_caudal_axis_follows_the_affine():
    sagittal = np.array([[0, 0, -3.0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 0, 1]])
    assert cranio_caudal_axis(sagittal) == 1
    assert cranio_caudal_axis(np.diag(list(SPACING) + [1.0])) == 2


def test_common_slices_refuses_an_empty_or_misplaced_region():
    scan = box_cord()
    with pytest.raises(AnalysisError, match="region is empty"):
        common_slices(scan, scan, RigidTransform.identity(), np.zeros(SHAPE, dtype=bool))
    with pytest.raises(SpaceMismatchError, match="region has shape"):
        common_slices(scan, scan, RigidTransform.identity(), np.ones((4, 4, 4), dtype=bool))
    far = RigidTransform.from_parameters([0, 0, 0], (0.0, 0.0, 200.0))
    with pytest.raises(AnalysisError, match="no slice"):
        common_slices(scan, scan, far, scan.array > 0)
