"""Surviving-cell estimates three ways, each only where its data exists, each with its assumptions.

- ``label_free``: surviving fraction = graft volume / graft volume at the first
  post-injection timepoint; cells = injected cells x fraction.
- ``spio``: iron mass from delta-R2* against the baseline (``iron_mass``), cells = iron /
  iron per cell; not quantifiable once the iron stays while the graft volume falls.
- ``fluorine``: cells = (S_graft / S_ref) x reference atoms / atoms per cell, with Rician
  noise-floor correction and a detection limit.

Every estimate is a ``CellEstimate`` whose status is "ok", "not_quantifiable" (value None,
with the reason) or "below_detection" (value None, interval from 0 to the detection limit:
"fewer than N cells", never a 0 that looks measured). ``surviving_fraction`` is always
estimated cells / injected cells; for label-free it exists even when the injected count is
unknown (it is the volume ratio). Days < 0 are pre-injection scans: not quantifiable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from imaging.errors import AnalysisError
from imaging.physics import PICOGRAMS_PER_MICROGRAM
from imaging.volume import LabelVolume, Volume, require_same_space
from segmentation.quantify import GraftMeasurement, checked_probability, noise_floor_corrected
from segmentation.records import json_safe, percentile_interval, two_sided_z

STATUSES = ("ok", "not_quantifiable", "below_detection")
DETECTION_SIGMAS = 3.0
PRE_INJECTION = "pre-injection scan: no cells injected yet"
LINGERING_IRON = "iron and graft volume disagree"


@dataclass(frozen=True)
class CellEstimate:
    """Estimated surviving cells at one timepoint by one method, with why and under what."""

    method: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    status: str
    reason: str
    assumptions: tuple[str, ...]
    session_id: str | None = None
    days_post_transplant: float | None = None
    surviving_fraction: float | None = None
    surviving_fraction_ci_low: float | None = None
    surviving_fraction_ci_high: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise AnalysisError(f"status {self.status!r}; expected one of {STATUSES}")

    def to_dict(self) -> dict[str, Any]:
        return json_safe(self)

    def to_row(self) -> dict[str, Any]:
        return json_safe({
            "surviving_fraction": self.surviving_fraction,
            "surviving_fraction_ci_low": self.surviving_fraction_ci_low,
            "surviving_fraction_ci_high": self.surviving_fraction_ci_high,
            "estimated_surviving_cells": self.value,
            "estimated_surviving_cells_ci_low": self.ci_low,
            "estimated_surviving_cells_ci_high": self.ci_high,
            "cell_estimate_method": self.method, "cell_estimate_status": self.status})


@dataclass(frozen=True)
class Interval:
    """A value with an interval at the analysis confidence (any unit)."""

    value: float
    low: float
    high: float


def ratio_interval(numerator: Interval, denominator: Interval, rng: np.random.Generator,
                   confidence: float, n_samples: int, floor: float) -> tuple[float, float, float]:
    """numerator / denominator and its percentile interval by Monte-Carlo.

    Each quantity is drawn from a split normal whose quantiles reproduce its interval
    (lower side sd = (value - low) / z, upper side sd = (high - value) / z), the two
    independently; the numerator is clipped at 0 and the denominator at ``floor`` (> 0).
    """
    z = two_sided_z(confidence)
    num = np.maximum(_split_normal(numerator, z, rng, n_samples), 0.0)
    den = np.maximum(_split_normal(denominator, z, rng, n_samples), floor)
    low, high = percentile_interval(num / den, confidence)
    return numerator.value / max(denominator.value, floor), float(low), float(high)


def _split_normal(item: Interval, z: float, rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.standard_normal(n)
    sd = np.where(u < 0, (item.value - item.low) / z, (item.high - item.value) / z)
    return item.value + u * sd


def _volume(m: GraftMeasurement) -> Interval:
    return Interval(m.volume_mm3, m.ci_low_mm3, m.ci_high_mm3)


def first_post_injection(days: Sequence[float]) -> int | None:
    """Index of the earliest timepoint at day >= 0, None when all are pre-injection."""
    post = [i for i, d in enumerate(days) if d >= 0]
    return min(post, key=lambda i: days[i]) if post else None


def label_free(measurements: Sequence[GraftMeasurement], injected_cells: float | None,
               rng: np.random.Generator, confidence: float = 0.95,
               min_graft_volume_mm3: float = 1.0, n_samples: int = 2000) -> tuple[CellEstimate, ...]:
    """Surviving fraction and cells from graft volumes, one estimate per measurement (same order)."""
    ref_index = first_post_injection([m.days_post_transplant for m in measurements])
    if ref_index is None:
        return tuple(_unquantifiable("label_free", m, PRE_INJECTION, ()) for m in measurements)
    ref = measurements[ref_index]
    assumptions = _label_free_assumptions(ref, injected_cells, n_samples)
    if ref.volume_mm3 < min_graft_volume_mm3:
        reason = (f"graft not found at the first post-injection timepoint (day "
                  f"{ref.days_post_transplant:g}: {ref.volume_mm3:.3g} mm3 < "
                  f"{min_graft_volume_mm3:g} mm3), so there is no volume to compare against")
        return tuple(_unquantifiable("label_free", m, PRE_INJECTION if m.days_post_transplant < 0
                                     else reason, assumptions) for m in measurements)
    estimates = []
    for m in measurements:
        if m.days_post_transplant < 0:
            estimates.append(_unquantifiable("label_free", m, PRE_INJECTION, assumptions))
            continue
        if m is ref:
            estimates.append(_fraction_estimate("label_free", m, (1.0, 1.0, 1.0), injected_cells,
                                                assumptions, None, min_graft_volume_mm3,
                                                "reference timepoint: fraction 1 by definition"))
            continue
        fraction = ratio_interval(_volume(m), _volume(ref), rng, confidence, n_samples,
                                  max(min_graft_volume_mm3, 1e-9))
        limit = (None if m.volume_mm3 >= min_graft_volume_mm3
                 else max(fraction[2], min_graft_volume_mm3 / ref.volume_mm3))
        estimates.append(_fraction_estimate("label_free", m, fraction, injected_cells,
                                            assumptions, limit, min_graft_volume_mm3))
    return tuple(estimates)


def _fraction_estimate(method: str, m: GraftMeasurement, fraction: tuple[float, float, float],
                       injected_cells: float | None, assumptions: tuple[str, ...],
                       below_limit: float | None, min_volume: float,
                       reason: str = "") -> CellEstimate:
    """Turn a (value, low, high) fraction into cells, or a below-detection upper bound."""
    base = CellEstimate(method, None, None, None, "ok", reason, assumptions, m.session_id,
                        m.days_post_transplant, *fraction)
    if below_limit is not None:
        bound = None if injected_cells is None else injected_cells * below_limit
        return replace(base, status="below_detection", ci_low=None if bound is None else 0.0,
                       ci_high=bound, surviving_fraction=None, surviving_fraction_ci_low=0.0,
                       surviving_fraction_ci_high=below_limit,
                       reason=f"graft below the detection limit ({min_volume:g} mm3): surviving "
                              f"fraction at most {below_limit:.3g}")
    if injected_cells is None:
        return replace(base, status="not_quantifiable",
                       reason="injected cell count unknown: surviving fraction only")
    return replace(base, value=injected_cells * fraction[0], ci_low=injected_cells * fraction[1],
                   ci_high=injected_cells * fraction[2])


def _unquantifiable(method: str, m: Any, reason: str, assumptions: tuple[str, ...]) -> CellEstimate:
    return CellEstimate(method, None, None, None, "not_quantifiable", reason, assumptions,
                        getattr(m, "session_id", None), getattr(m, "days_post_transplant", None))


def _label_free_assumptions(ref: GraftMeasurement, injected_cells: float | None,
                            n_samples: int) -> tuple[str, ...]:
    injected = "unknown" if injected_cells is None else f"{injected_cells:.4g}"
    return (
        f"surviving fraction = graft volume / graft volume at the first post-injection "
        f"timepoint (day {ref.days_post_transplant:g}, {ref.volume_mm3:.3g} mm3)",
        f"all injected cells ({injected}) were alive in the graft at that first scan; cells "
        "that died before it are not counted as lost",
        "living cells are packed at the same density at every timepoint (graft volume is "
        "proportional to living cells)",
        "graft volumes are partial-volume estimates; the interval propagates both volumes' "
        f"intervals by Monte-Carlo ({n_samples} draws)",
    )


# --- SPIO: iron from delta-R2* ------------------------------------------------------------

@dataclass(frozen=True)
class IronMeasurement:
    """Iron (ug) in a region from delta-R2* against the baseline, with its noise."""

    iron_ug: float
    ci_low_ug: float
    ci_high_ug: float
    sd_ug: float
    detection_limit_ug: float
    mean_delta_r2star_per_s: float
    region_volume_mm3: float

    def to_dict(self) -> dict[str, Any]:
        return json_safe(self)


def iron_mass(r2star: Volume, baseline_r2star: Volume, region: Volume,
              relaxivity_per_s_per_ug_per_mm3: float, noise_region: LabelVolume | None = None,
              confidence: float = 0.95, noise_sd_per_s: float | None = None) -> IronMeasurement:
    """Iron = sum over the region of w * delta-R2* / relaxivity * voxel volume.

    ``region`` (a mask, or weights in [0, 1]) must cover the blooming halo around the graft
    (see ``quantify.grow_region``). The per-voxel delta-R2* noise is the robust spread (1.4826 x MAD)
    of delta-R2* in ``noise_region`` (e.g. normal cord away from the graft; default: every
    finite voxel outside the region), unless ``noise_sd_per_s`` gives it; voxels are taken as
    independent, so the iron sd is noise * sqrt(sum w^2) * voxel volume / relaxivity;
    detection limit = 3 sd.
    """
    require_same_space(r2star, baseline_r2star)
    require_same_space(r2star, region)
    delta = np.asarray(r2star.array, np.float64) - np.asarray(baseline_r2star.array, np.float64)
    weights = _region_weights(region, "SPIO region")
    if delta.shape != weights.shape:
        raise AnalysisError(f"R2* maps have shape {delta.shape}; expected 3-D maps like the region")
    inside = weights > 0
    if not np.all(np.isfinite(delta[inside])):
        raise AnalysisError(f"{int((~np.isfinite(delta[inside])).sum())} voxels inside the region "
                            "have a non-finite R2*; expected a fitted R2* everywhere in the region "
                            "(cap the fit, e.g. at 1000 /s)")
    vv = r2star.voxel_volume_mm3
    if noise_sd_per_s is not None and not (np.isfinite(noise_sd_per_s) and noise_sd_per_s >= 0):
        raise AnalysisError(f"noise_sd_per_s={noise_sd_per_s!r}; expected a non-negative number")
    noise_sd = (_robust_sd(delta, inside, noise_region) if noise_sd_per_s is None
                else float(noise_sd_per_s))
    scale = vv / relaxivity_per_s_per_ug_per_mm3
    iron = float((weights[inside] * delta[inside]).sum() * scale)
    sd = float(noise_sd * np.sqrt((weights ** 2).sum()) * scale)
    half = two_sided_z(confidence) * sd
    region_mm3 = float(weights.sum() * vv)
    mean_delta = float(np.average(delta[inside], weights=weights[inside])) if inside.any() else 0.0
    return IronMeasurement(iron, max(0.0, iron - half), max(0.0, iron + half), sd,
                           DETECTION_SIGMAS * sd, mean_delta, region_mm3)


def _robust_sd(delta: np.ndarray, inside: np.ndarray, noise_region: LabelVolume | None) -> float:
    outside = ~inside & np.isfinite(delta)
    if noise_region is not None:
        outside &= np.asarray(noise_region.array) > 0
    values = delta[outside]
    if values.size < 10:
        raise AnalysisError(f"only {values.size} voxels to estimate the delta-R2* noise from; "
                            "expected at least 10 (pass a noise_region of normal cord)")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _region_weights(region: Volume, what: str) -> np.ndarray:
    if isinstance(region, LabelVolume):
        return (np.asarray(region.array) > 0).astype(np.float64)
    return checked_probability(region.array, what)


def spio(iron: Sequence[IronMeasurement], measurements: Sequence[GraftMeasurement],
         iron_pg_per_cell: float, injected_cells: float | None, rng: np.random.Generator,
         confidence: float = 0.95, min_graft_volume_mm3: float = 1.0,
         n_samples: int = 2000) -> tuple[CellEstimate, ...]:
    """Cells from iron per timepoint; not quantifiable once iron stays while the graft shrinks."""
    if len(iron) != len(measurements):
        raise AnalysisError(f"{len(iron)} iron measurements for {len(measurements)} graft "
                            "measurements; expected one of each per timepoint, in the same order")
    volumes = label_free(measurements, None, rng, confidence, min_graft_volume_mm3, n_samples)
    days = [m.days_post_transplant for m in measurements]
    ref = first_post_injection(days)
    assumptions = _spio_assumptions(iron_pg_per_cell)
    estimates: dict[int, CellEstimate] = {}
    lingering = ""
    for i in sorted(range(len(days)), key=lambda k: days[k]):
        m, fe = measurements[i], iron[i]
        if days[i] < 0 or fe.region_volume_mm3 == 0:
            estimates[i] = _unquantifiable("spio", m, PRE_INJECTION if days[i] < 0 else
                                           "empty region: no iron to integrate", assumptions)
            continue
        lingering = lingering or _iron_outlives_graft(fe, iron[ref], volumes[i], m, rng,
                                                      confidence, n_samples, i != ref)
        estimates[i] = _iron_estimate(fe, m, iron_pg_per_cell, injected_cells, assumptions,
                                      lingering)
    return tuple(estimates[i] for i in range(len(days)))


def _iron_outlives_graft(fe: IronMeasurement, ref: IronMeasurement, volume: CellEstimate,
                         m: GraftMeasurement, rng: np.random.Generator, confidence: float,
                         n_samples: int, compare: bool) -> str:
    """A reason when iron stays beyond the volume's interval; '' when they agree or cannot say."""
    volume_high = volume.surviving_fraction_ci_high
    if not compare or volume_high is None or ref.region_volume_mm3 == 0 \
            or ref.iron_ug < ref.detection_limit_ug or fe.iron_ug < fe.detection_limit_ug:
        return ""
    value, low, high = ratio_interval(Interval(fe.iron_ug, fe.ci_low_ug, fe.ci_high_ug),
                                      Interval(ref.iron_ug, ref.ci_low_ug, ref.ci_high_ug),
                                      rng, confidence, n_samples, max(ref.detection_limit_ug, 1e-12))
    if low <= volume_high:
        return ""
    return (f"{LINGERING_IRON} from day {m.days_post_transplant:g}: iron is "
            f"{value:.0%} of the first post-injection iron (interval {low:.0%}-{high:.0%}) while "
            f"the graft volume is at most {volume_high:.0%} of its first value; iron from dead "
            "cells lingers in macrophages, so iron no longer counts living cells")


def _iron_estimate(fe: IronMeasurement, m: GraftMeasurement, iron_pg_per_cell: float,
                   injected_cells: float | None, assumptions: tuple[str, ...],
                   lingering: str) -> CellEstimate:
    per_ug = PICOGRAMS_PER_MICROGRAM / iron_pg_per_cell
    base = CellEstimate("spio", None, None, None, "ok", "", assumptions, m.session_id,
                        m.days_post_transplant)
    if fe.iron_ug < fe.detection_limit_ug:
        bound = fe.detection_limit_ug * per_ug
        return replace(base, status="below_detection", ci_low=0.0, ci_high=bound,
                       reason=f"iron {fe.iron_ug:.3g} ug is below the detection limit "
                              f"{fe.detection_limit_ug:.3g} ug (fewer than {bound:.3g} cells)")
    if lingering:
        return replace(base, status="not_quantifiable", reason=lingering)
    cells = (fe.iron_ug * per_ug, fe.ci_low_ug * per_ug, fe.ci_high_ug * per_ug)
    fractions = (None,) * 3 if injected_cells is None else tuple(c / injected_cells for c in cells)
    return replace(base, value=cells[0], ci_low=cells[1], ci_high=cells[2],
                   surviving_fraction=fractions[0], surviving_fraction_ci_low=fractions[1],
                   surviving_fraction_ci_high=fractions[2])


def _spio_assumptions(iron_pg_per_cell: float) -> tuple[str, ...]:
    return (
        "WARNING: iron outlives the cells: iron of dead cells lingers in macrophages for "
        "months, so a dark spot is not proof of living cells",
        f"every labelled cell holds {iron_pg_per_cell:g} pg of iron; dividing cells dilute the "
        "label, so a growing graft is undercounted",
        "iron = delta-R2* against the registered pre-injection baseline / R2* relaxivity, summed "
        "over a region that covers the blooming halo",
        "when the iron stays while the graft volume falls beyond both uncertainties, the iron "
        "count is reported as not quantifiable from then on",
    )


# --- 19F: cells from the fluorine signal ----------------------------------------------------

def fluorine(f19: Volume, graft_region: Volume, reference_region: LabelVolume,
             reference_atoms: float | None, fluorine_atoms_per_cell: float, noise_sigma: float,
             noise: str = "rician", confidence: float = 0.95, injected_cells: float | None = None,
             session_id: str | None = None,
             days_post_transplant: float | None = None) -> CellEstimate:
    """cells = (S_graft / S_ref) x reference atoms / atoms per cell, on the 19F grid.

    S is the noise-floor-corrected signal summed over a region. The graft region must hold
    all the graft's atoms: weight 1 on every 19F voxel that touches the graft (grow the graft
    mask by one 19F voxel for the point spread), not the proton partial-volume probability.
    Summed-noise sd = sigma * sqrt(sum w^2); detection limit = 3 sd; interval by the delta
    method on the ratio of the two sums.
    """
    require_same_space(f19, graft_region)
    require_same_space(f19, reference_region)
    where = {"session_id": session_id, "days_post_transplant": days_post_transplant}
    assumptions = _fluorine_assumptions(reference_atoms, fluorine_atoms_per_cell, noise_sigma, noise)
    base = CellEstimate("19f", None, None, None, "not_quantifiable", "", assumptions, **where)
    if days_post_transplant is not None and days_post_transplant < 0:
        return replace(base, reason=PRE_INJECTION)
    if not np.isfinite(noise_sigma) or noise_sigma <= 0:
        raise AnalysisError(f"noise sigma {noise_sigma!r}; expected a positive number estimated "
                            "from a signal-free background (quantify.background_noise_sigma)")
    corrected = noise_floor_corrected(f19.array, noise_sigma, noise)
    graft_sum, graft_sd = _region_sum(corrected, _region_weights(graft_region, "19F graft region"),
                                      noise_sigma)
    ref_sum, ref_sd = _region_sum(corrected, _region_weights(reference_region, "reference"),
                                  noise_sigma)
    if reference_atoms is None:
        return replace(base, reason="reference atoms unknown: set reference_atoms in the "
                                    "config or the 19F image's sidecar")
    if ref_sum < DETECTION_SIGMAS * ref_sd or ref_sd == 0:
        return replace(base, reason=f"reference tube signal {ref_sum:.3g} is not above 3 noise "
                                    f"sd ({ref_sd:.3g}): check the reference tube mask")
    per_signal = reference_atoms / fluorine_atoms_per_cell / ref_sum
    if graft_sum < DETECTION_SIGMAS * graft_sd or graft_sd == 0:
        bound = DETECTION_SIGMAS * graft_sd * per_signal
        return replace(base, status="below_detection", ci_low=0.0, ci_high=bound,
                       reason=f"graft 19F signal below the detection limit of 3 noise sd "
                              f"(fewer than {bound:.3g} cells)")
    cells = graft_sum * per_signal
    relative_sd = np.hypot(graft_sd / graft_sum, ref_sd / ref_sum)
    half = two_sided_z(confidence) * relative_sd * cells
    values = (cells, max(0.0, cells - half), cells + half)
    fractions = (None,) * 3 if injected_cells is None else tuple(v / injected_cells for v in values)
    return replace(base, status="ok", value=values[0], ci_low=values[1], ci_high=values[2],
                   surviving_fraction=fractions[0], surviving_fraction_ci_low=fractions[1],
                   surviving_fraction_ci_high=fractions[2])


def _region_sum(corrected: np.ndarray, weights: np.ndarray, sigma: float) -> tuple[float, float]:
    if weights.shape != corrected.shape[:3] or corrected.ndim != 3:
        raise AnalysisError(f"19F image has shape {corrected.shape}; expected a 3-D image on "
                            f"the region's grid {weights.shape}")
    return float((weights * corrected).sum()), float(sigma * np.sqrt((weights ** 2).sum()))


def _fluorine_assumptions(reference_atoms: float | None, atoms_per_cell: float, sigma: float,
                          noise: str) -> tuple[str, ...]:
    ref = "unknown" if reference_atoms is None else f"{reference_atoms:.4g}"
    return (
        f"19F signal is proportional to fluorine atoms; the reference tube holds {ref} atoms",
        f"every labelled cell holds {atoms_per_cell:.4g} fluorine atoms; dividing cells dilute "
        "the label and dead cells' fluorine can linger in macrophages",
        f"{noise} noise with sigma {sigma:.4g} from a signal-free background; the noise floor "
        "is subtracted voxel by voxel before summing",
        "the graft region holds every 19F voxel the graft's atoms reach",
    )
