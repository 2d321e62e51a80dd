"""AnalysisConfig: what the survival analysis needs to know that the images do not say.

Every field has a documented unit and default. The physical defaults come from
``imaging.physics`` (the same values the phantom simulator centres on); a user sets the
values of their own labelling protocol. Randomness: the config holds a seed integer only;
the pipeline turns it into a ``numpy.random.Generator`` (``config.generator()``) and passes
that Generator to the functions that need one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from imaging.errors import AnalysisError
from imaging.physics import (DEFAULT_FLUORINE_ATOMS_PER_CELL, DEFAULT_IRON_PG_PER_CELL,
                             DEFAULT_PACKING_DENSITY_CELLS_PER_MM3,
                             DEFAULT_R2STAR_RELAXIVITY_PER_S_PER_UG_PER_MM3)
from segmentation.records import json_safe

LABELS = ("none", "spio", "19f")


@dataclass(frozen=True)
class AnalysisConfig:
    """Analysis settings, each with its unit.

    injected_cells: cells injected at day 0; None when unknown (fractions are still given,
        cell counts from the label-free method are not). Default None.
    label: how the cells were labelled: "none" (label-free T2w), "spio" (iron, R2*) or
        "19f" (fluorine-19 image). Default "none".
    iron_pg_per_cell: SPIO iron per labelled cell at injection, picograms. Default 20.
    r2star_relaxivity_per_s_per_ug_per_mm3: R2* added per ug/mm3 of iron, 1/s per ug/mm3.
        Default 100.
    fluorine_atoms_per_cell: 19F atoms per labelled cell. Default 1e12.
    reference_atoms: 19F atoms in the reference tube; None means "read it from the 19F
        image's sidecar". Default None.
    packing_density_cells_per_mm3: cells per mm3 of graft tissue. Not used to count cells;
        only to turn injected cells into an expected graft volume for the "graft larger than
        what was injected" flag. Default 2e5.
    confidence: level of every interval (two-sided). Default 0.95.
    growth_threshold_fraction: growth above the smallest earlier volume must also exceed this
        fraction of it (besides being beyond measurement error) to be flagged. Default 0.10.
    growth_critical_after_days: growth flagged at or after this day is critical (the tumour
        signal); earlier growth (swelling after surgery) is a warning. Default 60 days.
    min_graft_volume_mm3: a graft smaller than this is "not found" (detection limit of the
        segmentation). Default 1.0 mm3.
    repeatability_cv: scan-rescan coefficient of variation of the graft volume (fraction,
        e.g. 0.05), added to each volume's uncertainty when calling changes; None when
        unknown. Default None.
    max_registration_residual_mm: a registration residual above this fails. Default 1.0 mm.
    min_snr: an image whose cord SNR estimate is below this is flagged. Default 5.
    bootstrap_samples: Monte-Carlo / bootstrap draws for intervals. Default 2000.
    seed: seed of the Generator the pipeline builds for intervals. Default 0.
    calibrated_intervals: widen (or narrow) each graft-volume interval to the coverage the
        models have on held-out phantoms, where the segmenter's card holds a calibration for
        them (``segmentation.interval_calibration``); False keeps the model's own interval
        (its spread under test-time augmentation), which is too narrow. Default True.
    calibrated_fractions: turn the graft model's probabilities into graft fractions by the
        reliability curve the segmenter's card holds for the models and the resolution
        (``segmentation.probability_calibration``) before summing them into volumes; False
        sums the probabilities as they are. Default True.
    """

    injected_cells: float | None = None
    label: str = "none"
    iron_pg_per_cell: float = DEFAULT_IRON_PG_PER_CELL
    r2star_relaxivity_per_s_per_ug_per_mm3: float = DEFAULT_R2STAR_RELAXIVITY_PER_S_PER_UG_PER_MM3
    fluorine_atoms_per_cell: float = DEFAULT_FLUORINE_ATOMS_PER_CELL
    reference_atoms: float | None = None
    packing_density_cells_per_mm3: float = DEFAULT_PACKING_DENSITY_CELLS_PER_MM3
    confidence: float = 0.95
    growth_threshold_fraction: float = 0.10
    growth_critical_after_days: float = 60.0
    min_graft_volume_mm3: float = 1.0
    repeatability_cv: float | None = None
    max_registration_residual_mm: float = 1.0
    min_snr: float = 5.0
    bootstrap_samples: int = 2000
    seed: int = 0
    calibrated_intervals: bool = True
    calibrated_fractions: bool = True

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise AnalysisError(f"label {self.label!r} is not known; expected one of {LABELS}")
        _positive("injected_cells", self.injected_cells, optional=True)
        for name in ("iron_pg_per_cell", "r2star_relaxivity_per_s_per_ug_per_mm3",
                     "fluorine_atoms_per_cell", "packing_density_cells_per_mm3",
                     "max_registration_residual_mm"):
            _positive(name, getattr(self, name))
        _positive("reference_atoms", self.reference_atoms, optional=True)
        _fraction("confidence", self.confidence)
        _fraction("repeatability_cv", self.repeatability_cv, optional=True)
        for name in ("growth_threshold_fraction", "growth_critical_after_days",
                     "min_graft_volume_mm3", "min_snr"):
            _non_negative(name, getattr(self, name))
        if isinstance(self.bootstrap_samples, bool) or not isinstance(self.bootstrap_samples, int) \
                or self.bootstrap_samples < 100:
            raise AnalysisError(f"bootstrap_samples={self.bootstrap_samples!r}; expected an "
                                "integer of at least 100 (2000 is the default)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise AnalysisError(f"seed={self.seed!r}; expected a non-negative integer")
        for name in ("calibrated_intervals", "calibrated_fractions"):
            if not isinstance(getattr(self, name), bool):
                raise AnalysisError(f"{name}={getattr(self, name)!r}; expected true or false")

    def generator(self) -> np.random.Generator:
        """A fresh Generator from ``seed`` for the functions that draw random numbers."""
        return np.random.default_rng(self.seed)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "AnalysisConfig":
        """Build from a mapping (e.g. a JSON config); unknown keys are an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AnalysisError(f"unknown analysis setting(s) {unknown}; expected names among "
                                f"{sorted(known)}")
        return cls(**dict(values))


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise AnalysisError(f"{name}={value!r} is not a finite number")
    return float(value)


def _positive(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if _number(name, value) <= 0:
        raise AnalysisError(f"{name}={value!r}; expected a positive number"
                            + (" or None when unknown" if optional else ""))


def _non_negative(name: str, value: Any) -> None:
    if _number(name, value) < 0:
        raise AnalysisError(f"{name}={value!r}; expected zero or a positive number")


def _fraction(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not 0.0 < _number(name, value) < 1.0:
        raise AnalysisError(f"{name}={value!r}; expected a fraction strictly between 0 and 1"
                            + " (e.g. 0.05 for 5 %)" * (name != "confidence"))
