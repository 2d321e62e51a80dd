"""Preprocessing before segmentation and registration: bias field, intensity scale, crop.

Pure functions, Volume in, Volume out. ``correct_bias_field`` runs SimpleITK's N4
on a shrunk copy (fast) and divides the full-resolution image by the field N4
estimated, evaluated on the full grid. ``normalise_intensity`` maps intensities to
a scale that does not depend on the scanner's arbitrary units. ``crop_to_mask``
cuts a box around a mask (the cord) and returns the box, so other volumes on the
same grid can be cut the same way and results pasted back.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from imaging.errors import InvalidVolumeError, SpaceMismatchError
from imaging.sitk_bridge import sitk_to_volume, volume_to_sitk
from imaging.volume import LabelVolume, Volume, require_same_space

log = logging.getLogger(__name__)

NORMALISATION_METHODS = ("percentile", "zscore")


# --- bias field -------------------------------------------------------------------------
def _shrink_factors(spacing: Sequence[float], shape: Sequence[int], shrink: int) -> list[int]:
    """Per-axis factors so thick slices are not shrunk as much as fine in-plane axes."""
    finest = min(spacing)
    factors = []
    for sp, n in zip(spacing, shape):
        f = max(1, int(round(shrink * finest / sp)))
        factors.append(max(1, min(f, n // 4 if n >= 8 else 1)))
    return factors


def _n4_mask(image: sitk.Image, mask: LabelVolume | None, volume: Volume) -> sitk.Image:
    """Where N4 fits the field: the given mask, else Otsu foreground; never non-positive voxels."""
    positive = sitk.Cast(image > 0, sitk.sitkUInt8)
    if mask is None:
        region = sitk.OtsuThreshold(image, 0, 1, 200)
    else:
        require_same_space(volume, mask)
        region = volume_to_sitk(mask, dtype=np.uint8) > 0
    region = sitk.Cast(region, sitk.sitkUInt8) * positive
    if sitk.GetArrayViewFromImage(region).sum() < 27:
        raise InvalidVolumeError(
            "bias field: fewer than 27 positive voxels in the fitting region of "
            f"{Volume.__repr__(volume)}; "
            "expected a mask covering tissue with positive intensities (pass mask= or check "
            "the image is not empty)")
    return region


def estimate_bias_field(volume: Volume, mask: LabelVolume | None = None, shrink_factor: int = 4,
                        iterations: Sequence[int] = (50, 50, 50),
                        convergence_threshold: float = 1e-6,
                        spline_distance_mm: float = 50.0) -> Volume:
    """N4's multiplicative bias field on the full grid of ``volume`` (first echo of a 4-D one).

    The fit runs on a copy shrunk by about ``shrink_factor`` along the finest axes
    (thick slices are shrunk less); the B-spline log-field it finds is then
    evaluated on the full-resolution grid. ``mask`` restricts the fit (default:
    Otsu foreground). The field has N4's arbitrary overall scale.
    """
    if shrink_factor < 1:
        raise InvalidVolumeError(f"shrink_factor={shrink_factor}; expected an integer >= 1")
    image = volume_to_sitk(volume, index=0 if volume.array.ndim == 4 else None, dtype=np.float32)
    region = _n4_mask(image, mask, volume)
    factors = _shrink_factors(volume.spacing, volume.spatial_shape, shrink_factor)
    small = sitk.Shrink(image, factors)
    small_region = sitk.Shrink(region, factors)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(i) for i in iterations])
    corrector.SetConvergenceThreshold(convergence_threshold)
    extent = [sp * n for sp, n in zip(volume.spacing, volume.spatial_shape)]
    corrector.SetNumberOfControlPoints([max(4, int(math.ceil(e / spline_distance_mm)) + 3)
                                        for e in extent])
    corrector.Execute(small, small_region)
    log_field = corrector.GetLogBiasFieldAsImage(image)
    field = sitk_to_volume(sitk.Exp(log_field))
    log.debug("N4 on %s shrunk by %s: %d levels", volume, factors, len(iterations))
    return Volume(field.array.astype(np.float32), volume.affine, {"kind": "bias_field"})


def correct_bias_field(volume: Volume, mask: LabelVolume | None = None, shrink_factor: int = 4,
                       **n4_options) -> Volume:
    """``volume`` divided by its N4 bias field (4-D: field from echo 0 applied to every echo).

    ``n4_options`` go to :func:`estimate_bias_field` (iterations, convergence_threshold,
    spline_distance_mm). The result is float32 with ``meta["bias_corrected"] = True``.
    """
    field = estimate_bias_field(volume, mask=mask, shrink_factor=shrink_factor, **n4_options)
    gain = field.array if volume.array.ndim == 3 else field.array[..., None]
    corrected = (np.asarray(volume.array, dtype=np.float32) / gain).astype(np.float32)
    return volume.with_array(corrected, meta={**volume.meta, "bias_corrected": True})


# --- intensity normalisation --------------------------------------------------------------
def _reference_voxels(volume: Volume, mask: LabelVolume | None) -> np.ndarray:
    first = volume.array if volume.array.ndim == 3 else volume.array[..., 0]
    if mask is None:
        values = first.ravel()
    else:
        require_same_space(volume, mask)
        values = first[np.asarray(mask.array) > 0]
    if values.size == 0:
        raise InvalidVolumeError(
            f"intensity normalisation: the mask selects no voxels of {Volume.__repr__(volume)}; "
            "expected a non-empty mask on the same grid")
    return values.astype(np.float64)


def normalise_intensity(volume: Volume, mask: LabelVolume | None = None,
                        method: str = "percentile",
                        percentiles: tuple[float, float] = (1.0, 99.0)) -> Volume:
    """Map intensities to a scanner-independent scale, using the voxels in ``mask`` (or all).

    ``"percentile"``: the lower percentile goes to 0 and the upper to 1;
    ``"zscore"``: zero mean and unit standard deviation. Both are unchanged when the
    input is multiplied by any positive factor. A 4-D volume gets one mapping (from
    its first echo) for every echo, so ratios between echoes survive.
    """
    if method not in NORMALISATION_METHODS:
        raise InvalidVolumeError(f"method={method!r}; expected one of {NORMALISATION_METHODS}")
    values = _reference_voxels(volume, mask)
    if method == "percentile":
        low, high = np.percentile(values, percentiles)
        offset, scale = float(low), float(high - low)
    else:
        offset, scale = float(values.mean()), float(values.std())
    if not scale > 0:
        raise InvalidVolumeError(
            f"intensity normalisation ({method}): the reference voxels of "
            f"{Volume.__repr__(volume)} have no "
            "spread (constant intensity); expected an image with contrast inside the mask")
    out = ((np.asarray(volume.array, dtype=np.float64) - offset) / scale).astype(np.float32)
    return volume.with_array(out, meta={**volume.meta, "intensity_normalisation": method})


# --- crop around a mask -------------------------------------------------------------------
@dataclass(frozen=True)
class CropBox:
    """Voxels ``lower <= index < upper`` of a grid of ``full_shape`` with ``full_affine``."""

    lower: tuple[int, int, int]
    upper: tuple[int, int, int]
    full_shape: tuple[int, int, int]
    full_affine: tuple[tuple[float, ...], ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.lower, self.upper))  # type: ignore[return-value]

    def _check_full_grid(self, volume: Volume) -> None:
        if volume.spatial_shape != self.full_shape or not np.allclose(
                volume.affine, np.asarray(self.full_affine), atol=1e-3, rtol=0):
            raise SpaceMismatchError(
                f"{Volume.__repr__(volume)} is not on the grid this box was cut from "
                f"(shape {self.full_shape}); "
                "resample it onto the original volume first")

    def crop(self, volume: Volume) -> Volume:
        """Cut the same box out of another volume on the original grid."""
        self._check_full_grid(volume)
        return volume.crop(self.lower, self.upper)

    def paste(self, cropped: Volume, fill: float = 0) -> Volume:
        """Put a cropped result back on the full grid, ``fill`` elsewhere."""
        expected = np.asarray(self.full_affine).copy()
        expected[:3, 3] += expected[:3, :3] @ np.asarray(self.lower, dtype=np.float64)
        if cropped.spatial_shape != self.shape or not np.allclose(cropped.affine, expected,
                                                                  atol=1e-3, rtol=0):
            raise SpaceMismatchError(
                f"{Volume.__repr__(cropped)} is not this box (shape {self.shape}, "
                f"lower corner {self.lower}); "
                "paste only what was cropped with this box")
        full = np.full(self.full_shape + cropped.shape[3:], fill, dtype=cropped.array.dtype)
        lo, hi = self.lower, self.upper
        full[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = cropped.array
        return type(cropped)(full, np.asarray(self.full_affine), cropped.meta)

    def to_dict(self) -> dict:
        return {"lower": list(self.lower), "upper": list(self.upper),
                "full_shape": list(self.full_shape),
                "full_affine": [list(r) for r in self.full_affine]}


def mask_box(mask: LabelVolume, margin_mm: float | Sequence[float]) -> CropBox:
    """The box around the non-zero voxels of ``mask`` grown by ``margin_mm`` on each side."""
    nonzero = np.argwhere(np.asarray(mask.array) > 0)
    if nonzero.size == 0:
        raise InvalidVolumeError(
            f"cannot crop to an empty mask ({Volume.__repr__(mask)}); expected at least one "
            "non-zero voxel "
            "(segment the cord first, or skip cropping)")
    margins = np.broadcast_to(np.asarray(margin_mm, dtype=np.float64), (3,))
    if np.any(margins < 0):
        raise InvalidVolumeError(f"margin_mm={margin_mm}; expected a non-negative distance")
    pad = np.ceil(margins / np.asarray(mask.spacing) - 1e-9).astype(int)
    shape = np.asarray(mask.spatial_shape)
    lower = np.maximum(nonzero.min(axis=0) - pad, 0)
    upper = np.minimum(nonzero.max(axis=0) + 1 + pad, shape)
    return CropBox(tuple(int(v) for v in lower), tuple(int(v) for v in upper),
                   tuple(int(v) for v in shape), tuple(map(tuple, np.asarray(mask.affine))))


def crop_to_mask(volume: Volume, mask: LabelVolume,
                 margin_mm: float | Sequence[float] = 10.0) -> tuple[Volume, CropBox]:
    """``volume`` cut to the box around ``mask`` plus ``margin_mm``, and that box."""
    require_same_space(volume, mask)
    box = mask_box(mask, margin_mm)
    return box.crop(volume), box
