"""Quantification on a real cord mask (SCT testing data): orientation-invariant, plausible."""

from __future__ import annotations

import numpy as np
import pytest

from imaging import load_labels
from imaging.volume import LabelVolume, Volume
from segmentation.quantify import quantify_timepoint
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def cord_with_lesion() -> LabelVolume:
    folder = shared_path("sct_testing_data", "t2")
    cord = load_labels(folder / "t2_fake_lesion_sc_seg.nii.gz")
    lesion = load_labels(folder / "t2_fake_lesion_lesion_seg.nii.gz")
    labels = (np.asarray(cord.array) > 0).astype(np.int16)
    labels[np.asarray(lesion.array) > 0] = 2
    return LabelVolume(labels, cord.affine)


def _metrics(labels: LabelVolume):
    return quantify_timepoint(labels, Volume(np.zeros(labels.spatial_shape), labels.affine))


def test_metrics_do_not_change_with_orientation(cord_with_lesion):
    stored = _metrics(cord_with_lesion)
    assert cord_with_lesion.orientation == "PSR"
    for codes in ("RAS", "LPI", "SAR"):
        moved = _metrics(cord_with_lesion.reorient(codes))
        for name in ("cord_volume_mm3", "lesion_volume_mm3", "lesion_length_mm",
                     "lesion_max_width_mm", "cord_csa_mm2"):
            assert getattr(moved, name) == pytest.approx(getattr(stored, name), rel=1e-9), name


def test_csa_at_the_lesion_matches_the_axial_slice_area(cord_with_lesion):
    m = _metrics(cord_with_lesion)
    assert m.csa_level == "lesion epicentre" and m.lesion_volume_mm3 > 0
    labels = np.asarray(cord_with_lesion.array)
    # array axis 1 runs superior; its slices are axial, 0.8 x 0.8 mm pixels
    level = int(round(np.argwhere(labels == 2)[:, 1].mean()))
    slice_area = [(labels[:, k, :] > 0).sum() * 0.64 for k in range(level - 2, level + 3)]
    # the tilt-corrected CSA is at most the axial area and close to it (a cord tilted < 30 deg)
    assert 0.85 * np.mean(slice_area) < m.cord_csa_mm2 <= 1.01 * np.mean(slice_area)
    assert 30.0 < m.cord_csa_mm2 < 120.0  # cervical cord, mm2
