"""Survival over time: a fitted decay-to-plateau curve, and model-free changes between scans.

Curve. Surviving fractions are measured relative to the first post-injection timepoint t0,
so the model is f(t) = p + (1 - p) exp(-(t - t0) / tau): plateau p, time constant tau,
half-life tau ln 2. (If the fraction of injected cells follows p' + (1 - p') exp(-t / tau),
its ratio to the value at t0 follows this model with the same tau and p = p' / f(t0), so
nothing is lost by measuring from t0.) The point at t0 is 1 by definition and the model
passes through it; every later point is weighted by 1 / sd^2 with sd = interval width / (2 z).

The fit profiles p out (for a fixed tau it is a weighted linear least-squares solution,
clipped to [0, ``PLATEAU_MAX``]) and searches tau over a log grid from ``TAU_MIN_DAYS`` to
``TAU_MAX_DAYS``, then refines. Intervals come from a parametric bootstrap: the fitted curve
plus each point's noise (scaled up by sqrt(reduced chi2) when the points scatter more than
their intervals say), refitted, with percentile intervals. A half-life whose upper end
reaches the grid's end is reported without an upper bound (None): the data show no decay
that bounds it. Fewer than ``MIN_POST_INJECTION_POINTS`` post-injection points: no fit.

Changes. Between consecutive post-injection timepoints, a change in graft volume is
significant only when it exceeds z times the combined sd of the two measurements (each from
its interval, on the side facing the other value) and, when given, the scan-rescan
repeatability (cv x volume, for each of the two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import chi2 as chi2_distribution

from imaging.errors import AnalysisError
from segmentation.quantify import GraftMeasurement
from segmentation.records import json_safe, percentile_interval, two_sided_z

TAU_MIN_DAYS, TAU_MAX_DAYS = 0.1, 1.0e4
TAU_GRID = np.geomspace(TAU_MIN_DAYS, TAU_MAX_DAYS, 201)
PLATEAU_MAX = 10.0
MIN_POST_INJECTION_POINTS = 3
MIN_SD = 1e-3
UNBOUNDED_SHARE = 0.5  # share of the upper tail at the grid end that makes tau unbounded


@dataclass(frozen=True)
class SurvivalFit:
    """Fitted f(t) = p + (1 - p) exp(-(t - t0) / tau), or why there is no fit."""

    status: str
    reason: str
    n_points: int
    time_origin_days: float | None = None
    plateau: float | None = None
    plateau_ci_low: float | None = None
    plateau_ci_high: float | None = None
    tau_days: float | None = None
    half_life_days: float | None = None
    half_life_ci_low_days: float | None = None
    half_life_ci_high_days: float | None = None
    chi2: float | None = None
    dof: int | None = None
    reduced_chi2: float | None = None
    p_value: float | None = None
    r2: float | None = None
    notes: tuple[str, ...] = ()

    def predict(self, days: Sequence[float]) -> np.ndarray:
        """Fitted surviving fraction at ``days`` (NaN everywhere when there is no fit)."""
        t = np.asarray(days, dtype=np.float64)
        if self.status != "ok":
            return np.full(t.shape, np.nan)
        return _model(t - self.time_origin_days, self.plateau, self.tau_days)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(self)


def _model(x: np.ndarray, plateau: float, tau: float) -> np.ndarray:
    return plateau + (1.0 - plateau) * np.exp(-np.maximum(x, 0.0) / tau)


def fit_survival(days: Sequence[float], fractions: Sequence[float | None],
                 ci_low: Sequence[float | None], ci_high: Sequence[float | None],
                 rng: np.random.Generator, confidence: float = 0.95,
                 n_bootstrap: int = 1000) -> SurvivalFit:
    """Fit plateau and half-life with bootstrap intervals (see module doc)."""
    x, y, sd, t0, notes = _points(days, fractions, ci_low, ci_high, confidence)
    n = 0 if x is None else len(x) + 1
    if x is None or n < MIN_POST_INJECTION_POINTS:
        return SurvivalFit("not enough timepoints", f"{n} post-injection timepoint(s) with a "
                           f"fraction; the curve needs at least {MIN_POST_INJECTION_POINTS}", n,
                           notes=tuple(notes))
    w = 1.0 / sd ** 2
    plateau, tau = _fit_one(x, y, w)
    fitted = _model(x, plateau, tau)
    chi2 = float((w * (y - fitted) ** 2).sum())
    dof = len(x) - 2
    scale = math.sqrt(max(1.0, chi2 / dof)) if dof > 0 else 1.0
    if scale > 1.0:
        notes.append(f"points scatter more than their intervals (reduced chi2 {chi2 / dof:.2f}); "
                     "bootstrap noise scaled up to match")
    boot_y = fitted + scale * sd * rng.standard_normal((n_bootstrap, len(x)))
    boot_p, boot_tau = _fit_grid(x, boot_y, w)
    p_low, p_high = percentile_interval(boot_p, confidence)
    tau_low, tau_high = percentile_interval(boot_tau, confidence)
    if np.mean(boot_tau >= TAU_GRID[-1]) >= UNBOUNDED_SHARE * (1 - confidence):
        tau_high = None
        notes.append("half-life has no upper bound: the data show no decay that limits it")
    if plateau > 1.0:
        notes.append("fitted plateau above 1: the graft grows (see the growth flags)")
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return SurvivalFit(
        "ok", "", n, t0, plateau, float(p_low), float(p_high), tau, tau * math.log(2),
        float(tau_low) * math.log(2), None if tau_high is None else float(tau_high) * math.log(2),
        chi2, dof, chi2 / dof if dof > 0 else None,
        float(chi2_distribution.sf(chi2, dof)) if dof > 0 else None,
        1.0 - float(((y - fitted) ** 2).sum()) / ss_tot if ss_tot > 0 else None, tuple(notes))


def _points(days, fractions, ci_low, ci_high, confidence):
    """Post-injection points after t0 as arrays (x = days - t0, y, sd), t0, notes."""
    if not len(days) == len(fractions) == len(ci_low) == len(ci_high):
        raise AnalysisError(f"days, fractions and interval bounds have lengths {len(days)}, "
                            f"{len(fractions)}, {len(ci_low)}, {len(ci_high)}; expected equal")
    z = two_sided_z(confidence)
    notes: list[str] = []
    rows = []
    for d, f, lo, hi in zip(days, fractions, ci_low, ci_high):
        if d < 0:
            continue
        if f is None or lo is None or hi is None or not np.isfinite([f, lo, hi]).all():
            notes.append(f"day {d:g} left out: no surviving fraction (not found or not quantifiable)")
            continue
        rows.append((float(d), float(f), max((float(hi) - float(lo)) / (2 * z), MIN_SD)))
    if not rows:
        return None, None, None, None, notes
    rows.sort()
    t0, f0, _ = rows[0]
    if abs(f0 - 1.0) > 1e-6:
        raise AnalysisError(f"surviving fraction at the first post-injection timepoint (day "
                            f"{t0:g}) is {f0:g}; expected 1: pass fractions relative to it")
    arr = np.array(rows[1:], dtype=np.float64).reshape(-1, 3)
    return arr[:, 0] - t0, arr[:, 1], arr[:, 2], t0, notes


def _profile(x: np.ndarray, y: np.ndarray, w: np.ndarray, taus: np.ndarray):
    """Best plateau and weighted SSE for each (curve in y, tau): shapes (B, G)."""
    e = np.exp(-x[None, :] / taus[:, None])                      # (G, N)
    one_minus = 1.0 - e
    c = np.maximum((w * one_minus ** 2).sum(axis=1), 1e-300)      # (G,)
    a = (y * w) @ one_minus.T - (w * e * one_minus).sum(axis=1)   # (B, G)
    d = ((y ** 2) * w).sum(axis=1)[:, None] - 2 * (y * w) @ e.T + (w * e ** 2).sum(axis=1)
    p = np.clip(a / c, 0.0, PLATEAU_MAX)
    return p, d - 2 * p * a + p ** 2 * c


def _fit_grid(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plateau and tau of every row of y, by grid search with a parabolic refinement in log tau."""
    p, sse = _profile(x, y, w, TAU_GRID)
    best = np.argmin(sse, axis=1)
    inner = np.clip(best, 1, len(TAU_GRID) - 2)
    rows = np.arange(len(y))
    s0, s1, s2 = sse[rows, inner - 1], sse[rows, inner], sse[rows, inner + 1]
    curvature = s0 - 2 * s1 + s2
    shift = np.where(curvature > 0, 0.5 * (s0 - s2) / np.where(curvature > 0, curvature, 1), 0.0)
    shift = np.where(best == inner, np.clip(shift, -1.0, 1.0), 0.0)
    log_step = np.log(TAU_GRID[1] / TAU_GRID[0])
    tau = TAU_GRID[best] * np.exp(shift * log_step)
    return _plateau_for(x, y, w, tau), tau


def _plateau_for(x: np.ndarray, y: np.ndarray, w: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Best plateau of each row of y for its own tau."""
    e = np.exp(-x[None, :] / tau[:, None])
    one_minus = 1.0 - e
    c = np.maximum((w * one_minus ** 2).sum(axis=1), 1e-300)
    return np.clip((w * (y - e) * one_minus).sum(axis=1) / c, 0.0, PLATEAU_MAX)


def _fit_one(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Plateau and tau of one curve: grid, then a bounded search in log tau."""
    _, tau = _fit_grid(x, y[None, :], w)
    log_step = np.log(TAU_GRID[1] / TAU_GRID[0])
    centre = np.log(tau[0])
    bounds = (max(np.log(TAU_MIN_DAYS), centre - 2 * log_step),
              min(np.log(TAU_MAX_DAYS), centre + 2 * log_step))
    result = minimize_scalar(lambda lt: _profile(x, y[None, :], w, np.exp([lt]))[1][0, 0],
                             bounds=bounds, method="bounded", options={"xatol": 1e-6})
    best = float(np.exp(result.x))
    return float(_plateau_for(x, y[None, :], w, np.array([best]))[0]), best


@dataclass(frozen=True)
class Change:
    """Graft volume change between two timepoints and whether it exceeds measurement error."""

    from_session: str
    to_session: str
    from_days: float
    to_days: float
    change_mm3: float
    change_ci_low_mm3: float
    change_ci_high_mm3: float
    relative_change: float | None
    significant: bool
    direction: str

    def to_dict(self) -> dict[str, Any]:
        return json_safe(self)


def volume_change(before: GraftMeasurement, after: GraftMeasurement, confidence: float = 0.95,
                  repeatability_cv: float | None = None) -> Change:
    """after - before, its interval, and whether it lies beyond measurement error."""
    z = two_sided_z(confidence)
    delta = after.volume_mm3 - before.volume_mm3
    if delta >= 0:
        sd_before = (before.ci_high_mm3 - before.volume_mm3) / z
        sd_after = (after.volume_mm3 - after.ci_low_mm3) / z
    else:
        sd_before = (before.volume_mm3 - before.ci_low_mm3) / z
        sd_after = (after.ci_high_mm3 - after.volume_mm3) / z
    cv = repeatability_cv or 0.0
    sd = math.sqrt(sd_before ** 2 + sd_after ** 2 + (cv * before.volume_mm3) ** 2
                   + (cv * after.volume_mm3) ** 2)
    significant = abs(delta) > z * sd
    direction = ("no significant change" if not significant
                 else "increase" if delta > 0 else "decrease")
    relative = delta / before.volume_mm3 if before.volume_mm3 > 0 else None
    return Change(before.session_id, after.session_id, before.days_post_transplant,
                  after.days_post_transplant, delta, delta - z * sd, delta + z * sd, relative,
                  bool(significant), direction)


def post_injection(measurements: Sequence[GraftMeasurement]) -> list[GraftMeasurement]:
    """Measurements at day >= 0, sorted by day."""
    return sorted((m for m in measurements if m.days_post_transplant >= 0),
                  key=lambda m: m.days_post_transplant)


def changes_between_timepoints(measurements: Sequence[GraftMeasurement], confidence: float = 0.95,
                               repeatability_cv: float | None = None) -> tuple[Change, ...]:
    """Model-free changes between consecutive post-injection timepoints (pre-injection scans,
    which hold no graft, are left out)."""
    ordered = post_injection(measurements)
    return tuple(volume_change(a, b, confidence, repeatability_cv)
                 for a, b in zip(ordered, ordered[1:]))
