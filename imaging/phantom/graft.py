"""The graft: survival curves, cells -> volume, label kinetics (iron, fluorine), deposit shapes.

Surviving fraction f(t) = p + (1 - p) exp(-t / tau) (decay; total loss is p = 0); for
overgrowth the same until day 60, then doubling every ``doubling_days``. Volume = living
cells / packing density. Labels: living cells keep the label they had; dividing cells
share it (dilution), so the label held by living cells is the injected label times the
lowest f reached so far. Iron released by dead cells lingers in macrophages at the
injection site and is cleared with ``iron_half_life_days``; fluorine of dead cells is
taken as cleared at once (not modelled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from imaging import physics
from imaging.phantom import contract as C
from imaging.phantom.anatomy import centreline_tangent, centreline_y
from imaging.phantom.spec import AnatomySpec, GraftSpec

KINETICS_STEP_DAYS = 0.05
CALIBRATION_TOLERANCE = 1e-4


def surviving_fraction(g: GraftSpec, days: float) -> float | None:
    """f(t): living cells / injected cells; None before the injection or for a control."""
    if g.control or days < 0:
        return None
    early = min(days, C.OVERGROWTH_ONSET_DAYS) if g.survival_model == "overgrowth" else days
    f = g.plateau + (1.0 - g.plateau) * math.exp(-early / g.tau_days)
    if g.survival_model == "overgrowth" and days > C.OVERGROWTH_ONSET_DAYS:
        f *= 2.0 ** ((days - C.OVERGROWTH_ONSET_DAYS) / g.doubling_days)
    return f


def _label_curves(g: GraftSpec, days: float) -> tuple[float, float]:
    """(label still in living cells, label of dead cells not yet cleared), as fractions."""
    t = np.arange(0.0, days + KINETICS_STEP_DAYS / 2, KINETICS_STEP_DAYS)
    f = np.array([surviving_fraction(g, float(d)) for d in t])
    retained = np.minimum.accumulate(np.minimum(f, 1.0))
    released = np.diff(-retained, prepend=-1.0)      # label freed on each step
    rate = math.log(2.0) / g.iron_half_life_days
    lingering = float(np.sum(released * np.exp(-rate * (days - t))))
    return float(retained[-1]), lingering


@dataclass(frozen=True)
class GraftState:
    """What the graft holds on one day (zeros before the injection and for controls)."""

    days_post_transplant: float
    surviving_fraction: float | None
    surviving_cells: float
    volume_mm3: float
    living_iron_ug: float
    lingering_iron_ug: float
    fluorine_atoms: float

    @property
    def iron_ug(self) -> float:
        return self.living_iron_ug + self.lingering_iron_ug


def graft_state(g: GraftSpec, days: float) -> GraftState:
    f = surviving_fraction(g, days)
    if f is None:
        return GraftState(days, None, 0.0, 0.0, 0.0, 0.0, 0.0)
    cells = float(round(g.injected_cells * f))
    retained, lingering = _label_curves(g, days)
    iron_total_ug = g.injected_cells * g.iron_pg_per_cell / physics.PICOGRAMS_PER_MICROGRAM
    spio = g.label == "spio"
    return GraftState(
        days, cells / g.injected_cells, cells, cells / g.packing_density_cells_per_mm3,
        living_iron_ug=iron_total_ug * retained if spio else 0.0,
        lingering_iron_ug=iron_total_ug * lingering if spio else 0.0,
        fluorine_atoms=(g.injected_cells * retained * g.fluorine_atoms_per_cell
                        if g.label == "19f" else 0.0))


def _deposit_frame(anatomy: AnatomySpec) -> np.ndarray:
    """Rows: unit axes (across, front-back, along the cord) at the epicentre."""
    t = centreline_tangent(0.0, anatomy)
    across = np.array([1.0, 0.0, 0.0])
    depth = np.cross(t, across)
    return np.stack([across, depth, t])


def ellipsoid_fraction(points: np.ndarray, centre: np.ndarray, axes: np.ndarray,
                       half_mm: np.ndarray, step_mm: float) -> np.ndarray:
    """Anti-aliased inside-fraction (0-1) of an ellipsoid at (N, 3) points.

    ``axes`` rows are the ellipsoid's unit axes, ``half_mm`` its semi-axes; the edge is
    blurred over one sampling step (distance to the surface along the ray from the centre).
    """
    d = (points - centre) @ axes.T
    r = np.sqrt(((d / half_mm) ** 2).sum(axis=-1))
    dist = np.linalg.norm(d, axis=-1) * (1.0 - 1.0 / np.maximum(r, 1e-9))
    return np.clip(0.5 - dist / step_mm, 0.0, 1.0)


def deposit_fraction(x, y, z, anatomy: AnatomySpec, g: GraftSpec, scale: float,
                     step_mm: float) -> np.ndarray:
    """Anti-aliased union of the scaled deposit ellipsoids at the points (0-1 per point)."""
    frame = _deposit_frame(anatomy)
    points = np.stack([np.ravel(x), np.ravel(y), np.ravel(z)], axis=-1)
    out = np.zeros(len(points), dtype=np.float64)
    for dep in g.deposits:
        ox, oy, oz = dep.offset_mm
        centre = np.array([ox, float(centreline_y(np.array(oz), anatomy)) + oy, oz])
        half = np.array([dep.width_mm, dep.width_mm, dep.length_mm]) * scale / 2
        out = np.maximum(out, ellipsoid_fraction(points, centre, frame, half, step_mm))
    return out.reshape(np.shape(x))


def reach_mm(g: GraftSpec, scale: float) -> float:
    """Distance (mm) from the epicentre that the deposits scaled by ``scale`` can reach."""
    return max(np.linalg.norm(d.offset_mm) + max(d.width_mm, d.length_mm) * scale / 2
               for d in g.deposits)


def calibrated_graft(x, y, z, in_cord: np.ndarray, anatomy: AnatomySpec, g: GraftSpec,
                     volume_mm3: float, point_volume_mm3: float, step_mm: float
                     ) -> tuple[np.ndarray, float]:
    """Graft fraction per point whose sum x point volume equals ``volume_mm3``; and the scale.

    Deposits are scaled together and clipped to the cord, so the discretised volume - the
    truth - matches living cells / packing density.
    """
    out = np.zeros(np.shape(x), dtype=np.float32)
    if volume_mm3 <= 0 or g.control:
        return out, 0.0
    nominal = sum(math.pi / 6 * d.width_mm ** 2 * d.length_mm for d in g.deposits)
    scale = (volume_mm3 / nominal) ** (1.0 / 3.0)
    for _ in range(4):
        reach = reach_mm(g, scale * 2.5) + 2 * step_mm
        near = np.flatnonzero((np.abs(np.ravel(x)) < reach) & (np.abs(np.ravel(z)) < reach)
                              & np.ravel(in_cord))
        px, py, pz = (np.ravel(a)[near] for a in (x, y, z))
        scale, frac = solve_scale(
            lambda s: deposit_fraction(px, py, pz, anatomy, g, s, step_mm),
            volume_mm3, point_volume_mm3, scale)
        if reach_mm(g, scale) + step_mm < reach:
            break
    out.ravel()[near] = frac
    return out, scale


def solve_scale(fraction_at: Callable[[float], np.ndarray], volume_mm3: float,
                point_volume_mm3: float, scale: float) -> tuple[float, np.ndarray]:
    """Scale s with sum(fraction_at(s)) x point volume = volume_mm3 (secant steps in log
    space, which also handle shapes clipped by the cord, whose volume grows slower than s^3)."""
    prev = None
    for _ in range(40):
        frac = fraction_at(scale)
        vol = float(frac.sum()) * point_volume_mm3
        if vol <= 0:
            prev, scale = None, scale * 2.0
            continue
        if abs(vol / volume_mm3 - 1.0) < CALIBRATION_TOLERANCE:
            break
        power = 3.0
        if prev is not None and prev[0] != scale and prev[1] != vol:
            power = float(np.clip(math.log(vol / prev[1]) / math.log(scale / prev[0]), 0.5, 4.0))
        prev = (scale, vol)
        scale *= (volume_mm3 / vol) ** (1.0 / power)
    return scale, frac.astype(np.float32)


def texture(x, y, z, waves: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-sd correlated texture from random plane waves (body frame)."""
    acc = np.zeros(np.shape(x), dtype=np.float64)
    for k, phi in zip(waves, phases):
        acc += np.cos(k[0] * x + k[1] * y + k[2] * z + phi)
    return (acc * math.sqrt(2.0 / len(phases))).astype(np.float32)
