"""Scan-rescan repeatability: the coefficient of variation, and volumes over a common extent.

Two scans of one cord rarely cover the same stretch of it: the field of view is placed
again at every scan and the subject moves. Cord volumes over each scan's whole field of
view then differ by whatever the two fields of view differ by, so the volumes compared
here are taken over the stretch both scans cover:

1. the rescan (moving) is rigidly registered onto the scan (fixed) by the caller
   (``imaging.registration.register_rigid``, driven by the cord);
2. the rescan's map (cord probability or mask, as fractions per voxel) is resampled onto
   the scan's grid through that transform (linear: partial volume is kept);
3. the common extent is the run of the scan's slices (along its axis closest to
   superior-inferior) in which every voxel of ``region`` (the cord of the scan) maps inside
   the rescan's grid; both volumes are summed over those slices only.

Both maps are then on one grid over one stretch of anatomy, and their difference is the
measurement's own variation. ``coefficient_of_variation`` is the sample standard deviation
(n - 1) over the mean; ``pooled_cv`` the root mean square of per-subject CVs (the usual
within-subject CV of a repeatability study).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from imaging.errors import AnalysisError, SpaceMismatchError
from imaging.registration import apply_transform
from imaging.rigid import RigidTransform
from imaging.volume import Volume


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1) / mean; for two values |a - b| / (sqrt(2) mean)."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size < 2 or not np.all(np.isfinite(data)):
        raise AnalysisError(f"coefficient of variation of {values!r}: expected at least two "
                            "finite measurements of the same quantity")
    mean = float(data.mean())
    if mean <= 0:
        raise AnalysisError(f"coefficient of variation of {values!r}: the mean is {mean}; "
                            "expected positive volumes (is the cord missing from a scan?)")
    return float(data.std(ddof=1)) / mean


def pooled_cv(cvs: Sequence[float]) -> float:
    """Root mean square of per-subject coefficients of variation."""
    data = np.asarray(cvs, dtype=np.float64)
    if data.size == 0 or not np.all(np.isfinite(data)) or np.any(data < 0):
        raise AnalysisError(f"pooled CV of {cvs!r}: expected one or more finite CVs >= 0")
    return float(math.sqrt(np.mean(data ** 2)))


@dataclass(frozen=True)
class PairedVolumes:
    """One quantity measured on a scan and on its rescan, over the slices both cover."""

    first_slice: int           # of the scan's grid, along ``axis``, inclusive
    last_slice: int
    axis: int
    length_mm: float
    scan_mm3: float
    rescan_mm3: float

    @property
    def cv(self) -> float:
        return coefficient_of_variation([self.scan_mm3, self.rescan_mm3])

    def to_dict(self) -> dict[str, Any]:
        return {"first_slice": self.first_slice, "last_slice": self.last_slice,
                "axis": self.axis, "length_mm": self.length_mm, "scan_mm3": self.scan_mm3,
                "rescan_mm3": self.rescan_mm3, "cv": self.cv}


def cranio_caudal_axis(affine: np.ndarray) -> int:
    """The voxel axis whose direction is closest to superior-inferior."""
    directions = np.asarray(affine)[:3, :3]
    return int(np.argmax(np.abs(directions[2]) / np.linalg.norm(directions, axis=0)))


def common_slices(scan: Volume, rescan: Volume, transform: RigidTransform,
                  region: np.ndarray) -> tuple[int, int, int]:
    """(axis, first, last): the longest run of the scan's slices in which every ``region``
    voxel maps inside the rescan's grid (between its first and last voxel centres)."""
    region = np.asarray(region, dtype=bool)
    if region.shape != scan.spatial_shape:
        raise SpaceMismatchError(f"region has shape {region.shape}; expected the scan's grid "
                                 f"{scan.spatial_shape}")
    axis = cranio_caudal_axis(scan.affine)
    inside = np.ones(scan.spatial_shape[axis], dtype=bool)
    indices = np.argwhere(region)
    if indices.size == 0:
        raise AnalysisError("region is empty: no cord in the scan to compare over")
    world = transform.transform_points(scan.world_coordinates(indices))
    voxel = (np.linalg.inv(rescan.affine) @ np.c_[world, np.ones(len(world))].T)[:3].T
    upper = np.asarray(rescan.spatial_shape, dtype=float) - 1.0
    outside = np.any((voxel < -1e-6) | (voxel > upper + 1e-6), axis=1)
    inside[np.unique(indices[outside, axis])] = False
    inside[~np.isin(np.arange(inside.size), indices[:, axis])] = False
    return (axis, *_longest_run(inside, "no slice of the scan holds cord that the rescan covers"))


def _longest_run(flags: np.ndarray, message: str) -> tuple[int, int]:
    best, start = (0, -1), None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start > best[1] - best[0] + 1:
                best = (start, i - 1)
            start = None
    if best[1] < best[0]:
        raise AnalysisError(message)
    return best


def volume_over_slices(fractions: Volume, axis: int, first: int, last: int) -> float:
    """Sum of a fraction map over slices ``first..last`` along ``axis``, in mm3."""
    taken = np.take(np.asarray(fractions.array, dtype=np.float64), range(first, last + 1), axis=axis)
    return float(taken.sum()) * fractions.voxel_volume_mm3


def paired_volumes(scan_map: Volume, rescan_map: Volume, transform: RigidTransform,
                   region: np.ndarray) -> PairedVolumes:
    """Volumes of a fraction map (cord probability, mask as 0/1) on a scan and its rescan
    over their common extent; ``transform`` maps scan points to rescan points."""
    axis, first, last = common_slices(scan_map, rescan_map, transform, region)
    moved = apply_transform(rescan_map, transform, scan_map)
    spacing = scan_map.spacing[axis]
    return PairedVolumes(first, last, axis, (last - first + 1) * spacing,
                         volume_over_slices(scan_map, axis, first, last),
                         volume_over_slices(moved, axis, first, last))
