"""Safety and quality flags, each in plain words, each firing exactly when its rule says.

- graft_growth: the graft is larger than its smallest earlier post-injection volume (the
  nadir) beyond measurement error (``survival.volume_change``, with scan-rescan repeatability
  when known) and by more than a set fraction. Comparing with the nadir, not only the previous
  scan, catches slow growth spread over several scans. A nadir below the detection volume
  ("not found") may hold up to that volume, so its upper bound is at least it. Critical at
  or after the configured day (the tumour signal); a warning before it (swelling after
  surgery can grow a graft's apparent volume for days). Growth is called against the model's
  own (precision) intervals, so that it stays sensitive; where calibrated intervals exist
  (``reported``) the message also says whether the change is beyond the error the model
  makes on held-out phantoms, or within it (then it may be a segmentation difference: on
  held-out phantoms most growth flags of shrinking grafts are of that kind).
- graft_larger_than_injected: the graft's interval lies wholly above the volume the injected
  cells would fill at an assumed packing density. Needs the injected count; the packing
  density is an assumption the message states. Critical from the same day as growth.
- graft_not_found: no graft (below the detection volume) where one was found before.
- registration_failed: registration residual above the limit (or not finite). Critical.
- low_image_quality: SNR estimate below the limit. Warning.
- no_baseline: no pre-injection scan, so look-alikes were not excluded. Warning.
- lingering_iron: iron stays while the graft shrinks (SPIO counts not quantifiable). Warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from imaging.errors import AnalysisError
from segmentation.cells import LINGERING_IRON, CellEstimate
from segmentation.lookalikes import NO_BASELINE_NOTE
from segmentation.quantify import GraftMeasurement
from segmentation.records import json_safe
from segmentation.survival import post_injection, volume_change

SEVERITIES = ("warning", "critical")


@dataclass(frozen=True)
class Flag:
    """One finding a reader must see: a code, how serious, where, and what it means."""

    code: str
    severity: str
    timepoint: str | None
    message: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise AnalysisError(f"flag severity {self.severity!r}; expected one of {SEVERITIES}")

    def to_dict(self) -> dict[str, Any]:
        return json_safe(self)


def flags_cell(flags: Sequence[Flag], session_id: str) -> str:
    """The table's ``flags`` column for one timepoint: codes joined by ';' ('' for none)."""
    return ";".join(f.code for f in flags if f.timepoint == session_id)


def _severity(days: float, critical_after_days: float) -> str:
    return "critical" if days >= critical_after_days else "warning"


def growth_flags(measurements: Sequence[GraftMeasurement], confidence: float = 0.95,
                 repeatability_cv: float | None = None, threshold_fraction: float = 0.10,
                 critical_after_days: float = 60.0, min_graft_volume_mm3: float = 1.0,
                 reported: Sequence[GraftMeasurement] | None = None) -> tuple[Flag, ...]:
    """graft_growth at every post-injection timepoint that grew beyond error from the nadir.

    ``measurements`` carry the model's own intervals; ``reported`` (same sessions, any
    order) the calibrated ones, used only for the message."""
    ordered = post_injection(measurements)
    calibrated = {m.session_id: m for m in reported or ()}
    flags = []
    for k in range(1, len(ordered)):
        nadir = min(ordered[:k], key=lambda m: m.volume_mm3)
        now = ordered[k]
        change = volume_change(_detection_bounded(nadir, min_graft_volume_mm3), now,
                               confidence, repeatability_cv)
        floor = threshold_fraction * max(nadir.volume_mm3, min_graft_volume_mm3)
        if change.direction != "increase" or change.change_mm3 <= floor:
            continue
        flags.append(Flag(
            "graft_growth", _severity(now.days_post_transplant, critical_after_days),
            now.session_id,
            f"the graft grew from {nadir.volume_mm3:.3g} mm3 (day "
            f"{nadir.days_post_transplant:g}) to {now.volume_mm3:.3g} mm3 (day "
            f"{now.days_post_transplant:g}), by {change.change_mm3:.3g} mm3 (interval "
            f"{change.change_ci_low_mm3:.3g} to {change.change_ci_high_mm3:.3g}), more than "
            "measurement error allows; a growing graft is the tumour-formation safety signal"
            + _calibrated_note(calibrated, nadir, now, confidence, repeatability_cv,
                               min_graft_volume_mm3)))
    return tuple(flags)


def _detection_bounded(m: GraftMeasurement, min_graft_volume_mm3: float) -> GraftMeasurement:
    """A graft not found (below the detection volume) may be up to that volume."""
    if m.volume_mm3 >= min_graft_volume_mm3 or m.ci_high_mm3 >= min_graft_volume_mm3:
        return m
    return replace(m, ci_high_mm3=min_graft_volume_mm3)


def _calibrated_note(calibrated, nadir: GraftMeasurement, now: GraftMeasurement,
                     confidence: float, repeatability_cv: float | None,
                     min_graft_volume_mm3: float) -> str:
    before, after = calibrated.get(nadir.session_id), calibrated.get(now.session_id)
    if before is None or after is None or (before, after) == (nadir, now):
        return ""
    change = volume_change(_detection_bounded(before, min_graft_volume_mm3), after, confidence,
                           repeatability_cv)
    span = f"{change.change_ci_low_mm3:.3g} to {change.change_ci_high_mm3:.3g} mm3"
    if change.direction == "increase":
        return f"; it is also beyond the error this model makes on held-out phantoms ({span})"
    return (f"; but it is within the error this model makes on held-out phantoms ({span}): it "
            "may be a segmentation difference, so review the images before acting on it")


def oversize_flags(measurements: Sequence[GraftMeasurement], injected_cells: float | None,
                   packing_density_cells_per_mm3: float,
                   critical_after_days: float = 60.0) -> tuple[Flag, ...]:
    """graft_larger_than_injected wherever the whole interval exceeds the injected volume."""
    if injected_cells is None:
        return ()
    expected_mm3 = injected_cells / packing_density_cells_per_mm3
    return tuple(
        Flag("graft_larger_than_injected", _severity(m.days_post_transplant, critical_after_days),
             m.session_id,
             f"the graft ({m.volume_mm3:.3g} mm3, interval {m.ci_low_mm3:.3g}-"
             f"{m.ci_high_mm3:.3g}) is larger than the {expected_mm3:.3g} mm3 that "
             f"{injected_cells:.3g} injected cells fill at an ASSUMED packing density of "
             f"{packing_density_cells_per_mm3:.3g} cells/mm3: either the cells multiplied "
             "(tumour signal) or the assumed density does not hold for this graft")
        for m in post_injection(measurements) if m.ci_low_mm3 > expected_mm3)


def lost_graft_flags(measurements: Sequence[GraftMeasurement],
                     min_graft_volume_mm3: float = 1.0) -> tuple[Flag, ...]:
    """graft_not_found at each timepoint without a graft after one where it was found."""
    flags = []
    found_day = None
    for m in post_injection(measurements):
        if m.volume_mm3 >= min_graft_volume_mm3:
            found_day = m.days_post_transplant if found_day is None else found_day
        elif found_day is not None:
            flags.append(Flag(
                "graft_not_found", "warning", m.session_id,
                f"no graft found on day {m.days_post_transplant:g} ({m.volume_mm3:.3g} mm3, "
                f"below {min_graft_volume_mm3:g} mm3) although one was found on day "
                f"{found_day:g}: the graft was lost, or this scan missed it (check its quality "
                "and registration)"))
    return tuple(flags)


def registration_flags(session_id: str, residual_mm: float,
                       max_residual_mm: float) -> tuple[Flag, ...]:
    """registration_failed when the residual is above the limit or not a number."""
    if math.isfinite(residual_mm) and residual_mm <= max_residual_mm:
        return ()
    return (Flag("registration_failed", "critical", session_id,
                 f"registration to the reference scan left a residual of {residual_mm:.3g} mm "
                 f"(limit {max_residual_mm:g} mm): this timepoint's graft may be compared with "
                 "the wrong place; its numbers cannot be trusted until it is re-registered"),)


def image_quality_flags(session_id: str, snr: float, min_snr: float) -> tuple[Flag, ...]:
    """low_image_quality when the SNR estimate is below the limit or not a number."""
    if math.isfinite(snr) and snr >= min_snr:
        return ()
    return (Flag("low_image_quality", "warning", session_id,
                 f"image SNR is about {snr:.3g} (limit {min_snr:g}): noise may hide or mimic "
                 "graft, so this timepoint's graft volume is less certain than its interval says"),)


def no_baseline_flags(baseline_available: bool) -> tuple[Flag, ...]:
    """no_baseline (subject-level, no timepoint) when there is no pre-injection scan."""
    if baseline_available:
        return ()
    return (Flag("no_baseline", "warning", None,
                 f"{NO_BASELINE_NOTE}: hemorrhage, hemosiderin or cysts present before the "
                 "injection may be counted as graft; graft intervals were widened downwards"),)


def lingering_iron_flags(estimates: Sequence[CellEstimate]) -> tuple[Flag, ...]:
    """lingering_iron at each SPIO timepoint made not quantifiable by iron outliving the graft."""
    return tuple(Flag("lingering_iron", "warning", e.session_id,
                      f"{e.reason}; the SPIO cell count is not reported")
                 for e in estimates
                 if e.method == "spio" and e.status == "not_quantifiable"
                 and e.reason.startswith(LINGERING_IRON))
