"""Graft probability -> graft fraction curves: fit, apply, card entries, the pipeline's use."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from imaging.errors import AnalysisError, ModelError
from segmentation.probability_calibration import (CARD_KEY, MIN_VOXELS, ProbabilityCalibration,
                                                  calibrated_fractions,
                                                  card_probability_calibrations,
                                                  fit_probability_calibration)
from segmentation.quantify import PROBABILITY_FLOOR


def _overconfident(rng, n=20_000):
    """Voxels whose model probability is twice their true fraction (capped at 1)."""
    truth = rng.uniform(0.0, 0.5, n)
    return np.clip(2 * truth + rng.normal(0, 0.02, n), 0, 1), truth


def test_the_fitted_curve_undoes_a_known_overconfidence(rng):
    p, truth = _overconfident(rng)
    curve = fit_probability_calibration("clinical", p, truth, source="test")
    assert curve.n_voxels == int((p >= PROBABILITY_FLOOR).sum())
    fresh_p, fresh_truth = _overconfident(rng)
    kept = fresh_p >= PROBABILITY_FLOOR
    assert curve.apply(fresh_p)[kept].sum() == pytest.approx(fresh_truth[kept].sum(), rel=0.02)
    assert fresh_p[kept].sum() > 1.8 * fresh_truth[kept].sum()   # what it corrects
    assert float(curve.apply(np.array([0.6]))[0]) == pytest.approx(0.3, abs=0.03)
    assert curve.apply(np.array([PROBABILITY_FLOOR / 2]))[0] == 0.0   # below the floor: none


def test_the_curve_is_monotone_even_where_the_bins_are_not(rng):
    p = rng.uniform(0.0, 1.0, 5000)
    truth = np.where(p > 0.5, 0.2, 0.4) + rng.normal(0, 0.01, p.size)   # falls with P
    curve = fit_probability_calibration("research", p, truth)
    assert np.all(np.diff(curve.fractions) >= 0) and np.all(np.diff(curve.probabilities) >= 0)
    assert curve.probabilities[0] == 0.0 and curve.probabilities[-1] == 1.0
    grid = curve.apply(np.linspace(PROBABILITY_FLOOR, 1, 200))
    assert np.all(np.diff(grid) >= -1e-7)


def test_too_few_voxels_give_no_curve_and_mismatched_inputs_raise():
    assert fit_probability_calibration("research", np.full(MIN_VOXELS - 1, 0.5),
                                       np.full(MIN_VOXELS - 1, 0.2)) is None
    with pytest.raises(AnalysisError, match="one each"):
        fit_probability_calibration("research", np.ones(3), np.ones(4))


def test_card_entries_round_trip_and_bad_ones_are_clear(rng):
    curve = fit_probability_calibration("clinical", *_overconfident(rng))
    validation = {CARD_KEY: {"graftwatch-graft-v7": {"clinical": curve.to_dict()}}}
    assert card_probability_calibrations(validation, "graftwatch-graft-v7") == {"clinical": curve}
    assert card_probability_calibrations(validation, None) == {}
    with pytest.raises(ModelError, match="not readable"):
        card_probability_calibrations({CARD_KEY: {"none": {"research": {"fractions": [0]}}}}, None)
    with pytest.raises(ModelError, match="rising"):
        ProbabilityCalibration("research", (0.0, 0.5, 1.0), (0.0, 0.6, 0.3), 10)


def test_calibrated_fractions_by_resolution_and_the_notes(rng):
    curve = ProbabilityCalibration("clinical", (0.0, 1.0), (0.0, 0.5), 1000, "test")
    prob = rng.uniform(0.2, 1.0, (4, 4, 4))
    samples = np.stack([prob, prob / 2])
    got, got_samples, note = calibrated_fractions(prob, samples, {"clinical": curve}, (0.5, 0.5, 3))
    assert got == pytest.approx(prob / 2, abs=1e-6)
    assert got_samples[1] == pytest.approx(prob / 4, abs=1e-6)
    assert "reliability curve fitted on 1000 voxels" in note
    same, same_samples, note = calibrated_fractions(prob, samples, {"clinical": curve},
                                                    (0.5, 0.5, 1))
    assert same is prob and same_samples is samples and "not calibrated for research" in note


def test_the_pipeline_sums_calibrated_fractions_and_writes_them(tmp_path):
    """seg-v4 + graft-v7 on a clinical phantom: a curve halving every probability halves the
    partial-volume graft volume and the written graft map; labels stay."""
    from imaging.phantom import write_dataset
    from imaging.study import discover_subject
    from segmentation.pipeline import analyze_subject, config_for, load_pipeline_models
    study = write_dataset(tmp_path / "study", n_subjects=1, seed=700000, labels=("none",),
                          n_sessions=2, resolution="clinical")
    subject = discover_subject(study / "sub-001")
    models = load_pipeline_models("cpu", graft="graftwatch-graft-v7")
    half = ProbabilityCalibration("clinical", (0.0, 1.0), (0.0, 0.5), 1000, "test")
    card = replace(models[0].card, validation={CARD_KEY: {"graftwatch-graft-v7": {
        "clinical": half.to_dict()}}})
    halved_models = (replace(models[0], card=card), *models[1:])
    config = replace(config_for(subject), calibrated_intervals=False)
    raw = analyze_subject(subject, replace(config, calibrated_fractions=False), device="cpu",
                          models=halved_models)
    halved = analyze_subject(subject, config, device="cpu", models=halved_models)
    after = raw.timepoints[-1]
    assert after.metrics.graft_volume_mm3 > 1.0            # there is a graft to halve
    for a, b in zip(raw.timepoints, halved.timepoints):
        # halved probabilities of 0.01-0.02 fall under quantify's 0.01 floor: a few % less
        assert b.metrics.graft_volume_mm3 == pytest.approx(a.metrics.graft_volume_mm3 / 2,
                                                           rel=0.05, abs=0.01)
        assert b.metrics.graft_volume_mm3 <= a.metrics.graft_volume_mm3 / 2 + 1e-9
        assert b.metrics.graft_volume_hard_mm3 == a.metrics.graft_volume_hard_mm3
        assert np.array_equal(b.images.labels.array, a.images.labels.array)
        assert np.asarray(b.images.graft_probability.array) == pytest.approx(
            half.apply(np.asarray(a.images.graft_probability.array)), abs=1e-6)
    assert any("reliability curve" in a for a in halved.assumptions)
    assert not any("reliability curve" in a for a in raw.assumptions)
