"""Calibrated graft fractions: the graft model's P(graft) mapped to the graft fraction it means.

The partial-volume graft volume is the sum of per-voxel graft fractions x voxel volume. The
graft models output probabilities that are not fractions: trained with the graft voxels'
cross-entropy weighted x30 (so that a few-voxel graft is not drowned), a voxel a third full
of graft is pushed towards P = 0.9. On held-out phantoms (seg-v4 + graft-v7, seeds 500000+,
12 subjects x 5 post-injection sessions per resolution) voxels with P 0.8-0.9 held a mean
graft fraction of 0.57 on research scans and 0.38 on clinical ones (3-4 mm slices, where
most graft voxels are partly graft), and the sum of P overstated the volume in them by
17 % and 83 %.

Method: reliability calibration, one curve per resolution class (``interval_calibration.
resolution_class``). On the calibration subjects every voxel with P >= PROBABILITY_FLOOR
(``quantify``) gives a pair (P, true graft fraction); the pairs are sorted by P and cut into
``n_bins`` bins of equal count; each bin gives (mean P, mean fraction); pooling adjacent
violators makes the fractions non-decreasing; the curve runs through (0, 0), those points
and (1, the last fraction). ``apply`` interpolates it linearly; voxels under the floor stay 0
(what the uncalibrated volume does too). A monotone map keeps the order of voxels, so the
labels and the graft mask are unchanged; the volumes, their intervals (the interval
calibration is fitted on calibrated volumes) and the written graft map
(``_label-graft_probseg``, the partial-volume fraction) are the calibrated fractions.

The curves live in the segmenter's card (validation -> ``graft_probability_calibration`` ->
graft model name or "none" -> class), written by ``graftwatch evaluate-survival
--write-calibration`` before the interval calibration (which is then fitted on calibrated
volumes). Fewer than MIN_VOXELS pairs (a segmenter without a graft model finds almost no
graft) give no curve: the probabilities are then used as they are, and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from imaging.errors import AnalysisError, ModelError
from segmentation.interval_calibration import resolution_class
from segmentation.quantify import PROBABILITY_FLOOR

CARD_KEY = "graft_probability_calibration"
DEFAULT_BINS = 12
MIN_VOXELS = 500


@dataclass(frozen=True)
class ProbabilityCalibration:
    """The fraction curve of one resolution class for one (segmenter, graft model) pair."""

    resolution: str
    probabilities: tuple[float, ...]    # knots, 0 ... 1, non-decreasing
    fractions: tuple[float, ...]        # mean true graft fraction at each knot, non-decreasing
    n_voxels: int
    source: str = ""

    def __post_init__(self) -> None:
        p, f = np.asarray(self.probabilities, float), np.asarray(self.fractions, float)
        if p.ndim != 1 or p.shape != f.shape or p.size < 2:
            raise ModelError(f"graft probability calibration ({self.resolution}): knots "
                             f"{self.probabilities!r} and fractions {self.fractions!r} must be "
                             "two lists of one length, at least 2")
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(f))) or p[0] != 0.0 or \
                p[-1] != 1.0 or np.any(np.diff(p) < 0) or np.any(np.diff(f) < 0) or \
                f.min() < 0 or f.max() > 1:
            raise ModelError(f"graft probability calibration ({self.resolution}): expected knots "
                             "rising from 0 to 1 and fractions rising within [0, 1]; "
                             "re-run `graftwatch evaluate-survival --write-calibration`")

    def apply(self, probability: np.ndarray) -> np.ndarray:
        """Graft fractions for probabilities (any shape); below the floor 0."""
        p = np.asarray(probability, dtype=np.float64)
        mapped = np.interp(p, self.probabilities, self.fractions)
        return np.where(p >= PROBABILITY_FLOOR, mapped, 0.0).astype(np.float32)

    def describe(self) -> str:
        at = {q: float(np.interp(q, self.probabilities, self.fractions)) for q in (0.5, 0.9, 1.0)}
        return (f"graft probabilities mapped to graft fractions by a reliability curve fitted "
                f"on {self.n_voxels} voxels of held-out {self.resolution} phantoms "
                f"(P 0.5 -> {at[0.5]:.2f}, 0.9 -> {at[0.9]:.2f}, 1 -> {at[1.0]:.2f})")

    def to_dict(self) -> dict[str, Any]:
        return {"probabilities": list(self.probabilities), "fractions": list(self.fractions),
                "n_voxels": self.n_voxels, "source": self.source}

    @classmethod
    def from_dict(cls, resolution: str, data: Mapping[str, Any]) -> "ProbabilityCalibration":
        try:
            return cls(resolution, tuple(float(v) for v in data["probabilities"]),
                       tuple(float(v) for v in data["fractions"]), int(data["n_voxels"]),
                       str(data.get("source", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"graft probability calibration ({resolution}) {dict(data)!r} is "
                             f"not readable ({exc}); re-run `graftwatch evaluate-survival "
                             "--write-calibration`") from exc


def _pooled(xs: list[float], ys: list[float], ws: list[float]) -> list[tuple[float, float]]:
    """Pool adjacent violators: (x, y) with y non-decreasing, weighted means of merged bins."""
    blocks: list[list[float]] = []
    for x, y, w in zip(xs, ys, ws):
        blocks.append([x * w, y * w, w])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] > blocks[-1][1] / blocks[-1][2]:
            last = blocks.pop()
            blocks[-1] = [a + b for a, b in zip(blocks[-1], last)]
    return [(sx / w, sy / w) for sx, sy, w in blocks]


def fit_probability_calibration(resolution: str, probabilities: Sequence[float] | np.ndarray,
                                fractions: Sequence[float] | np.ndarray, *,
                                n_bins: int = DEFAULT_BINS, source: str = ""
                                ) -> ProbabilityCalibration | None:
    """The curve from voxel pairs (P >= the floor, true fraction); None below MIN_VOXELS."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    f = np.asarray(fractions, dtype=np.float64).ravel()
    if p.shape != f.shape:
        raise AnalysisError(f"{p.size} probabilities and {f.size} fractions: expected one each "
                            "per voxel")
    keep = (p >= PROBABILITY_FLOOR) & np.isfinite(p) & np.isfinite(f)
    p, f = np.clip(p[keep], 0, 1), np.clip(f[keep], 0, 1)
    if p.size < MIN_VOXELS:
        return None
    order = np.argsort(p, kind="stable")
    chunks = np.array_split(order, max(1, min(int(n_bins), p.size)))
    points = _pooled([float(p[c].mean()) for c in chunks], [float(f[c].mean()) for c in chunks],
                     [float(len(c)) for c in chunks])
    knots = [(0.0, 0.0)] + [pt for pt in points if 0.0 < pt[0] < 1.0] + [(1.0, points[-1][1])]
    return ProbabilityCalibration(resolution, tuple(k[0] for k in knots),
                                  tuple(k[1] for k in knots), int(p.size), source)


def card_probability_calibrations(validation: Mapping[str, Any], graft_model: str | None
                                  ) -> dict[str, ProbabilityCalibration]:
    """The curves (by resolution class) a segmenter card holds for a graft model."""
    entry = dict(validation.get(CARD_KEY, {})).get(graft_model or "none", {})
    return {resolution: ProbabilityCalibration.from_dict(resolution, data)
            for resolution, data in dict(entry).items()}


def calibrated_fractions(probability: np.ndarray, samples: np.ndarray | None,
                         calibrations: Mapping[str, ProbabilityCalibration],
                         spacing_mm: Sequence[float]
                         ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(fractions, fractions of each sample, note) for a timepoint of voxel size
    ``spacing_mm``; the probabilities unchanged, and said so, without a curve for it."""
    resolution = resolution_class(spacing_mm)
    curve = calibrations.get(resolution)
    if curve is None:
        return probability, samples, (f"graft probabilities not calibrated for {resolution} "
                                      "resolution: volumes are sums of the model's "
                                      "probabilities")
    mapped = None if samples is None else curve.apply(samples)
    return curve.apply(probability), mapped, curve.describe()

