"""Calibrated graft-volume intervals: the model's own interval scaled to the coverage it has.

The interval ``quantify_timepoint`` gives (the spread of test-time augmentation, or the
Bernoulli sum, plus partial-volume discretisation) measures how much the model's answer
wobbles, not how far it lies from the truth. On held-out phantoms a "95 %" interval of
that kind held the true graft volume far less often than 95 % of the time, because the
segmentation's own error (a graft missed or over-grown by half) is much larger than its
wobble. A calibration turns it into an interval that does hold the truth as often as it
claims, on cases like the ones it was measured on.

Method: split conformal prediction with normalised scores, one side at a time. On
calibration subjects (phantom seeds 500000+, apart from the training seeds 1000+, the
validation seeds 900000+ and the evaluation seeds 700000+), every post-injection timepoint
of a grafted subject gives, with h_low and h_high the two half-widths of the model's own
interval and ``floor_mm3`` a fixed floor (so an estimate of 0 with no spread still gets an
interval),

    upper score = max(0, truth - estimate) / (h_high + floor)
    lower score = max(0, estimate - truth) / (h_low + floor)

Each side's scale is the ceil((n + 1) * (1 + c) / 2)-th smallest of its n scores (c the
confidence, 0.95), so each side misses the truth with probability at most (1 - c) / 2 and
the interval

    [max(0, estimate - scale_low * (h_low + floor)), estimate + scale_high * (h_high + floor)]

holds it with probability at least c, over future cases exchangeable with the calibration
ones (marginally: not for every single case). A model that misses volume mostly in one
direction gets a lopsided interval. Resolutions differ so much (a 3 mm slice hides a small
graft) that each resolution class (``resolution_class``) has its own scales.

Only the reported interval is calibrated (the ``graft_volume_ci_*`` columns, the surviving
fraction's interval made from them, the "larger than injected" flag). Growth between two
timepoints of one subject, and the SPIO check that iron stays while the graft volume falls,
are called against the model's own interval
(``TimepointMetrics.precision_measurement``, kept as ``graft_volume_model_ci_*``, columns
of timepoints.tsv too): a model's error that is the same at every timepoint does not make a
graft look as if it grew, and the tumour signal must not be drowned by it (on held-out
phantoms the model's error is not the same at every timepoint, so this flags growth in some
shrinking grafts; ``flags.growth_flags`` says so in the message when the calibrated error
covers the change).

The scales live in the segmenter's model card (validation ->
``volume_interval_calibration`` -> graft model name or "none" -> class), written by
``graftwatch evaluate-survival --write-calibration``. Where a card holds none for the
models and resolution in use, the interval stays the model's own and the result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from imaging.errors import AnalysisError, ModelError
from segmentation.quantify import TimepointMetrics

CARD_KEY = "volume_interval_calibration"
CLINICAL_SLICE_MM = 2.5          # slices (largest voxel side) at least this thick: "clinical"
DEFAULT_FLOOR_MM3 = 1.0          # the default detection limit (AnalysisConfig.min_graft_volume_mm3)
CALIBRATION_SEED = 500_000


def resolution_class(spacing_mm: Sequence[float]) -> str:
    """"clinical" when the largest voxel side is >= CLINICAL_SLICE_MM, else "research"."""
    return "clinical" if max(float(s) for s in spacing_mm) >= CLINICAL_SLICE_MM else "research"


@dataclass(frozen=True)
class IntervalCalibration:
    """Scales of one resolution class for one (segmenter, graft model) pair."""

    resolution: str
    scale_low: float
    scale_high: float
    floor_mm3: float
    n_timepoints: int
    confidence: float
    source: str = ""            # how it was measured (command, seeds, commit)
    tta: bool = False           # whether the model's own intervals came from test-time augmentation

    def __post_init__(self) -> None:
        for name in ("scale_low", "scale_high", "floor_mm3"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ModelError(f"interval calibration ({self.resolution}): {name}={value!r}; "
                                 "expected a finite number >= 0")

    def interval(self, value: float, low: float, high: float) -> tuple[float, float]:
        """The calibrated (low, high) around ``value`` from the model's own (low, high)."""
        return (max(0.0, value - self.scale_low * (value - low + self.floor_mm3)),
                value + self.scale_high * (high - value + self.floor_mm3))

    def describe(self) -> str:
        return (f"calibrated on {self.n_timepoints} held-out {self.resolution} phantom "
                f"timepoints (split conformal, {100 * self.confidence:g} %): model interval "
                f"half-widths + {self.floor_mm3:g} mm3, scaled x{self.scale_low:.3g} below and "
                f"x{self.scale_high:.3g} above")

    def to_dict(self) -> dict[str, Any]:
        return {"scale_low": self.scale_low, "scale_high": self.scale_high,
                "floor_mm3": self.floor_mm3, "n_timepoints": self.n_timepoints,
                "confidence": self.confidence, "tta": self.tta, "source": self.source}

    @classmethod
    def from_dict(cls, resolution: str, data: Mapping[str, Any]) -> "IntervalCalibration":
        try:
            return cls(resolution, float(data["scale_low"]), float(data["scale_high"]),
                       float(data["floor_mm3"]), int(data["n_timepoints"]),
                       float(data["confidence"]), str(data.get("source", "")),
                       bool(data.get("tta", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"interval calibration ({resolution}) {dict(data)!r} is not "
                             f"readable ({exc}); re-run `graftwatch evaluate-survival "
                             "--write-calibration`") from exc


def conformal_scale(scores: Sequence[float], level: float) -> float:
    """The ceil((n + 1) * level)-th smallest score (split conformal); AnalysisError when n is
    too small for that rank to exist."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    rank = math.ceil((ordered.size + 1) * level)
    if rank > ordered.size:
        raise AnalysisError(f"{ordered.size} calibration timepoints are too few for a "
                            f"{100 * level:g} % one-sided bound; need at least "
                            f"{math.ceil(level / (1 - level))}")
    return float(ordered[rank - 1])


def fit_calibration(resolution: str, estimates: Sequence[float], lows: Sequence[float],
                    highs: Sequence[float], truths: Sequence[float], *, confidence: float = 0.95,
                    floor_mm3: float = DEFAULT_FLOOR_MM3, source: str = "",
                    tta: bool = False) -> IntervalCalibration:
    """Scales from calibration timepoints (the model's own intervals and the true volumes)."""
    est, low, high, truth = (np.asarray(a, dtype=np.float64) for a in (estimates, lows, highs,
                                                                         truths))
    if not (est.shape == low.shape == high.shape == truth.shape) or est.ndim != 1:
        raise AnalysisError("estimates, lows, highs and truths must be 1-D and of one length")
    if np.any(low > est) or np.any(high < est):
        raise AnalysisError("every interval must hold its estimate (low <= estimate <= high)")
    level = (1.0 + confidence) / 2.0
    above = np.maximum(0.0, truth - est) / (high - est + floor_mm3)
    below = np.maximum(0.0, est - truth) / (est - low + floor_mm3)
    return IntervalCalibration(resolution, conformal_scale(below, level),
                               conformal_scale(above, level), float(floor_mm3), int(est.size),
                               float(confidence), source, tta)


def card_calibrations(validation: Mapping[str, Any], graft_model: str | None
                      ) -> dict[str, IntervalCalibration]:
    """The calibrations (by resolution class) a segmenter card holds for a graft model."""
    entry = dict(validation.get(CARD_KEY, {})).get(graft_model or "none", {})
    return {resolution: IntervalCalibration.from_dict(resolution, data)
            for resolution, data in dict(entry).items()}


def calibrated(metrics: TimepointMetrics, calibrations: Mapping[str, IntervalCalibration],
               spacing_mm: Sequence[float], confidence: float, tta: bool = False
               ) -> tuple[TimepointMetrics, str]:
    """``metrics`` with the calibrated graft-volume interval, and a note of what was done
    (the model's own interval kept, and said so, where no calibration applies: none for the
    resolution, another confidence, or intervals made with / without test-time augmentation
    when the calibration's were not)."""
    resolution = resolution_class(spacing_mm)
    calibration = calibrations.get(resolution)
    if calibration is None:
        return metrics, (f"graft volume interval not calibrated for {resolution} resolution: "
                         "the model's own spread only, which holds the truth less often than "
                         "its level says")
    if not math.isclose(calibration.confidence, confidence):
        return metrics, (f"graft volume interval not calibrated: the calibration is for "
                         f"{100 * calibration.confidence:g} %, the analysis asks "
                         f"{100 * confidence:g} %")
    if calibration.tta != tta:
        made = "with" if calibration.tta else "without"
        return metrics, ("graft volume interval not calibrated: the calibration was measured "
                         f"on intervals made {made} test-time augmentation")
    low, high = calibration.interval(metrics.graft_volume_mm3, metrics.graft_volume_ci_low_mm3,
                                     metrics.graft_volume_ci_high_mm3)
    own_low, own_high = metrics.model_interval()
    return (replace(metrics, graft_volume_ci_low_mm3=low, graft_volume_ci_high_mm3=high,
                    graft_volume_model_ci_low_mm3=own_low, graft_volume_model_ci_high_mm3=own_high,
                    interval_method=f"{metrics.interval_method}; {calibration.describe()}"),
            f"graft volume interval {calibration.describe()}")
