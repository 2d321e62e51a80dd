import numpy as np
import pytest

from imaging.errors import InvalidVolumeError
from imaging.volume import Volume
from segmentation.postprocess import (PostprocessConfig, clean_probabilities, postprocess)


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(4, dtype=np.float32)[labels]


def scene(spacing=(0.5, 0.5, 1.0)):
    """A cord along z with a true graft inside, a graft look-alike in 'muscle', tiny islands."""
    shape = (60, 60, 40)
    x, y, z = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    labels = np.zeros(shape, np.int64)
    cord = (x - 15) ** 2 / 25 + (y - 15) ** 2 / 12 <= 1          # 10 x 7 mm ellipse
    labels[cord] = 1
    labels[cord & ((x - 15) ** 2 + (y - 15) ** 2 + (z - 20) ** 2 <= 2.0 ** 2)] = 3   # graft
    labels[cord & (np.abs(z - 30) < 2.5)] = 2                                         # lesion
    labels[(x - 26) ** 2 + (y - 26) ** 2 + (z - 20) ** 2 <= 2.0 ** 2] = 3            # far blob
    labels[cord & (np.abs(x - 17) < 0.3) & (np.abs(y - 15) < 0.3) & (np.abs(z - 8) < 0.6)] = 3
    labels[cord & (np.abs(x - 13) < 0.3) & (np.abs(y - 15) < 0.3) & (np.abs(z - 12) < 0.6)] = 2
    return labels, spacing


def test_far_graft_and_tiny_islands_are_removed_true_graft_kept():
    labels, spacing = scene()
    probs, report = clean_probabilities(one_hot(labels), spacing, PostprocessConfig())
    out = probs.argmax(-1)
    voxel = np.prod(spacing)
    true_graft_mm3 = 4 / 3 * np.pi * 2.0 ** 3
    assert (out == 3).sum() * voxel == pytest.approx(true_graft_mm3, rel=0.15)
    assert labels[34, 30, 8] == 3 and out[34, 30, 8] == 1      # tiny graft island -> cord
    assert labels[26, 30, 12] == 2 and out[26, 30, 12] == 1    # tiny lesion island -> cord
    assert report.cord_removed_mm3 == pytest.approx(true_graft_mm3, rel=0.15)  # far blob
    assert report.graft_components_removed == 1
    assert report.lesion_components_removed == 1
    assert 0 < report.lesion_removed_mm3 < 1.0
    assert not np.any(out[48:56, 48:56, 16:24] == 3)        # the far blob is gone
    assert np.all(out[labels == 2][: 10] >= 1)


@pytest.mark.parametrize("limit_mm", [3.0, 5.0])
def test_graft_farther_than_the_limit_from_the_cord_is_dropped(limit_mm):
    labels = np.zeros((40, 20, 20), np.int64)
    labels[:10] = 1                               # cord up to x = 9
    labels[10:30, 8:11, 8:11] = 3                 # a graft rod sticking out of it along x
    config = PostprocessConfig(graft_max_distance_mm=limit_mm)
    probs, report = clean_probabilities(one_hot(labels), (1, 1, 1), config)
    out = probs.argmax(-1)
    last = 9 + int(limit_mm)
    assert np.all(out[10:last + 1, 8:11, 8:11] == 3)
    assert np.all(out[last + 1:30, 8:11, 8:11] == 0)
    assert report.graft_outside_region_mm3 == pytest.approx(9 * (29 - last))


def test_labels_stay_argmax_and_probabilities_sum_to_one(rng):
    labels, spacing = scene()
    noisy = one_hot(labels) + rng.uniform(0, 0.3, size=labels.shape + (4,)).astype(np.float32)
    noisy /= noisy.sum(-1, keepdims=True)
    volume = Volume(noisy, np.diag(list(spacing) + [1.0]))
    result = postprocess(volume)
    np.testing.assert_allclose(result.probabilities.array.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.labels.array, result.probabilities.array.argmax(-1))
    assert result.labels.same_space(volume)
    # diffuse graft probability far from the cord no longer counts as graft volume
    far = result.probabilities.array[45:, 45:, :, 3]
    assert far.max() == 0.0


def test_island_size_is_physical_not_voxels():
    config = PostprocessConfig(min_graft_island_mm3=1.0, graft_max_distance_mm=100)
    for spacing, expect_kept in (((0.5, 0.5, 0.5), True), ((0.25, 0.25, 0.25), False)):
        labels = np.ones((40, 40, 40), np.int64)
        labels[10:12, 10:12, 10:14] = 3      # 16 voxels: 2 mm3 at 0.5 mm, 0.25 mm3 at 0.25 mm
        probs, _ = clean_probabilities(one_hot(labels), spacing, config)
        assert bool(np.any(probs.argmax(-1) == 3)) is expect_kept


def test_small_cord_fragments_are_dropped_and_reported():
    labels = np.zeros((50, 50, 50), np.int64)
    labels[10:20, 10:20, :] = 1
    labels[40:42, 40:42, 40:42] = 1
    probs, report = clean_probabilities(one_hot(labels), (1, 1, 1), PostprocessConfig())
    assert report.cord_components_removed == 1
    assert report.cord_removed_mm3 == pytest.approx(8.0)
    assert (probs.argmax(-1) == 1).sum() == 10 * 10 * 50


def test_a_cord_blob_beside_the_cord_is_dropped_a_gap_along_it_is_bridged():
    labels = np.zeros((60, 40, 60), np.int64)
    labels[10:20, 10:20, 0:25] = 1          # the cord, z 0-24 ...
    labels[10:20, 10:20, 30:60] = 1         # ... missed over 5 slices (6 mm voxel to voxel)
    labels[40:50, 10:20, 10:40] = 1         # a cord-like blob 21 mm beside it (3000 mm3)
    probs, report = clean_probabilities(one_hot(labels), (1, 1, 1), PostprocessConfig())
    out = probs.argmax(-1)
    assert np.all(out[10:20, 10:20, 30:60] == 1)            # the far end of the cord stays
    assert not np.any(out[40:50] > 0)                       # the blob goes
    assert report.cord_components_removed == 1
    assert report.cord_removed_mm3 == pytest.approx(3000.0)
    # a blob within the gap joins the cord: it may be a piece of it
    close, _ = clean_probabilities(one_hot(labels), (1, 1, 1),
                                   PostprocessConfig(max_cord_gap_mm=25.0))
    assert np.all(close.argmax(-1)[40:50, 10:20, 10:40] == 1)


def test_no_cord_means_no_graft():
    labels = np.zeros((20, 20, 20), np.int64)
    labels[5:10, 5:10, 5:10] = 3
    probs, report = clean_probabilities(one_hot(labels), (1, 1, 1), PostprocessConfig())
    assert not np.any(probs.argmax(-1) > 0)
    assert report.cord_removed_mm3 == pytest.approx(125.0)


def test_partial_volume_fringe_of_a_kept_graft_is_kept():
    labels = np.ones((30, 30, 30), np.int64)
    labels[12:16, 12:16, 12:16] = 3
    probs = one_hot(labels)
    fringe = np.zeros(labels.shape, bool)
    fringe[11, 12:16, 12:16] = True
    probs[fringe] = [0, 0.85, 0, 0.15]                 # graft fraction below the support level
    cleaned, report = clean_probabilities(probs, (1, 1, 1), PostprocessConfig())
    assert cleaned[..., 3].sum() == pytest.approx(64 + 16 * 0.15, rel=1e-5)
    assert report.graft_removed_mm3 == 0.0


def test_wrong_shape_is_refused():
    with pytest.raises(InvalidVolumeError, match=r"expected \(x, y, z, 4\)"):
        clean_probabilities(np.zeros((4, 4, 4, 3)), (1, 1, 1), PostprocessConfig())
