"""Survival evaluation: truth compared as the issue defines it, on hand-made tables."""

from __future__ import annotations

import pytest

from segmentation.survival_evaluation import compare, summarise

TRUTH = [  # phantom truth rows: baseline, first post-injection scan, two follow-ups
    {"session_id": "ses-01", "days_post_transplant": "-5", "graft_volume_mm3": "0",
     "surviving_cells": "0", "surviving_fraction": "n/a", "iron_ug": "0", "fluorine_atoms": "0"},
    {"session_id": "ses-02", "days_post_transplant": "3", "graft_volume_mm3": "20",
     "surviving_cells": "800000", "surviving_fraction": "0.8", "iron_ug": "20",
     "fluorine_atoms": "0"},
    {"session_id": "ses-03", "days_post_transplant": "28", "graft_volume_mm3": "10",
     "surviving_cells": "400000", "surviving_fraction": "0.4", "iron_ug": "18",
     "fluorine_atoms": "0"},
    {"session_id": "ses-04", "days_post_transplant": "84", "graft_volume_mm3": "5",
     "surviving_cells": "200000", "surviving_fraction": "0.2", "iron_ug": "15",
     "fluorine_atoms": "0"},
]
PARTICIPANT = {"label": "spio", "survival_model": "decay", "control": "false",
               "iron_pg_per_cell": "20"}


def _row(session, volume, fraction, low, high, iron, cells=None, ci=(None, None)):
    return {"session_id": session, "graft_volume_mm3": volume, "surviving_fraction": fraction,
            "surviving_fraction_ci_low": low, "surviving_fraction_ci_high": high, "iron_ug": iron,
            "estimated_cells_spio": cells, "estimated_cells_spio_ci_low": ci[0],
            "estimated_cells_spio_ci_high": ci[1]}


def test_errors_coverage_and_lingering_iron_against_hand_computed_values():
    table = [_row("ses-01", 0.0, None, None, None, None),
             _row("ses-02", 22.0, 1.0, 1.0, 1.0, 17.0, 850000, (800000, 900000)),
             # truth relative to the first scan: 0.5 and 0.25
             {**_row("ses-03", 9.0, 0.47, 0.40, 0.55, 18.0, None),
              "graft_volume_ci_low_mm3": 8.0, "graft_volume_ci_high_mm3": 12.0},
             _row("ses-04", 5.5, 0.35, 0.30, 0.40, 16.5, 825000, (700000, 950000))]
    records = compare(table, ["graft_growth"], "sub-001", TRUTH, PARTICIPANT)
    assert [r.session_id for r in records] == ["ses-02", "ses-03", "ses-04"]
    summary = summarise(records)
    # later scans only: |0.47 - 0.5| = 3 points, |0.35 - 0.25| = 10 points
    assert summary["fraction_error_points"]["median"] == pytest.approx(6.5)
    assert summary["fraction_error_points"]["worst"] == pytest.approx(10.0)
    # against living / injected: |1 - 0.8|, |0.47 - 0.4|, |0.35 - 0.2| -> 20, 7, 15 points
    assert summary["fraction_error_vs_injected_points"]["median"] == pytest.approx(15.0)
    assert summary["fraction_ci_coverage"] == {"n": 2, "covered": 1, "with_interval": 2,
                                               "rate": 0.5}
    # only ses-03 has a volume interval (8-12 mm3 around the true 10): 1 of 3
    assert summary["graft_volume_ci_coverage"] == {"n": 3, "covered": 1, "rate": 1 / 3}
    # a decaying graft with a growth flag: a false tumour signal
    assert summary["growth_flag_without_growth"] == {"n": 1, "flagged": 1}
    # volumes 22/20, 9/10, 5.5/5 -> 10 % each
    assert summary["graft_volume_error_percent"]["median"] == pytest.approx(10.0)
    # iron 17/20 = 15 %, 18/18 = 0 %, 16.5/15 = 10 %
    assert summary["iron_error_percent"]["median"] == pytest.approx(10.0)
    assert summary["iron_error_percent"]["worst"] == pytest.approx(15.0)
    # lingering iron (iron > 1.5 x living cells' 20 pg): ses-03 (18 ug vs 8 ug) and ses-04;
    # ses-03 gives no count (passes), ses-04 counts 825000 cells whose interval misses 200000
    assert summary["lingering_iron_not_counted"] == {"n": 2, "passed": 1}


def test_controls_and_missing_estimates_are_counted_not_hidden():
    control = {"label": "none", "survival_model": "decay", "control": "true"}
    truth = [{**row, "surviving_fraction": "n/a", "graft_volume_mm3": "0", "iron_ug": "0",
              "surviving_cells": "0"} for row in TRUTH]
    clean = compare([_row(s, 0.2, None, None, None, None) for s in ("ses-02", "ses-03")], [],
                    "sub-002", truth, control)
    false_graft = compare([_row("ses-02", 3.0, None, None, None, None)], [], "sub-003", truth,
                          control)
    missing = compare([], [], "sub-004", TRUTH, {**PARTICIPANT, "label": "none",
                                                 "survival_model": "overgrowth"})
    summary = summarise(clean + false_graft + missing)
    assert summary["controls_no_graft"] == {"n": 2, "passed": 1}
    assert summary["overgrowth_flagged"] == {"n": 1, "passed": 0}
    assert summary["fraction_error_points"] == {"n": 2, "reported": 0, "median": None,
                                                "worst": None}
    assert summary["fraction_ci_coverage"]["covered"] == 0
    assert summary["fraction_ci_coverage"]["with_interval"] == 0
    # two controls without flags; the overgrowth subject is not counted among them
    assert summary["growth_flag_without_growth"] == {"n": 2, "flagged": 0}


def test_fluorine_interval_coverage_and_noise_floor_from_the_counts_own_intervals():
    truth = [{**row, "fluorine_atoms": atoms} for row, atoms in
             zip(TRUTH, ("0", "1e18", "5e17", "1e17"))]
    fluorine = {"label": "19f", "survival_model": "decay", "control": "false"}
    z = 1.959964
    table = [{**_row("ses-02", 20.0, 1.0, 1.0, 1.0, None), "fluorine_atoms": 1.1e18,
              # relative sd 0.2: interval 1.1e18 +- 1.96 x 0.22e18, holds 1e18
              "fluorine_atoms_ci_low": 1.1e18 - z * 0.22e18,
              "fluorine_atoms_ci_high": 1.1e18 + z * 0.22e18},
             {**_row("ses-03", 10.0, 0.5, 0.4, 0.6, None), "fluorine_atoms": 8e17,
              # relative sd 0.1, lower half cut at 0 must not matter; misses 5e17
              "fluorine_atoms_ci_low": 7.9e17, "fluorine_atoms_ci_high": 8e17 + z * 0.8e17},
             # below detection: no count, not in the coverage nor the floor
             {**_row("ses-04", 5.0, 0.25, 0.2, 0.3, None), "fluorine_atoms": None,
              "fluorine_atoms_ci_low": None, "fluorine_atoms_ci_high": None}]
    summary = summarise(compare(table, [], "sub-003", truth, fluorine))
    assert summary["fluorine_atoms_ci_coverage"] == {"n": 2, "covered": 1, "rate": 0.5}
    # 0.6745 x median(20 %, 10 %)
    assert summary["fluorine_noise_floor_percent"]["median"] == pytest.approx(0.6745 * 15.0,
                                                                              rel=1e-4)
    assert summary["fluorine_noise_floor_percent"]["n"] == 2
    assert summary["fluorine_atoms_error_percent"]["median"] == pytest.approx(35.0)
