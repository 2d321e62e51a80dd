"""Survival curve fit (plateau, half-life, intervals) and model-free changes between scans."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from imaging.errors import AnalysisError
from segmentation.quantify import GraftMeasurement
from segmentation.survival import changes_between_timepoints, fit_survival, volume_change

DAYS = np.array([1.0, 4.0, 7.0, 14.0, 30.0, 60.0, 120.0])


def _fractions(plateau, tau_days, days=DAYS):
    """Fractions relative to the first scan of a curve p + (1 - p) exp(-t / tau) from day 0."""
    f = plateau + (1 - plateau) * np.exp(-days / tau_days)
    return f / f[0], plateau / f[0]


def _fit(y, sd, rng, n_bootstrap=200, days=DAYS):
    return fit_survival(days, y, y - 1.96 * sd, y + 1.96 * sd, rng, n_bootstrap=n_bootstrap)


def test_noiseless_curve_recovers_plateau_and_half_life(rng):
    y, plateau = _fractions(0.3, 10.0)
    fit = _fit(y, np.where(DAYS == 1.0, 0.0, 0.03), rng)
    assert fit.status == "ok" and fit.n_points == 7 and fit.time_origin_days == 1.0
    assert fit.plateau == pytest.approx(plateau, abs=1e-4)
    assert fit.half_life_days == pytest.approx(10.0 * math.log(2), rel=1e-3)
    assert fit.plateau_ci_low < plateau < fit.plateau_ci_high
    assert fit.half_life_ci_low_days < fit.half_life_days < fit.half_life_ci_high_days
    assert fit.reduced_chi2 == pytest.approx(0.0, abs=1e-6) and fit.r2 == pytest.approx(1.0)
    assert fit.predict([1.0, 30.0]) == pytest.approx([1.0, y[4]], abs=1e-4)
    json.dumps(fit.to_dict(), allow_nan=False)


def test_noisy_curves_intervals_cover_the_truth(rng):
    y, plateau = _fractions(0.3, 10.0)
    sd = np.where(DAYS == 1.0, 0.0, 0.05)
    covered_p = covered_half = 0
    errors = []
    for _ in range(100):
        noisy = y + sd * rng.standard_normal(len(y))
        fit = _fit(noisy, sd, rng)
        errors.append(fit.plateau - plateau)
        covered_p += fit.plateau_ci_low <= plateau <= fit.plateau_ci_high
        high = fit.half_life_ci_high_days or np.inf
        covered_half += fit.half_life_ci_low_days <= 10.0 * math.log(2) <= high
    assert abs(np.median(errors)) < 0.02
    assert covered_p >= 88 and covered_half >= 88


def test_too_few_timepoints_give_no_fit(rng):
    fit = fit_survival([-10.0, 1.0, 30.0], [None, 1.0, 0.5], [None, 1.0, 0.4], [None, 1.0, 0.6], rng)
    assert fit.status == "not enough timepoints" and fit.plateau is None and fit.n_points == 2
    assert "at least 3" in fit.reason
    assert np.isnan(fit.predict([5.0])).all()
    assert json.loads(json.dumps(fit.to_dict(), allow_nan=False))["half_life_days"] is None
    assert fit_survival([], [], [], [], rng).status == "not enough timepoints"


def test_missing_fractions_are_left_out_with_a_note(rng):
    y, _ = _fractions(0.4, 8.0)
    fractions = list(y) + [None]
    days = list(DAYS) + [200.0]
    low = list(y - 0.05) + [None]
    high = list(y + 0.05) + [None]
    low[0] = high[0] = 1.0
    fit = fit_survival(days, fractions, low, high, rng, n_bootstrap=200)
    assert fit.status == "ok" and fit.n_points == 7
    assert any("day 200 left out" in note for note in fit.notes)


def test_no_decay_leaves_half_life_unbounded(rng):
    y = np.ones(len(DAYS))
    fit = _fit(y, np.where(DAYS == 1.0, 0.0, 0.05), rng)
    assert fit.half_life_ci_high_days is None
    assert any("no upper bound" in note for note in fit.notes)


def test_fractions_must_be_relative_to_the_first_timepoint(rng):
    with pytest.raises(AnalysisError, match="expected 1: pass fractions relative to it"):
        fit_survival([1.0, 5.0, 9.0], [0.6, 0.5, 0.4], [0.5, 0.4, 0.3], [0.7, 0.6, 0.5], rng)
    with pytest.raises(AnalysisError, match="expected equal"):
        fit_survival([1.0, 5.0], [1.0], [1.0], [1.0], rng)


def _m(session, day, volume, half_width):
    return GraftMeasurement(session, day, volume, volume - half_width, volume + half_width)


def test_changes_are_significant_only_beyond_measurement_error():
    series = [_m("pre", -5.0, 2.0, 1.0), _m("a", 1.0, 20.0, 2.0), _m("b", 14.0, 19.0, 2.0),
              _m("c", 60.0, 10.0, 2.0), _m("d", 120.0, 14.0, 1.5)]
    changes = changes_between_timepoints(series)
    assert [c.from_session for c in changes] == ["a", "b", "c"]  # pre-injection left out
    assert [c.direction for c in changes] == ["no significant change", "decrease", "increase"]
    assert changes[1].change_mm3 == pytest.approx(-9.0)
    sd = math.hypot(2.0, 1.5) / 1.96
    assert changes[2].change_ci_low_mm3 == pytest.approx(4.0 - 1.96 * sd)
    assert changes[2].relative_change == pytest.approx(0.4)
    json.dumps([c.to_dict() for c in changes], allow_nan=False)


def test_repeatability_widens_what_counts_as_a_change():
    before, after = _m("a", 10.0, 10.0, 1.0), _m("b", 20.0, 12.5, 1.0)
    assert volume_change(before, after).significant
    assert not volume_change(before, after, repeatability_cv=0.1).significant
    assert volume_change(_m("z", 1.0, 0.0, 0.0), after).relative_change is None
