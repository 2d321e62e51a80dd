"""Segmentation metrics, one implementation each: Dice, HD95 (mm), volume error (%).

Masks are boolean arrays on one voxel grid; distances use the grid's voxel
spacing (mm), so anisotropic scans are measured in millimetres, not voxels.

Conventions for empty masks (documented answers, never a crash):

- ``dice``: both empty -> 1.0 (they agree perfectly); exactly one empty -> 0.0.
- ``hd95_mm``: both empty -> 0.0; exactly one empty -> ``math.inf`` (no surface
  to measure to). Aggregates should report such cases separately.
- ``volume_error_percent``: true volume 0 -> 0.0 when the prediction is also 0,
  else ``math.inf``.

HD95 is the symmetric 95th-percentile Hausdorff distance: the surface of a mask
is its voxels that touch the background through a face (mask minus its
6-connected erosion); for each surface voxel of A the Euclidean distance (mm, via
an exact distance transform with the voxel spacing) to the nearest surface voxel
of B is taken, and vice versa; HD95 is the larger of the two directed 95th
percentiles (the convention of MONAI's and medpy's ``hd95``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import ndimage

from imaging.errors import SpaceMismatchError

PERCENTILE = 95.0


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise SpaceMismatchError(f"masks have shapes {a.shape} and {b.shape}; expected one grid "
                                 "(resample the prediction onto the truth's grid first)")
    return a, b


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """2|A∩B| / (|A|+|B|); 1.0 when both masks are empty."""
    a, b = _pair(predicted, truth)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def soft_dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice of fractions in [0, 1] (partial-volume maps): 2 sum(p t) / (sum p + sum t)."""
    p = np.asarray(predicted, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        raise SpaceMismatchError(f"maps have shapes {p.shape} and {t.shape}; expected one grid")
    total = float(p.sum() + t.sum())
    return 1.0 if total == 0.0 else 2.0 * float((p * t).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1),
                                    border_value=0)
    return mask & ~eroded


def _crop_to_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to their joint bounding box plus one voxel (same distances, less work)."""
    where = np.argwhere(a | b)
    lo = np.maximum(where.min(axis=0) - 1, 0)
    hi = where.max(axis=0) + 2
    box = tuple(slice(int(s), int(e)) for s, e in zip(lo, hi))
    return a[box], b[box]


def _directed_percentile(source: np.ndarray, target: np.ndarray,
                         spacing_mm: Sequence[float]) -> float:
    distance = ndimage.distance_transform_edt(~target, sampling=spacing_mm)
    return float(np.percentile(distance[source], PERCENTILE))


def hd95_mm(predicted: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Symmetric 95th-percentile surface distance in mm (see the module docstring)."""
    a, b = _pair(predicted, truth)
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != a.ndim or min(spacing) <= 0:
        raise ValueError(f"spacing {spacing_mm}: expected {a.ndim} positive voxel sizes in mm")
    has_a, has_b = bool(a.any()), bool(b.any())
    if not has_a and not has_b:
        return 0.0
    if has_a != has_b:
        return math.inf
    a, b = _crop_to_union(a, b)
    surface_a, surface_b = _surface(a), _surface(b)
    return max(_directed_percentile(surface_a, surface_b, spacing),
               _directed_percentile(surface_b, surface_a, spacing))


def volume_error_percent(predicted_mm3: float, true_mm3: float) -> float:
    """Signed error 100 (predicted - true) / true; see the module docstring when true is 0."""
    predicted, true = float(predicted_mm3), float(true_mm3)
    if true == 0.0:
        return 0.0 if predicted == 0.0 else math.inf
    return 100.0 * (predicted - true) / true
