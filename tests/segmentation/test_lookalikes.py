"""Baseline subtraction of look-alikes (hemorrhage, cyst) from later graft probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imaging.errors import AnalysisError, SpaceMismatchError
from imaging.volume import LabelVolume, Volume
from segmentation.lookalikes import (NO_BASELINE_NOTE, NO_BASELINE_WIDENING, baseline_abnormality,
                                     exclude_lookalikes, persisting, union_probability)
from segmentation.quantify import quantify_timepoint

SHAPE = (30, 30, 30)


def _balls():
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)

    def ball(centre, radius):
        return np.linalg.norm(idx - np.asarray(centre), axis=-1) <= radius

    cord = ball((15, 15, 15), 12)
    lesion = ball((15, 15, 15), 8)
    hemorrhage = ball((15, 15, 10), 2)
    cyst = ball((15, 20, 15), 2)
    graft = ball((15, 12, 17), 3)
    return cord, lesion, hemorrhage, cyst, graft


def _baseline(rng):
    cord, lesion, hemorrhage, cyst, _ = _balls()
    image = np.where(cord, 1.0, 0.1)
    image[lesion] = 1.7  # edema fills the lesion
    image[hemorrhage] = 0.45
    image[cyst] = 2.2
    image = image + rng.normal(0.0, 0.03, SHAPE)
    labels = np.where(lesion, 2, np.where(cord, 1, 0)).astype(np.int16)
    return Volume(image, np.eye(4)), LabelVolume(labels, np.eye(4))


def test_baseline_map_marks_hemorrhage_and_cyst_but_not_edema(rng):
    image, labels = _baseline(rng)
    _, lesion, hemorrhage, cyst, _ = _balls()
    abnormal = baseline_abnormality(image, labels).array
    assert abnormal[hemorrhage].min() == 1.0 and abnormal[cyst].min() == 1.0
    edema = lesion & ~hemorrhage & ~cyst
    assert abnormal[edema].mean() < 0.01
    assert abnormal[~lesion].max() == 0.0


def test_later_graft_probability_loses_what_was_there_before(rng):
    image, labels = _baseline(rng)
    _, _, hemorrhage, _, graft = _balls()
    confused = np.where(graft | hemorrhage, 0.9, 0.0)  # the model also calls the old bleed graft
    result = exclude_lookalikes(Volume(confused, np.eye(4)), baseline_abnormality(image, labels))
    assert result.baseline_available and result.interval_widening_factor == 1.0
    assert result.removed_volume_mm3 == pytest.approx(0.9 * (hemorrhage & ~graft).sum(), rel=0.01)
    kept = result.graft_probability.array
    assert kept[graft & ~hemorrhage].min() == pytest.approx(0.9)
    assert result.removed_fraction == pytest.approx(result.removed_volume_mm3 / confused.sum())
    json.dumps(result.to_dict(), allow_nan=False)


def _later(rng, filled):
    """The baseline's cord a month later: the graft now fills ``filled`` (graft signal 1.35),
    the rest of the old cyst and the old bleed are still there, the edema has gone."""
    cord, lesion, hemorrhage, cyst, _ = _balls()
    image = np.where(cord, 1.0, 0.1)
    image[cyst] = 2.2
    image[hemorrhage] = 0.45
    image[filled] = 1.35
    image = image + rng.normal(0.0, 0.03, SHAPE)
    labels = np.where(filled, 3, np.where(cyst | hemorrhage, 2, np.where(cord, 1, 0)))
    return Volume(image, np.eye(4)), LabelVolume(labels.astype(np.int16), np.eye(4))


def test_graft_filling_an_old_cyst_is_kept_what_persists_is_removed(rng):
    """The cells went into the cyst: where it now shows graft signal, it is graft."""
    base_image, base_labels = _baseline(rng)
    _, _, hemorrhage, cyst, _ = _balls()
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    filled = cyst & (idx[..., 2] <= 15)           # the graft fills half of the old cyst
    image, labels = _later(rng, filled)
    abnormal = baseline_abnormality(base_image, base_labels)
    still = persisting(abnormal, image, labels).array
    assert still[filled].max() == 0.0
    assert still[cyst & ~filled].min() == 1.0 and still[hemorrhage].min() == 1.0
    confused = np.where(cyst | hemorrhage, 0.9, 0.0)   # the model calls all of it graft
    kept = exclude_lookalikes(Volume(confused, np.eye(4)), Volume(still, np.eye(4)))
    assert kept.graft_probability.array[filled].min() == pytest.approx(0.9)
    assert kept.removed_volume_mm3 == pytest.approx(0.9 * ((cyst & ~filled) | hemorrhage).sum(),
                                                    rel=0.01)
    # the baseline map alone would have removed the graft too
    alone = exclude_lookalikes(Volume(confused, np.eye(4)), abnormal)
    assert alone.graft_probability.array[filled].max() == 0.0


def test_persisting_needs_the_timepoints_normal_cord():
    affine = np.eye(4)
    with pytest.raises(AnalysisError, match="timepoint has no normal cord"):
        persisting(Volume(np.ones((4, 4, 4)), affine), Volume(np.ones((4, 4, 4)), affine),
                   LabelVolume(np.full((4, 4, 4), 3, np.int16), affine))


def test_samples_are_corrected_like_the_map():
    prob = np.full((4, 4, 4), 0.8)
    abnormal = np.zeros((4, 4, 4))
    abnormal[0] = 1.0
    samples = np.stack([prob, prob * 0.5])
    result = exclude_lookalikes(Volume(prob, np.eye(4)), Volume(abnormal, np.eye(4)), samples)
    assert result.graft_probability_samples[:, 0].max() == 0.0
    assert result.graft_probability_samples[1, 1, 1, 1] == pytest.approx(0.4)


def test_without_baseline_nothing_removed_and_low_side_widened():
    affine = np.eye(4)
    prob = np.zeros((20, 20, 20))
    prob[8:12, 8:12, 8:12] = 1.0
    result = exclude_lookalikes(Volume(prob, affine), None)
    assert not result.baseline_available and result.note == NO_BASELINE_NOTE
    assert result.removed_volume_mm3 == 0.0 and result.interval_widening_factor == NO_BASELINE_WIDENING
    metrics = quantify_timepoint(LabelVolume(np.ones(prob.shape, np.int16), affine), Volume(prob, affine))
    widened = result.widened(metrics)
    half_width = metrics.graft_volume_mm3 - metrics.graft_volume_ci_low_mm3
    assert half_width > 0
    assert widened.graft_volume_ci_low_mm3 == pytest.approx(
        max(0.0, metrics.graft_volume_mm3 - NO_BASELINE_WIDENING * half_width))
    assert widened.graft_volume_ci_high_mm3 == metrics.graft_volume_ci_high_mm3


def test_union_of_independent_maps():
    a = Volume(np.full((2, 2, 2), 0.5), np.eye(4))
    b = Volume(np.full((2, 2, 2), 0.5), np.eye(4))
    assert union_probability([a, b]).array[0, 0, 0] == pytest.approx(0.75)
    with pytest.raises(AnalysisError, match="at least one"):
        union_probability([])


def test_bad_baselines_raise():
    affine = np.eye(4)
    with pytest.raises(AnalysisError, match="no normal cord"):
        baseline_abnormality(Volume(np.ones((4, 4, 4)), affine),
                             LabelVolume(np.full((4, 4, 4), 2, np.int16), affine))
    with pytest.raises(SpaceMismatchError):
        exclude_lookalikes(Volume(np.zeros((4, 4, 4)), affine), Volume(np.zeros((4, 4, 5)), affine))
