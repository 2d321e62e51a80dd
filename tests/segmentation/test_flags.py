"""Flags fire exactly when their rule says, with plain-language messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imaging.errors import AnalysisError
from segmentation.cells import IronMeasurement, spio
from segmentation.flags import (Flag, flags_cell, growth_flags, image_quality_flags,
                                lingering_iron_flags, lost_graft_flags, no_baseline_flags,
                                oversize_flags, registration_flags)
from segmentation.quantify import GraftMeasurement


def _m(day, volume, half_width=1.0):
    return GraftMeasurement(f"d{day:g}", float(day), volume, max(0.0, volume - half_width),
                            volume + half_width)


def test_decaying_graft_raises_no_growth_flag():
    series = [_m(-7, 1.5), _m(1, 20.0), _m(14, 12.0), _m(60, 8.0), _m(120, 8.5)]
    assert growth_flags(series) == ()


def test_late_growth_is_critical_and_early_growth_a_warning():
    series = [_m(1, 20.0), _m(7, 24.0), _m(30, 10.0), _m(90, 16.0)]
    flags = growth_flags(series)
    assert [(f.timepoint, f.severity) for f in flags] == [("d7", "warning"), ("d90", "critical")]
    assert "tumour" in flags[1].message and "from 10 mm3 (day 30)" in flags[1].message
    json.dumps([f.to_dict() for f in flags], allow_nan=False)


def test_slow_growth_is_caught_against_the_nadir_not_only_the_previous_scan():
    series = [_m(1, 10.0), _m(60, 10.0), _m(90, 11.0), _m(120, 12.0), _m(150, 13.0)]
    flags = growth_flags(series)
    assert [f.timepoint for f in flags] == ["d120", "d150"]  # 10 -> 11 is within error


def test_growth_within_error_or_repeatability_or_threshold_is_not_flagged():
    series = [_m(1, 10.0), _m(90, 12.5)]
    assert len(growth_flags(series)) == 1
    assert growth_flags(series, repeatability_cv=0.1) == ()
    assert growth_flags(series, threshold_fraction=0.3) == ()


def test_graft_larger_than_injected_needs_the_injected_count():
    series = [_m(1, 9.0), _m(100, 12.0)]
    # 2e6 cells at 2e5 cells/mm3 fill 10 mm3
    flags = oversize_flags(series, 2e6, 2e5)
    assert [(f.timepoint, f.severity) for f in flags] == [("d100", "critical")]
    assert "ASSUMED packing density of 2e+05 cells/mm3" in flags[0].message
    assert oversize_flags(series, None, 2e5) == ()
    assert oversize_flags([_m(100, 10.5)], 2e6, 2e5) == ()  # interval reaches below 10 mm3


def test_graft_not_found_only_after_it_was_found():
    series = [_m(-5, 0.0), _m(1, 0.2), _m(7, 15.0), _m(30, 0.5), _m(60, 3.0), _m(90, 0.0)]
    flags = lost_graft_flags(series, min_graft_volume_mm3=1.0)
    assert [f.timepoint for f in flags] == ["d30", "d90"]
    assert "found on day 7" in flags[0].message
    assert lost_graft_flags([_m(1, 0.0), _m(7, 0.0)]) == ()


def test_registration_and_image_quality_thresholds():
    assert registration_flags("s1", 0.4, 1.0) == ()
    assert registration_flags("s1", 1.0, 1.0) == ()
    failed = registration_flags("s1", 2.5, 1.0)
    assert failed[0].severity == "critical" and "2.5 mm (limit 1 mm)" in failed[0].message
    assert registration_flags("s1", float("nan"), 1.0)[0].code == "registration_failed"
    assert image_quality_flags("s2", 12.0, 5.0) == ()
    assert image_quality_flags("s2", 3.0, 5.0)[0].code == "low_image_quality"


def test_no_baseline_and_flags_cell():
    assert no_baseline_flags(True) == ()
    flag = no_baseline_flags(False)[0]
    assert flag.timepoint is None and "look-alikes not excluded" in flag.message
    flags = [Flag("a", "warning", "s1", "x"), Flag("b", "critical", "s1", "y"), flag]
    assert flags_cell(flags, "s1") == "a;b" and flags_cell(flags, "s2") == ""
    with pytest.raises(AnalysisError, match="expected one of"):
        Flag("a", "fatal", None, "x")


def test_lingering_iron_flag_follows_the_spio_estimate():
    rng = np.random.default_rng(0)
    iron = [IronMeasurement(20.0, 18.0, 22.0, 1.0, 3.0, 50.0, 40.0)] * 2
    lingering = spio(iron, [_m(1, 20.0), _m(60, 4.0)], 20.0, 1e6, rng, n_samples=300)
    flags = lingering_iron_flags(lingering)
    assert [f.timepoint for f in flags] == ["d60"] and "macrophages" in flags[0].message
    agreeing = spio(iron, [_m(1, 20.0), _m(60, 19.0)], 20.0, 1e6, rng, n_samples=300)
    assert lingering_iron_flags(agreeing) == ()


def test_rows_merge_into_the_issue_table_columns():
    import numpy as np
    from imaging.volume import LabelVolume, Volume
    from segmentation.cells import label_free
    from segmentation.quantify import quantify_timepoint

    prob = np.zeros((10, 10, 10))
    prob[3:6, 3:6, 3:6] = 1.0
    labels = LabelVolume(np.where(prob > 0, 3, 1).astype(np.int16), np.eye(4))
    metrics = quantify_timepoint(labels, Volume(prob, np.eye(4)))
    measurement = metrics.measurement("ses-01", 1.0)
    estimate = label_free([measurement], 1e6, np.random.default_rng(0))[0]
    flags = growth_flags([measurement])
    row = {**measurement.to_row(), **metrics.to_row(), **estimate.to_row(),
           "flags": flags_cell(flags, "ses-01")}
    required = ["session_id", "days_post_transplant", "graft_volume_mm3",
                "graft_volume_ci_low_mm3", "graft_volume_ci_high_mm3", "surviving_fraction",
                "surviving_fraction_ci_low", "surviving_fraction_ci_high",
                "estimated_surviving_cells", "cord_volume_mm3", "lesion_volume_mm3", "flags"]
    assert set(required) <= set(row)
    assert row["graft_volume_mm3"] == 27.0 and row["estimated_surviving_cells"] == 1e6
    assert row["flags"] == ""
    json.dumps(row, allow_nan=False)


def test_growth_from_a_graft_not_found_allows_up_to_the_detection_volume():
    """A nadir below the detection volume may hold up to it: 0 -> 1 mm3 with a tight
    interval is growth against a bare 0, not against 'anything up to 1 mm3'."""
    series = [GraftMeasurement("d1", 1.0, 0.0, 0.0, 0.0), _m(90, 1.0, half_width=0.2)]
    assert growth_flags(series, min_graft_volume_mm3=0.01) != ()
    assert growth_flags(series, min_graft_volume_mm3=1.0) == ()


def test_growth_message_says_whether_the_calibrated_error_covers_it():
    own = [_m(1, 10.0), _m(30, 4.0), _m(90, 9.0)]
    narrow = [_m(1, 10.0, 1.5), _m(30, 4.0, 1.5), _m(90, 9.0, 1.5)]
    wide = [_m(1, 10.0, 8.0), _m(30, 4.0, 8.0), _m(90, 9.0, 8.0)]
    plain = growth_flags(own)
    assert [f.timepoint for f in plain] == ["d90"] and "held-out" not in plain[0].message
    assert growth_flags(own, reported=own) == plain
    beyond = growth_flags(own, reported=narrow)
    within = growth_flags(own, reported=wide)
    assert [f.timepoint for f in within] == ["d90"]   # the flag itself never depends on it
    assert "also beyond the error this model makes on held-out phantoms" in beyond[0].message
    assert "within the error this model makes on held-out phantoms" in within[0].message
    assert "review the images" in within[0].message
