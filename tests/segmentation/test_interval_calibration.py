"""Calibrated graft-volume intervals: conformal scales, their coverage, the card and the pipeline."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from imaging.errors import AnalysisError, ModelError
from segmentation.interval_calibration import (CARD_KEY, IntervalCalibration, calibrated,
                                               card_calibrations, conformal_scale,
                                               fit_calibration, resolution_class)
from segmentation.quantify import TimepointMetrics


def _metrics(volume: float, low: float, high: float) -> TimepointMetrics:
    return TimepointMetrics(graft_volume_mm3=volume, graft_volume_hard_mm3=volume,
                            graft_volume_ci_low_mm3=low, graft_volume_ci_high_mm3=high,
                            graft_volume_sd_mm3=(high - low) / 4, interval_method="own",
                            cord_volume_mm3=1.0, lesion_volume_mm3=0.0, cord_volume_hard_mm3=1.0,
                            lesion_volume_hard_mm3=0.0, lesion_length_mm=0.0,
                            lesion_max_width_mm=0.0, cord_csa_mm2=None, csa_level="none")


def test_resolution_class_goes_by_the_thickest_voxel_side():
    assert resolution_class((0.5, 0.5, 2.49)) == "research"
    assert resolution_class((2.5, 0.5, 0.5)) == "clinical"
    assert resolution_class((0.8, 0.8, 4.0)) == "clinical"


def test_conformal_scale_is_the_rank_ceil_n_plus_1_times_level():
    scores = np.arange(1.0, 40.0)            # 39 scores 1..39
    assert conformal_scale(scores, 0.975) == 39.0                      # ceil(40 * .975) = 39
    assert conformal_scale(np.arange(1.0, 101.0), 0.9) == 91.0         # ceil(101 * .9) = 91
    with pytest.raises(AnalysisError, match="too few"):
        conformal_scale(np.arange(1.0, 30.0), 0.975)


def test_fitted_intervals_hold_the_truth_as_often_as_they_claim_on_fresh_cases():
    rng = np.random.default_rng(3)

    def cases(n):   # a model that under-measures by 30 % with a spread far too narrow
        truth = rng.uniform(5.0, 40.0, n)
        estimate = truth * rng.normal(0.7, 0.15, n).clip(0.05)
        half = 0.05 * estimate
        return estimate, estimate - half, estimate + half, truth

    calibration = fit_calibration("clinical", *cases(400))
    estimate, low, high, truth = cases(4000)
    own = np.mean((low <= truth) & (truth <= high))
    lo, hi = np.vectorize(calibration.interval)(estimate, low, high)
    covered = np.mean((lo <= truth) & (truth <= hi))
    assert own < 0.2
    assert 0.93 <= covered <= 0.99
    assert calibration.scale_high > 5 * calibration.scale_low   # lopsided: misses are low


def test_fit_refuses_an_interval_that_does_not_hold_its_estimate():
    with pytest.raises(AnalysisError, match="hold its estimate"):
        fit_calibration("research", [1.0] * 50, [2.0] * 50, [3.0] * 50, [1.0] * 50)


def test_calibrated_metrics_and_the_notes():
    cal = IntervalCalibration("clinical", 2.0, 3.0, 1.0, 50, 0.95, "test")
    metrics = _metrics(10.0, 9.0, 12.0)
    out, note = calibrated(metrics, {"clinical": cal}, (0.5, 0.5, 3.0), 0.95)
    assert (out.graft_volume_ci_low_mm3, out.graft_volume_ci_high_mm3) == (6.0, 19.0)
    assert out.graft_volume_mm3 == 10.0 and "split conformal" in out.interval_method
    assert "calibrated on 50" in note
    same, note = calibrated(metrics, {"clinical": cal}, (0.5, 0.5, 1.0), 0.95)
    assert same == metrics and "not calibrated for research" in note
    same, note = calibrated(metrics, {"clinical": cal}, (0.5, 0.5, 3.0), 0.9)
    assert same == metrics and "not calibrated" in note
    same, note = calibrated(metrics, {"clinical": cal}, (0.5, 0.5, 3.0), 0.95, tta=True)
    assert same == metrics and "without test-time augmentation" in note
    low, _ = IntervalCalibration("clinical", 5.0, 1.0, 1.0, 50, 0.95).interval(2.0, 1.5, 2.5)
    assert low == 0.0                                            # clipped at 0


def test_card_entries_round_trip_and_bad_ones_are_clear():
    cal = IntervalCalibration("research", 1.5, 2.5, 1.0, 45, 0.95, "cmd", tta=True)
    validation = {CARD_KEY: {"none": {"research": cal.to_dict()}}}
    assert card_calibrations(validation, None) == {"research": cal}
    assert card_calibrations(validation, "graftwatch-graft-v5") == {}
    assert card_calibrations({}, None) == {}
    with pytest.raises(ModelError, match="not readable"):
        card_calibrations({CARD_KEY: {"none": {"research": {"scale_low": 1}}}}, None)
    with pytest.raises(ModelError, match="scale_high"):
        IntervalCalibration("research", 1.0, float("nan"), 1.0, 45, 0.95)


def test_update_card_validation_rewrites_only_the_card(tmp_path):
    from models.registry import DEFAULT_MODEL, WEIGHTS_DIR, load_card, update_card_validation
    shutil.copy(WEIGHTS_DIR / f"{DEFAULT_MODEL}.json", tmp_path / f"{DEFAULT_MODEL}.json")
    before = load_card(DEFAULT_MODEL, tmp_path)
    after = update_card_validation(DEFAULT_MODEL, CARD_KEY, {"none": {}}, tmp_path)
    saved = json.loads((tmp_path / f"{DEFAULT_MODEL}.json").read_text())
    assert saved["validation"][CARD_KEY] == {"none": {}}
    assert replace(after, validation=before.validation) == before
    assert saved["weights_sha256"] == before.weights_sha256


def test_the_pipeline_widens_the_interval_by_the_card_calibration(tmp_path):
    from imaging.phantom import write_dataset
    from imaging.study import discover_subject
    from segmentation.pipeline import analyze_subject, config_for, load_pipeline_models
    study = write_dataset(tmp_path / "study", n_subjects=1, seed=12, labels=("none",),
                          n_sessions=2, resolution="clinical")
    subject = discover_subject(study / "sub-001")
    models = load_pipeline_models("cpu", graft="none")
    cal = IntervalCalibration("clinical", 2.0, 3.0, 1.0, 50, 0.95, "test")
    card = replace(models[0].card, validation={CARD_KEY: {"none": {"clinical": cal.to_dict()}}})
    calibrated_models = (replace(models[0], card=card), *models[1:])
    config = config_for(subject)
    own = analyze_subject(subject, replace(config, calibrated_intervals=False), device="cpu",
                          models=calibrated_models)
    wide = analyze_subject(subject, config, device="cpu", models=calibrated_models)
    for a, b in zip(own.timepoints, wide.timepoints):
        m = a.metrics
        expect = cal.interval(m.graft_volume_mm3, m.graft_volume_ci_low_mm3,
                              m.graft_volume_ci_high_mm3)
        if b.is_baseline or b.registration_residual_mm is not None:
            got = (b.metrics.graft_volume_ci_low_mm3, b.metrics.graft_volume_ci_high_mm3)
            assert got == pytest.approx(expect)
            assert (b.metrics.graft_volume_model_ci_low_mm3,
                    b.metrics.graft_volume_model_ci_high_mm3) == pytest.approx(
                (m.graft_volume_ci_low_mm3, m.graft_volume_ci_high_mm3))
    for row, a in zip(wide.to_table(), own.timepoints):   # the own interval is in the table too
        assert (row["graft_volume_model_ci_low_mm3"], row["graft_volume_model_ci_high_mm3"]) == \
            pytest.approx((a.metrics.graft_volume_ci_low_mm3, a.metrics.graft_volume_ci_high_mm3))
    assert any("calibrated on 50 held-out clinical" in a for a in wide.assumptions)
    assert not any("calibrated on" in a for a in own.assumptions)
    bare = analyze_subject(subject, config, device="cpu", models=models[:2])
    expected = "calibrated on" if card_calibrations(models[0].card.validation, None).get(
        "clinical") else "not calibrated for clinical"
    assert any(expected in a for a in bare.assumptions)


def test_growth_is_called_against_the_model_own_interval_not_the_calibrated_one():
    from segmentation.config import AnalysisConfig
    from segmentation.pipeline import _subject_flags
    own = [_metrics(10.0, 9.5, 10.5), _metrics(20.0, 19.5, 20.5)]
    cal = IntervalCalibration("clinical", 8.0, 8.0, 1.0, 50, 0.95)
    wide = [calibrated(m, {"clinical": cal}, (1, 1, 3), 0.95)[0] for m in own]
    assert wide[0].graft_volume_ci_high_mm3 > wide[1].graft_volume_ci_low_mm3   # overlap
    days = (10.0, 100.0)
    reported = [m.measurement(f"ses-0{k}", d) for k, (m, d) in enumerate(zip(wide, days))]
    precision = [m.precision_measurement(f"ses-0{k}", d) for k, (m, d) in enumerate(zip(wide, days))]
    assert [f.code for f in _subject_flags(reported, precision, AnalysisConfig())] == ["graft_growth"]
    assert _subject_flags(reported, reported, AnalysisConfig()) == []   # it would be drowned
