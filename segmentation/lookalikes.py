"""Telling graft from look-alikes: what was abnormal before the injection is not graft.

The injured cord already holds things a graft can be mistaken for: hemorrhage and
hemosiderin (dark, persist for months) and cysts (bright, sharp borders). On the
pre-injection baseline, registered to the timepoint, those regions are found inside the
baseline lesion from the intensity relative to normal cord (``baseline_abnormality``), and a
later timepoint's graft probability is reduced where they were and still are:
p_graft * (1 - p_abnormal) (``exclude_lookalikes``). "Still are" (``persisting``): the
registered baseline map is multiplied by the same look-alike ramps on the timepoint's own
image (normalised by its own normal cord). Cells injected into the epicentre can fill what
was a cyst or abutted old blood; such a voxel now shows graft signal (1.25-1.45), not the
cyst's (2.0-2.4) or the blood's (0.3-0.6), and its graft is new, not a look-alike. Measured
(`graftwatch evaluate-survival`, seg-v4 + graft-v7, 12 research subjects): the baseline map
alone removed 9.4 of a 10.8 mm3 day-1 graft (true 11.2) that filled a cyst present at the
baseline; a cyst or bleed that persists still looks like one and is still removed.

Edema is deliberately NOT excluded, although it is part of the lesion label: the cells are
injected into the epicentre, inside the edema, and edema shrinks within weeks, so removing it
would remove the graft. Only the persistent look-alikes the baseline can vouch for are taken out.

Intensity ramps (T2w, normal cord = 1, the phantom contract): hemorrhage/hemosiderin lies at
0.3-0.6 and the graft at 1.25-1.45, so "dark" rises from 0 at 0.75 to 1 at 0.6; cysts lie at
2.0-2.4 and edema at 1.5-1.9, so "bright" rises from 0 at 1.85 to 1 at 2.0. On T2*w images
hemorrhage is darker still, so the same ramps hold.

Without a baseline nothing is excluded and the result says so. Look-alikes can only add
false graft, never hide true graft, so the graft volume interval is widened on its LOW side
only, by ``NO_BASELINE_WIDENING`` = 2: the distance from the estimate to the lower bound is
doubled. The value is a judgement, not a calibration: a hemorrhage (1-4 mm) or a cyst (2-6 mm)
touching a 5-50 mm3 graft can be of the graft's own order, so the error it adds can match the
one the interval already holds. Phantoms with look-alikes and no baseline are where to refine it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from imaging.errors import AnalysisError
from imaging.volume import LabelVolume, Volume, require_same_space
from segmentation.quantify import (CORD, LESION, TimepointMetrics, checked_labels,
                                   checked_probability, floored)
from segmentation.records import json_safe

DARK_FULL, DARK_NONE = 0.60, 0.75
BRIGHT_NONE, BRIGHT_FULL = 1.85, 2.00
NO_BASELINE_WIDENING = 2.0
NO_BASELINE_NOTE = "no pre-injection baseline: look-alikes not excluded"


@dataclass(frozen=True, eq=False)
class LookalikeExclusion:
    """A graft probability map with pre-existing look-alikes removed, and how much was removed."""

    graft_probability: Volume
    graft_probability_samples: np.ndarray | None
    baseline_available: bool
    removed_volume_mm3: float
    removed_fraction: float
    interval_widening_factor: float
    note: str

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"baseline_available": self.baseline_available,
                          "removed_volume_mm3": self.removed_volume_mm3,
                          "removed_fraction": self.removed_fraction,
                          "interval_widening_factor": self.interval_widening_factor,
                          "note": self.note})

    def widened(self, metrics: TimepointMetrics) -> TimepointMetrics:
        """``metrics`` with the graft interval's low side (the reported and the model's own)
        widened by the factor (1: unchanged)."""
        value = metrics.graft_volume_mm3

        def wider(low: float) -> float:
            return max(0.0, value - self.interval_widening_factor * (value - low))
        return replace(metrics, graft_volume_ci_low_mm3=wider(metrics.graft_volume_ci_low_mm3),
                       graft_volume_model_ci_low_mm3=wider(metrics.model_interval()[0]))


def _lookalike_signal(image: Volume, labels: LabelVolume,
                      which: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, soft 0-1 map of hemorrhage-dark or cyst-bright signal) of a 3-D image,
    the intensity taken relative to its normal cord (label 1)."""
    require_same_space(image, labels)
    codes = checked_labels(labels)
    values = np.asarray(image.array, dtype=np.float64)
    if values.ndim != 3:
        raise AnalysisError(f"{which} image has shape {values.shape}; expected a 3-D image "
                            "(pick one echo of a multi-echo series)")
    normal = values[(codes == CORD) & np.isfinite(values)]
    reference = float(np.median(normal)) if normal.size else 0.0
    if reference <= 0:
        raise AnalysisError(f"the {which} has no normal cord (label 1) with positive intensity "
                            f"to normalise against; expected a {which} label map with cord")
    ratio = np.nan_to_num(values / reference, nan=1.0, posinf=1.0, neginf=1.0)
    dark = np.clip((DARK_NONE - ratio) / (DARK_NONE - DARK_FULL), 0.0, 1.0)
    bright = np.clip((ratio - BRIGHT_NONE) / (BRIGHT_FULL - BRIGHT_NONE), 0.0, 1.0)
    return codes, np.maximum(dark, bright)


def baseline_abnormality(baseline_image: Volume, baseline_labels: LabelVolume) -> Volume:
    """Soft map (0-1) of hemorrhage/hemosiderin and cyst inside the baseline's lesion label."""
    labels, signal = _lookalike_signal(baseline_image, baseline_labels, "baseline")
    abnormal = np.where(labels == LESION, signal, 0.0)
    return Volume(abnormal, baseline_image.affine, {"description": "baseline look-alikes"})


def persisting(baseline_abnormal: Volume, image: Volume, labels: LabelVolume) -> Volume:
    """The registered baseline look-alike map where the timepoint (``image``, ``labels``: its
    own segmentation) still shows look-alike signal: a voxel the graft now fills is not one."""
    require_same_space(baseline_abnormal, image)
    _, signal = _lookalike_signal(image, labels, "timepoint")
    before = checked_probability(baseline_abnormal.array, "baseline abnormality")
    return baseline_abnormal.with_array(before * signal)


def union_probability(maps: Sequence[Volume]) -> Volume:
    """Probability that any of several independent abnormality maps holds: 1 - prod(1 - p)."""
    if not maps:
        raise AnalysisError("no abnormality maps given; expected at least one")
    keep = np.ones(maps[0].spatial_shape)
    for index, item in enumerate(maps):
        require_same_space(maps[0], item)
        keep *= 1.0 - checked_probability(item.array, f"abnormality map {index}")
    return Volume(1.0 - keep, maps[0].affine, {"description": "baseline look-alikes"})


def exclude_lookalikes(graft_probability: Volume, baseline_abnormal: Volume | None,
                       graft_probability_samples: np.ndarray | None = None) -> LookalikeExclusion:
    """Remove what the registered baseline already showed from the graft probability."""
    prob = checked_probability(graft_probability.array, "graft probability")
    vv = graft_probability.voxel_volume_mm3
    if baseline_abnormal is None:
        return LookalikeExclusion(graft_probability, graft_probability_samples, False, 0.0, 0.0,
                                  NO_BASELINE_WIDENING, NO_BASELINE_NOTE)
    require_same_space(graft_probability, baseline_abnormal)
    keep = 1.0 - checked_probability(baseline_abnormal.array, "baseline abnormality")
    corrected = prob * keep
    samples = None if graft_probability_samples is None else graft_probability_samples * keep
    before = float(floored(prob).sum() * vv)
    after = float(floored(corrected).sum() * vv)
    removed = max(0.0, before - after)
    return LookalikeExclusion(
        graft_probability.with_array(corrected), samples, True, removed,
        removed / before if before > 0 else 0.0, 1.0,
        f"pre-injection baseline used: {removed:.3g} mm3 of graft probability removed where "
        "hemorrhage, hemosiderin or cyst was already present")
