"""Per-timepoint quantification on analytic shapes with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imaging.errors import AnalysisError, SpaceMismatchError
from imaging.volume import LabelVolume, Volume
from segmentation.quantify import (GraftMeasurement, background_noise_sigma,
                                   discretisation_variance_mm6, quantify_timepoint, snr_estimate)


def _grid(shape, spacing):
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(affine[:3, :3] @ (np.asarray(shape) - 1) / 2.0)  # centre at 0 mm
    points = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return affine, points @ affine[:3, :3].T + affine[:3, 3]


def _ball_fraction(shape, spacing, radius_mm, centre_mm=(0.0, 0.0, 0.0), sub=4):
    """Exact-ish partial-volume fraction of a ball in each voxel, by supersampling."""
    affine, centres = _grid(shape, spacing)
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    frac = np.zeros(shape)
    for dx in offsets:
        for dy in offsets:
            for dz in offsets:
                pts = centres + np.array([dx, dy, dz]) * spacing
                frac += np.linalg.norm(pts - centre_mm, axis=-1) <= radius_mm
    return affine, frac / sub ** 3


def _cord_labels(shape, spacing, radius_mm):
    affine, pts = _grid(shape, spacing)
    radial = pts.copy()
    radial[..., 2] = 0.0
    labels = (np.linalg.norm(radial, axis=-1) <= radius_mm).astype(np.int16)
    return affine, pts, labels


def test_cylinder_cord_csa_and_volume_match_pi_r2():
    radius = 4.0
    affine, _, labels = _cord_labels((40, 40, 60), (0.5, 0.5, 0.5), radius)
    labels[20, 20, 30] = 3
    prob = np.zeros(labels.shape)
    m = quantify_timepoint(LabelVolume(labels, affine), Volume(prob, affine))
    assert m.csa_level == "graft label centroid"
    rasterised_area = (labels[:, :, 0] > 0).sum() * 0.25  # what the mask itself holds
    assert m.cord_csa_mm2 == pytest.approx(rasterised_area, rel=1e-9)
    assert m.cord_csa_mm2 == pytest.approx(np.pi * radius ** 2, rel=0.05)
    assert m.cord_volume_mm3 == pytest.approx(np.pi * radius ** 2 * 30.0, rel=0.05)
    assert m.graft_volume_mm3 == 0.0 and m.graft_volume_hard_mm3 == pytest.approx(0.125)


def test_tilted_cylinder_csa_follows_the_cord_axis():
    angle = np.deg2rad(25.0)
    axis = np.array([0.0, np.sin(angle), np.cos(angle)])
    affine, pts = _grid((40, 50, 50), (0.5, 0.5, 0.5))
    radial = pts - (pts @ axis)[..., None] * axis
    labels = (np.linalg.norm(radial, axis=-1) <= 3.5).astype(np.int16)
    lesion = np.linalg.norm(pts, axis=-1) <= 1.0
    labels[lesion] = 2
    m = quantify_timepoint(LabelVolume(labels, affine), Volume(np.zeros(labels.shape), affine))
    assert m.csa_level == "lesion epicentre"
    assert m.cord_csa_mm2 == pytest.approx(np.pi * 3.5 ** 2, rel=0.03)


def test_partial_volume_ball_recovers_volume_at_clinical_resolution():
    radius, spacing = 2.5, (0.5, 0.5, 3.0)
    affine, frac = _ball_fraction((24, 24, 8), spacing, radius, centre_mm=(0.1, -0.2, 0.7))
    truth = 4.0 / 3.0 * np.pi * radius ** 3
    labels = np.where(frac >= 0.5, 3, 1).astype(np.int16)
    m = quantify_timepoint(LabelVolume(labels, affine), Volume(frac, affine))
    assert m.graft_volume_mm3 == pytest.approx(truth, rel=0.02)
    assert m.graft_volume_ci_low_mm3 < truth < m.graft_volume_ci_high_mm3
    hard_error = abs(m.graft_volume_hard_mm3 - truth) / truth
    assert hard_error > abs(m.graft_volume_mm3 - truth) / truth


def test_partial_volume_lesion_stays_put_when_the_ball_moves_by_part_of_a_slice():
    """Probabilities give the lesion's and cord's partial volume; the labels' voxel counts
    (kept as *_hard_mm3) jump as a thick-slice ball moves by a fraction of a slice."""
    radius, spacing, cord_radius = 2.5, (0.5, 0.5, 3.0), 5.0
    truth = 4.0 / 3.0 * np.pi * radius ** 3
    found = []
    for dz in (0.0, 0.8, 1.5):
        affine, frac = _ball_fraction((28, 28, 8), spacing, radius, centre_mm=(0.1, -0.2, dz))
        _, cord = _ball_fraction((28, 28, 8), spacing, cord_radius, centre_mm=(0.1, -0.2, dz))
        labels = np.where(frac >= 0.5, 2, np.where(cord >= 0.5, 1, 0)).astype(np.int16)
        m = quantify_timepoint(LabelVolume(labels, affine), Volume(np.zeros(labels.shape), affine),
                               cord_probability=Volume(cord, affine),
                               lesion_probability=Volume(frac, affine))
        assert m.lesion_volume_mm3 == pytest.approx(truth, rel=0.02)
        assert m.cord_volume_mm3 == pytest.approx(4.0 / 3.0 * np.pi * cord_radius ** 3, rel=0.02)
        assert m.lesion_volume_hard_mm3 == pytest.approx((labels == 2).sum() * 0.75)
        assert m.cord_volume_hard_mm3 == pytest.approx((labels > 0).sum() * 0.75)
        found.append((m.lesion_volume_mm3, m.lesion_volume_hard_mm3))
    soft, hard = np.array(found).T
    assert np.ptp(hard) > 5.0 * np.ptp(soft)


def test_without_probabilities_the_volumes_are_the_label_counts():
    affine, _, labels = _cord_labels((20, 20, 10), (1.0, 1.0, 2.0), 4.0)
    labels[8:11, 8:11, 4:6] = 2
    m = quantify_timepoint(LabelVolume(labels, affine), Volume(np.zeros(labels.shape), affine))
    assert m.cord_volume_mm3 == m.cord_volume_hard_mm3 == pytest.approx((labels > 0).sum() * 2.0)
    assert m.lesion_volume_mm3 == m.lesion_volume_hard_mm3 == pytest.approx(18 * 2.0)


def test_a_lesion_probability_on_another_grid_or_out_of_range_is_refused():
    affine, _, labels = _cord_labels((8, 8, 8), (1.0, 1.0, 1.0), 3.0)
    graft = Volume(np.zeros(labels.shape), affine)
    with pytest.raises(SpaceMismatchError):
        quantify_timepoint(LabelVolume(labels, affine), graft,
                           lesion_probability=Volume(np.zeros((8, 8, 9)), affine))
    with pytest.raises(AnalysisError, match="cord probability"):
        quantify_timepoint(LabelVolume(labels, affine), graft,
                           cord_probability=Volume(np.full(labels.shape, 2.0), affine))


def test_discretisation_term_shrinks_with_finer_voxels():
    radius = 2.5
    coarse_aff, coarse = _ball_fraction((24, 24, 8), (0.5, 0.5, 3.0), radius)
    fine_aff, fine = _ball_fraction((24, 24, 24), (0.5, 0.5, 0.5), radius)
    sd_coarse = np.sqrt(discretisation_variance_mm6(coarse, 0.75))
    sd_fine = np.sqrt(discretisation_variance_mm6(fine, 0.125))
    assert sd_coarse > 2.0 * sd_fine
    binary = np.zeros((5, 5, 5))
    binary[1:3, 1:3, 1:3] = 1.0  # a 2x2x2 cube: 24 faces
    assert discretisation_variance_mm6(binary, 1.0) == pytest.approx(24.0 / 12.0)


def test_lesion_ball_length_and_width():
    affine, pts, labels = _cord_labels((40, 40, 60), (0.5, 0.5, 0.5), 6.0)
    labels[np.linalg.norm(pts, axis=-1) <= 3.0] = 2
    m = quantify_timepoint(LabelVolume(labels, affine), Volume(np.zeros(labels.shape), affine))
    assert m.lesion_length_mm == pytest.approx(6.0, abs=0.5)
    assert m.lesion_max_width_mm == pytest.approx(6.0, abs=0.5)
    assert m.lesion_volume_mm3 == pytest.approx(4 / 3 * np.pi * 27, rel=0.05)


def test_interval_covers_truth_in_simulated_test_time_augmentation(rng):
    """200 measurement sets: a ball whose boundary each model pass places with an error."""
    spacing, radius, k = (0.5, 0.5, 1.5), 2.0, 6
    affine, pts = _grid((16, 16, 8), spacing)
    dist = np.linalg.norm(pts, axis=-1)
    labels = LabelVolume(np.ones((16, 16, 8), np.int16), affine)

    def soft_ball(r):
        return np.clip(r - dist + 0.5, 0.0, 1.0)

    truth = soft_ball(radius).sum() * 0.375
    covered = 0
    for _ in range(200):
        radii = radius + rng.normal(0.0, 0.15, size=k + 1)
        samples = np.stack([soft_ball(r) for r in radii[1:]])
        m = quantify_timepoint(labels, Volume(soft_ball(radii[0]), affine), samples)
        covered += m.graft_volume_ci_low_mm3 <= truth <= m.graft_volume_ci_high_mm3
    assert covered >= 180


def test_empty_masks_give_zeros_and_no_csa():
    affine = np.eye(4)
    labels = LabelVolume(np.zeros((8, 8, 8), np.int16), affine)
    m = quantify_timepoint(labels, Volume(np.zeros((8, 8, 8)), affine))
    assert (m.graft_volume_mm3, m.graft_volume_ci_low_mm3, m.graft_volume_ci_high_mm3) == (0, 0, 0)
    assert m.cord_volume_mm3 == 0 and m.lesion_length_mm == 0 and m.cord_csa_mm2 is None
    assert m.csa_level.startswith("not quantifiable")
    row = m.to_row()
    json.dumps(m.to_dict(), allow_nan=False)
    assert row["cord_csa_mm2"] is None
    assert {"graft_volume_mm3", "graft_volume_ci_low_mm3", "graft_volume_ci_high_mm3",
            "cord_volume_mm3", "lesion_volume_mm3"} <= set(row)
    g = m.measurement("ses-01", 7)
    assert g.days_post_transplant == 7.0 and g.volume_mm3 == 0.0


def test_faint_background_does_not_add_up():
    affine = np.eye(4)
    prob = np.full((30, 30, 30), 0.005)
    m = quantify_timepoint(LabelVolume(np.zeros(prob.shape, np.int16), affine), Volume(prob, affine))
    assert m.graft_volume_mm3 == 0.0


def test_bad_inputs_raise_with_clear_messages():
    affine = np.eye(4)
    labels = LabelVolume(np.zeros((4, 4, 4), np.int16), affine)
    with pytest.raises(AnalysisError, match="expected probabilities in"):
        quantify_timepoint(labels, Volume(np.full((4, 4, 4), 1.5), affine))
    with pytest.raises(AnalysisError, match="NaN or infinite"):
        quantify_timepoint(labels, Volume(np.full((4, 4, 4), np.nan), affine))
    with pytest.raises(AnalysisError, match="1 cord, 2 lesion, 3 graft"):
        quantify_timepoint(LabelVolume(np.full((4, 4, 4), 7, np.int16), affine),
                           Volume(np.zeros((4, 4, 4)), affine))
    with pytest.raises(AnalysisError, match=r"expected \(K,\)"):
        quantify_timepoint(labels, Volume(np.zeros((4, 4, 4)), affine), np.zeros((2, 4, 4, 3)))
    with pytest.raises(SpaceMismatchError):
        quantify_timepoint(labels, Volume(np.zeros((4, 4, 5)), affine))
    with pytest.raises(AnalysisError, match="expected 0 <= low <= value <= high"):
        GraftMeasurement("ses-1", 3.0, 5.0, 6.0, 7.0)


def test_noise_sigma_and_snr_from_rician_background(rng):
    sigma = 2.0
    shape = (40, 40, 10)
    true_signal = np.zeros(shape)
    true_signal[10:30, 10:30] = 30.0
    noisy = np.abs(true_signal + rng.normal(0, sigma, shape) + 1j * rng.normal(0, sigma, shape))
    image = Volume(noisy, np.eye(4))
    background = LabelVolume((true_signal == 0).astype(np.uint8), np.eye(4))
    signal = LabelVolume((true_signal > 0).astype(np.uint8), np.eye(4))
    assert background_noise_sigma(image, background) == pytest.approx(sigma, rel=0.03)
    assert snr_estimate(image, signal, background) == pytest.approx(15.0, rel=0.05)
    with pytest.raises(AnalysisError, match="'rician' or 'gaussian'"):
        background_noise_sigma(image, background, noise="poisson")
