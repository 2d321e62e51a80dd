"""Cell estimates: label-free volume ratio, SPIO iron, 19F signal; known answers and coverage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from imaging.errors import AnalysisError
from imaging.volume import LabelVolume, Volume
from segmentation.cells import IronMeasurement, fluorine, iron_mass, label_free, spio
from segmentation.quantify import GraftMeasurement, grow_region, noise_floor_corrected, rician_mean


def _m(day, volume, rel_sd=0.1, session=None):
    half = 1.96 * rel_sd * volume
    return GraftMeasurement(session or f"d{day}", float(day), volume, max(0.0, volume - half),
                            volume + half)


# --- label-free -----------------------------------------------------------------------------

def test_label_free_fractions_and_cells_on_known_volumes(rng):
    series = [_m(-7, 0.0), _m(1, 20.0), _m(14, 10.0), _m(60, 5.0)]
    estimates = label_free(series, 1e6, rng, n_samples=500)
    assert estimates[0].status == "not_quantifiable" and "pre-injection" in estimates[0].reason
    assert [e.surviving_fraction for e in estimates[1:]] == pytest.approx([1.0, 0.5, 0.25])
    assert [e.value for e in estimates[1:]] == pytest.approx([1e6, 5e5, 2.5e5])
    assert estimates[1].surviving_fraction_ci_low == estimates[1].surviving_fraction_ci_high == 1.0
    assert estimates[2].ci_low < 5e5 < estimates[2].ci_high
    assert all(e.status == "ok" for e in estimates[1:])
    assert any("first post-injection timepoint (day 1, 20 mm3)" in a for a in estimates[2].assumptions)
    row = estimates[2].to_row()
    assert row["estimated_surviving_cells"] == pytest.approx(5e5)
    json.dumps([e.to_dict() for e in estimates], allow_nan=False)


def test_label_free_interval_covers_the_true_fraction(rng):
    truth_first, truth_later, rel_sd = 20.0, 9.0, 0.08
    covered = 0
    for _ in range(200):
        first, later = truth_first * (1 + rel_sd * rng.normal()), truth_later * (1 + rel_sd * rng.normal())
        series = [GraftMeasurement("a", 1.0, first, first - 1.96 * rel_sd * truth_first,
                                   first + 1.96 * rel_sd * truth_first),
                  GraftMeasurement("b", 30.0, later, later - 1.96 * rel_sd * truth_later,
                                   later + 1.96 * rel_sd * truth_later)]
        e = label_free(series, None, rng, n_samples=500)[1]
        covered += e.surviving_fraction_ci_low <= truth_later / truth_first <= e.surviving_fraction_ci_high
    assert covered >= 180


def test_label_free_degenerate_cases(rng):
    unknown = label_free([_m(1, 20.0), _m(10, 10.0)], None, rng, n_samples=200)
    assert unknown[1].status == "not_quantifiable" and unknown[1].value is None
    assert unknown[1].surviving_fraction == pytest.approx(0.5)
    assert "injected cell count unknown" in unknown[1].reason

    lost_first = label_free([_m(1, 0.2), _m(10, 10.0)], 1e6, rng, n_samples=200)
    assert all(e.status == "not_quantifiable" and e.surviving_fraction is None for e in lost_first)
    assert "graft not found at the first post-injection timepoint (day 1" in lost_first[1].reason

    gone = label_free([_m(1, 20.0), _m(90, 0.3)], 1e6, rng, n_samples=200)[1]
    assert gone.status == "below_detection" and gone.value is None and gone.surviving_fraction is None
    assert gone.ci_low == 0.0 and gone.ci_high >= 1e6 * 1.0 / 20.0
    assert "detection limit" in gone.reason

    single = label_free([_m(3, 12.0)], 1e6, rng, n_samples=200)
    assert single[0].value == 1e6 and single[0].status == "ok"
    assert label_free([_m(-3, 12.0)], 1e6, rng)[0].status == "not_quantifiable"
    assert label_free([], 1e6, rng) == ()


# --- SPIO -----------------------------------------------------------------------------------

def _r2star_pair(rng, iron_ug, blur_mm=0.0, noise_per_s=3.0, relaxivity=100.0):
    shape, spacing = (40, 40, 40), 0.5
    affine = np.diag([spacing] * 3 + [1.0])
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    graft = np.linalg.norm(idx - 20, axis=-1) * spacing <= 2.0
    concentration = np.where(graft, iron_ug / (graft.sum() * spacing ** 3), 0.0)
    if blur_mm:
        concentration = gaussian_filter(concentration, blur_mm / spacing)  # blooming, sum kept
    baseline = 30.0 + rng.normal(0, noise_per_s, shape)
    later = 30.0 + relaxivity * concentration + rng.normal(0, noise_per_s, shape)
    return Volume(later, affine), Volume(baseline, affine), LabelVolume(graft.astype(np.uint8), affine)


def test_iron_mass_recovers_the_iron_including_the_blooming_halo(rng):
    later, baseline, graft = _r2star_pair(rng, iron_ug=20.0, blur_mm=0.7)
    tight = iron_mass(later, baseline, graft, 100.0)
    grown = iron_mass(later, baseline, grow_region(graft, 2.5), 100.0)
    assert grown.iron_ug == pytest.approx(20.0, rel=0.05)
    assert grown.ci_low_ug < 20.0 < grown.ci_high_ug
    assert tight.iron_ug < 0.9 * 20.0  # the halo outside the graft holds iron too
    assert grown.region_volume_mm3 > tight.region_volume_mm3
    assert grown.detection_limit_ug == pytest.approx(3 * grown.sd_ug)


def test_iron_mass_takes_a_given_noise_level(rng):
    later, baseline, graft = _r2star_pair(rng, iron_ug=20.0, noise_per_s=3.0)
    measured = iron_mass(later, baseline, graft, 100.0)
    doubled = iron_mass(later, baseline, graft, 100.0, noise_sd_per_s=2 * 3.0 * np.sqrt(2))
    assert doubled.iron_ug == measured.iron_ug   # the noise changes the interval only
    assert doubled.sd_ug == pytest.approx(2 * measured.sd_ug, rel=0.1)
    with pytest.raises(AnalysisError, match="noise_sd_per_s=-1"):
        iron_mass(later, baseline, graft, 100.0, noise_sd_per_s=-1.0)


def test_spio_cells_ok_while_iron_and_volume_agree(rng):
    iron = [IronMeasurement(20.0, 18.0, 22.0, 1.0, 3.0, 50.0, 40.0),
            IronMeasurement(10.0, 8.0, 12.0, 1.0, 3.0, 25.0, 40.0)]
    estimates = spio(iron, [_m(1, 20.0), _m(30, 10.0)], 20.0, 1e6, rng, n_samples=500)
    assert [e.status for e in estimates] == ["ok", "ok"]
    assert [e.value for e in estimates] == pytest.approx([1e6, 5e5])  # 20 ug / 20 pg per cell
    assert estimates[1].surviving_fraction == pytest.approx(0.5)
    assert any("iron outlives the cells" in a for a in estimates[0].assumptions)


def test_spio_lingering_iron_is_not_counted_as_cells(rng):
    iron = [IronMeasurement(20.0, 18.0, 22.0, 1.0, 3.0, 50.0, 40.0)] * 3 + \
           [IronMeasurement(19.0, 17.0, 21.0, 1.0, 3.0, 50.0, 40.0)]
    volumes = [_m(1, 20.0), _m(14, 17.0), _m(60, 4.0), _m(120, 4.5)]
    estimates = spio(iron, volumes, 20.0, 1e6, rng, n_samples=500)
    assert [e.status for e in estimates] == ["ok", "ok", "not_quantifiable", "not_quantifiable"]
    assert estimates[2].value is None
    assert "lingers in macrophages" in estimates[2].reason and "day 60" in estimates[3].reason


def test_spio_below_detection_and_bad_inputs(rng):
    faint = IronMeasurement(0.5, 0.0, 2.5, 1.0, 3.0, 1.0, 40.0)
    e = spio([faint], [_m(2, 10.0)], 20.0, None, rng)[0]
    assert e.status == "below_detection" and e.value is None
    assert e.ci_high == pytest.approx(3.0 * 1e6 / 20.0)
    with pytest.raises(AnalysisError, match="same order"):
        spio([faint], [], 20.0, None, rng)
    later, baseline, graft = _r2star_pair(rng, 5.0)
    broken = later.with_array(np.where(graft.array > 0, np.nan, later.array))
    with pytest.raises(AnalysisError, match="non-finite R2"):
        iron_mass(broken, baseline, graft, 100.0)


# --- 19F ------------------------------------------------------------------------------------

ATOMS_PER_CELL = 1e12


def _f19(rng, cells, sigma=1.0, snr_per_million=8.0, reference_snr=20.0):
    """2 mm 19F grid: a graft ball (19 voxels) at SNR snr_per_million per voxel for 1e6 cells,
    a reference tube at reference_snr, Rician noise. Returns image, graft region, tube, atoms."""
    shape = (20, 20, 20)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    graft = np.linalg.norm(idx - 10, axis=-1) <= 1.7
    tube = (np.linalg.norm(idx[..., :2] - [3, 16], axis=-1) <= 1.5) & (idx[..., 2] >= 4) & (idx[..., 2] < 16)
    signal_per_atom = snr_per_million * sigma * graft.sum() / (1e6 * ATOMS_PER_CELL)
    reference_atoms = reference_snr * sigma * tube.sum() / signal_per_atom
    amplitude = np.zeros(shape)
    amplitude[graft] = cells * ATOMS_PER_CELL * signal_per_atom / graft.sum()
    amplitude[tube] = reference_snr * sigma
    noisy = np.abs(amplitude + rng.normal(0, sigma, shape) + 1j * rng.normal(0, sigma, shape))
    return (Volume(noisy, affine), grow_region(LabelVolume(graft.astype(np.uint8), affine), 2.0),
            LabelVolume(tube.astype(np.uint8), affine), reference_atoms)


def test_fluorine_count_within_ten_percent_and_noise_floor_matters(rng):
    corrected, raw = [], []
    for _ in range(20):  # graft voxels at SNR 4, two signal-free voxels per graft voxel
        image, region, tube, atoms = _f19(rng, cells=5e5)
        e = fluorine(image, region, tube, atoms, ATOMS_PER_CELL, 1.0, injected_cells=1e6)
        assert e.status == "ok" and e.surviving_fraction == pytest.approx(e.value / 1e6)
        corrected.append(e.value)
        raw.append(fluorine(image, region, tube, atoms, ATOMS_PER_CELL, 1.0, noise="gaussian").value)
    assert np.mean(corrected) == pytest.approx(5e5, rel=0.10)
    assert np.mean(raw) > 1.3 * 5e5  # without the correction the noise floor adds cells


def test_fluorine_interval_coverage(rng):
    covered = 0
    for _ in range(200):
        image, region, tube, atoms = _f19(rng, cells=3e5)
        e = fluorine(image, region, tube, atoms, ATOMS_PER_CELL, 1.0)
        covered += e.status == "ok" and e.ci_low <= 3e5 <= e.ci_high
    assert covered >= 180


def test_fluorine_below_detection_is_not_zero(rng):
    image, region, tube, atoms = _f19(rng, cells=1e4)
    e = fluorine(image, region, tube, atoms, ATOMS_PER_CELL, 1.0)
    assert e.status == "below_detection" and e.value is None
    assert e.ci_low == 0.0 and e.ci_high > 1e4
    assert "fewer than" in e.reason


def test_fluorine_not_quantifiable_cases(rng):
    image, region, tube, atoms = _f19(rng, cells=5e5)
    e = fluorine(image, region, tube, None, ATOMS_PER_CELL, 1.0)
    assert e.status == "not_quantifiable" and "reference atoms unknown" in e.reason
    no_tube = LabelVolume(np.zeros(image.spatial_shape, np.uint8), image.affine)
    assert "reference tube" in fluorine(image, region, no_tube, atoms, ATOMS_PER_CELL,
                                        1.0).reason
    assert fluorine(image, region, tube, atoms, ATOMS_PER_CELL, 1.0,
                    days_post_transplant=-2.0).status == "not_quantifiable"
    with pytest.raises(AnalysisError, match="background_noise_sigma"):
        fluorine(image, region, tube, atoms, ATOMS_PER_CELL, 0.0)


def test_noise_floor_correction_removes_most_of_the_rician_bias(rng):
    sigma, n = 1.0, 200_000
    assert rician_mean(np.array([0.0]), sigma)[0] == pytest.approx(np.sqrt(np.pi / 2))
    for amplitude, tolerance in ((0.0, 0.15), (2.0, 0.45), (8.0, 0.02)):
        m = np.abs(amplitude + rng.normal(0, sigma, n) + 1j * rng.normal(0, sigma, n))
        assert abs(noise_floor_corrected(m, sigma).mean() - amplitude) < tolerance
    assert abs(np.abs(rng.normal(0, 1, n) + 1j * rng.normal(0, 1, n)).mean()) > 1.2
