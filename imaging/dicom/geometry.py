"""DICOM geometry: slice normal, plane, slice order and spacing checks, the affine, LPS -> RAS.

DICOM describes an image by ImageOrientationPatient (the direction of a row,
i.e. of increasing column index, then the direction of a column, i.e. of
increasing row index), ImagePositionPatient (the centre of the first pixel) and
PixelSpacing (row spacing = distance between rows, then column spacing), all in
LPS millimetres. graftwatch arrays are (x, y, z) with x = column index and
y = row index, so x steps along the row direction by the column spacing.
This module is the only place where LPS becomes RAS.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from imaging.errors import DicomSeriesError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Two orientations closer than this (per direction cosine) are the same plane.
ORIENTATION_TOLERANCE = 1e-3
# Slice-to-slice distances may differ by this fraction of the step before they are "uneven".
SPACING_TOLERANCE = 0.01
# Sideways shift per unit of slice step above which the stack is tilted (about 0.3 degrees).
TILT_TOLERANCE = 5e-3
_PLANES = ("sagittal", "coronal", "axial")  # normal mostly along L, P, S
OBLIQUE_COSINE = 0.8


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal (row direction x column direction) of an ImageOrientationPatient."""
    iop = np.asarray(orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return normal / np.linalg.norm(normal)


def check_orientation(orientation: Sequence[float], source: str) -> None:
    """Refuse direction cosines that are not two orthogonal unit vectors."""
    iop = np.asarray(orientation, dtype=float)
    if iop.shape != (6,) or not np.all(np.isfinite(iop)):
        raise DicomSeriesError(f"{source}: ImageOrientationPatient is {list(orientation)}; "
                               "expected six finite direction cosines")
    row, col = iop[:3], iop[3:]
    if (abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2
            or abs(row @ col) > 1e-2):
        raise DicomSeriesError(
            f"{source}: ImageOrientationPatient {iop.round(5).tolist()} is not two orthogonal "
            "unit vectors (non-orthogonal image plane); the file's geometry is broken, "
            "re-export the series from the scanner or PACS")


def plane_of(orientation: Sequence[float]) -> str:
    """'sagittal', 'coronal' or 'axial' by the dominant axis of the slice normal, else 'oblique'."""
    normal = np.abs(slice_normal(orientation))
    axis = int(np.argmax(normal))
    return _PLANES[axis] if normal[axis] >= OBLIQUE_COSINE else "oblique"


def same_orientation(a: Sequence[float], b: Sequence[float]) -> bool:
    return bool(np.allclose(a, b, atol=ORIENTATION_TOLERANCE, rtol=0))


def _lps(position: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in position) + ")"


def check_even_spacing(positions_lps: np.ndarray, distances_mm: np.ndarray, source: str) -> float:
    """Return the slice step (mm) of slices sorted by distance, or raise naming the uneven gaps."""
    gaps = np.diff(distances_mm)
    step = float(np.median(gaps))
    bad = np.flatnonzero(np.abs(gaps - step) > SPACING_TOLERANCE * abs(step) + 1e-4)
    if len(bad):
        where = "; ".join(f"between {_lps(positions_lps[i])} and {_lps(positions_lps[i + 1])} "
                          f"(gap {gaps[i]:.3f} mm)" for i in bad[:6])
        raise DicomSeriesError(
            f"{source}: slices are unevenly spaced (usual step {step:.3f} mm; uneven {where}"
            f"{' ...' if len(bad) > 6 else ''}; positions are LPS mm of the slice corners); "
            "slices may be missing. Load the complete series, or pass allow_uneven=True "
            "(command line: --allow-uneven) to resample onto an even grid")
    return step


def check_no_tilt(positions_lps: np.ndarray, normal: np.ndarray, source: str) -> None:
    """Refuse stacks whose slices do not advance along the normal of the image plane."""
    travel = positions_lps[-1] - positions_lps[0]
    along = float(travel @ normal)
    sideways = float(np.linalg.norm(travel - along * normal))
    if abs(along) < 1e-6 or sideways / abs(along) > TILT_TOLERANCE:
        angle = np.degrees(np.arctan2(sideways, abs(along)))
        raise DicomSeriesError(
            f"{source}: slices advance at {angle:.2f} degrees to the image-plane normal (gantry "
            "tilt or non-orthogonal slice stack); graftwatch needs a rectilinear grid. Reformat "
            "the series perpendicular to its slices on the scanner, or correct the tilt with "
            "a converter that resamples it (e.g. dcm2niix)")


def affine_lps(orientation: Sequence[float], pixel_spacing_mm: Sequence[float],
               origin_lps: Sequence[float], slice_step_lps: Sequence[float]) -> np.ndarray:
    """Voxel (column, row, slice) -> LPS mm affine."""
    iop = np.asarray(orientation, dtype=float)
    row_spacing, col_spacing = (float(v) for v in pixel_spacing_mm)
    affine = np.eye(4)
    affine[:3, 0] = iop[:3] * col_spacing
    affine[:3, 1] = iop[3:] * row_spacing
    affine[:3, 2] = np.asarray(slice_step_lps, dtype=float)
    affine[:3, 3] = np.asarray(origin_lps, dtype=float)
    return affine


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """The same voxel grid expressed in RAS+ instead of LPS (the one conversion)."""
    return LPS_TO_RAS @ np.asarray(affine, dtype=float)
