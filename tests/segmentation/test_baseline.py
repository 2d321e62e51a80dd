import numpy as np
import pytest

from imaging.volume import Volume
from segmentation.baseline import classical_segmentation
from segmentation.metrics import dice


def axial_scene(rng, spacing=(0.5, 0.5, 2.0), shape=(80, 80, 20)):
    """Muscle background (0.5), CSF ring (2.2) around a 10 x 7 mm cord (1.0) along z, a
    graft ball (1.35, radius 2.5 mm) and a cyst (2.2, radius 2 mm) inside the cord."""
    x, y, z = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    cx, cy = 20.0, 20.0
    image = np.full(shape, 0.5)
    image[(x - cx) ** 2 / 8.5 ** 2 + (y - cy) ** 2 / 6.5 ** 2 <= 1] = 2.2
    cord = (x - cx) ** 2 / 5.0 ** 2 + (y - cy) ** 2 / 3.5 ** 2 <= 1
    image[cord] = 1.0
    graft = cord & ((x - cx) ** 2 + (y - cy) ** 2 + (z - 12) ** 2 <= 2.5 ** 2)
    cyst = cord & ((x - cx) ** 2 + (y - cy) ** 2 + (z - 30) ** 2 <= 2.0 ** 2)
    image[graft] = 1.35
    image[cyst] = 2.2
    image[:, 70:, :] = 1.6                                   # a band of fat
    noisy = image * 100 + rng.normal(0, 2.0, size=shape)
    truth = np.zeros(shape, np.uint8)
    truth[cord] = 1
    truth[cyst] = 2
    truth[graft] = 3
    return Volume(noisy.astype(np.float32), np.diag(list(spacing) + [1.0]),
                  {"contrast": "T2w"}), truth


def test_cord_graft_and_cyst_are_found_by_the_rules(rng):
    volume, truth = axial_scene(rng)
    labels = classical_segmentation(volume)
    assert labels.same_space(volume)
    assert dice(labels.array > 0, truth > 0) > 0.9
    # the graft's edge is lost to smoothing and to the excluded 1 mm rim; what is called
    # graft is graft
    assert dice(labels.array == 3, truth == 3) > 0.5
    assert not np.any((labels.array == 3) & (truth != 3))
    assert dice(labels.array == 2, truth == 2) > 0.6


def test_result_is_in_the_input_orientation(rng):
    volume, truth = axial_scene(rng)
    psr = volume.reorient("PSR")
    labels = classical_segmentation(psr)
    assert labels.orientation == "PSR" and labels.same_space(psr)
    np.testing.assert_array_equal(labels.reorient("RAS").array,
                                  classical_segmentation(volume).array)


def test_no_enclosed_dark_structure_means_no_cord(rng):
    noise = Volume(rng.normal(100, 10, size=(40, 40, 10)).astype(np.float32), np.eye(4),
                   {"contrast": "T2w"})
    assert not classical_segmentation(noise).array.any()


def test_blank_image_gives_empty_labels():
    blank = Volume(np.zeros((20, 20, 5), np.float32), np.eye(4))
    assert not classical_segmentation(blank).array.any()


@pytest.mark.parametrize("lesion_value", [2.2, 0.3])
def test_bright_and_dark_lesions_are_lesion(rng, lesion_value):
    volume, truth = axial_scene(rng)
    image = volume.array.copy()
    image[truth == 2] = lesion_value * 100
    labels = classical_segmentation(volume.with_array(image)).array
    assert dice(labels == 2, truth == 2) > 0.6
