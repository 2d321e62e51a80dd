"""Where each DICOM frame's pixels sit in a Volume's voxel grid, found from positions alone.

A frame is a plane: the LPS position of its first pixel (ImagePositionPatient),
the LPS directions of its rows and columns (ImageOrientationPatient) and its
pixel spacing. Mapping its pixels through the inverse of a Volume's RAS affine
(LPS = diag(-1, -1, 1) RAS) gives voxel indices; the frame is on the Volume's grid
when those indices are whole numbers and the frame's rows and columns run along
volume axes. Nothing here depends on file order or on how the Volume was loaded:
a Volume reoriented to any axis codes still maps, and a cropped Volume maps the
part of each frame it covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset

from imaging.errors import DicomExportError

# Largest distance (in voxels) of a frame pixel from a voxel centre that still counts as on it.
GRID_TOLERANCE_VOXELS = 0.01
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class FramePlane:
    """Geometry of one 2-D frame: pixel (row r, column c) is at
    position + c * column_spacing * row_direction + r * row_spacing * column_direction (LPS mm)."""

    position_lps: tuple[float, float, float]
    row_direction_lps: tuple[float, float, float]
    column_direction_lps: tuple[float, float, float]
    row_spacing_mm: float
    column_spacing_mm: float
    rows: int
    columns: int

    @classmethod
    def from_tags(cls, position, orientation, spacing, rows: int, columns: int) -> "FramePlane":
        pos = tuple(float(v) for v in position)
        iop = [float(v) for v in orientation]
        return cls(pos, tuple(iop[:3]), tuple(iop[3:]), float(spacing[0]), float(spacing[1]),
                   int(rows), int(columns))

    def pixel_to_ras(self) -> np.ndarray:
        """3x3 matrix taking (column, row, 1) to RAS mm."""
        cols = np.column_stack([
            np.asarray(self.row_direction_lps) * self.column_spacing_mm,
            np.asarray(self.column_direction_lps) * self.row_spacing_mm,
            np.asarray(self.position_lps)])
        return LPS_FROM_RAS @ cols

    @property
    def normal_lps(self) -> np.ndarray:
        return np.cross(self.row_direction_lps, self.column_direction_lps)


def single_frame_plane(ds: Dataset, name: str) -> FramePlane:
    """The plane of a single-frame image dataset; ``name`` (its file) goes in error messages."""
    missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                           "Rows", "Columns") if k not in ds]
    if missing:
        raise DicomExportError(
            f"{name}: source image lacks {', '.join(missing)}; expected single-frame MR/CT "
            "images with patient geometry (enhanced multi-frame sources are not supported yet)")
    return FramePlane.from_tags(ds.ImagePositionPatient, ds.ImageOrientationPatient,
                                ds.PixelSpacing, ds.Rows, ds.Columns)


@dataclass(frozen=True)
class FrameIndex:
    """Voxel indices of a frame's pixels: ``ijk[a]`` is an (rows, columns) array per volume axis,
    ``inside`` marks the pixels that fall inside the volume."""

    ijk: tuple[np.ndarray, np.ndarray, np.ndarray]
    inside: np.ndarray

    def gather(self, array: np.ndarray) -> np.ndarray:
        """The frame's pixels taken from a volume array (x, y, z[, c]); zero outside the volume."""
        out = np.zeros(self.inside.shape + array.shape[3:], dtype=array.dtype)
        out[self.inside] = array[tuple(a[self.inside] for a in self.ijk)]
        return out

    def scatter(self, frame: np.ndarray, array: np.ndarray) -> None:
        """Write a frame's pixels (rows, columns[, c]) into a volume array where it lies."""
        array[tuple(a[self.inside] for a in self.ijk)] = frame[self.inside]


def frame_index(plane: FramePlane, affine: np.ndarray, shape: Sequence[int], name: str) -> FrameIndex:
    """Voxel indices of every pixel of ``plane`` in the grid (affine, spatial shape), or raise
    DicomExportError when the frame does not lie on that grid."""
    to_voxel = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    m = to_voxel[:3, :3] @ plane.pixel_to_ras()
    m[:, 2] += to_voxel[:3, 3]
    whole = np.round(m)
    if np.max(np.abs(m - whole)) > GRID_TOLERANCE_VOXELS or not _axis_steps(whole[:, :2]):
        raise DicomExportError(
            f"{name}: frame at LPS {np.round(plane.position_lps, 3).tolist()} is not on the "
            f"mask's voxel grid (frame pixel -> voxel map\n{np.round(m, 4)}\nis not whole "
            "voxel steps along volume axes); expected the mask in the source series' voxel "
            "space: resample it onto the source series before exporting")
    rows, cols = np.mgrid[0:plane.rows, 0:plane.columns]
    ijk = tuple((whole[a, 0] * cols + whole[a, 1] * rows + whole[a, 2]).astype(np.intp)
                for a in range(3))
    inside = np.ones((plane.rows, plane.columns), dtype=bool)
    for axis, n in enumerate(shape[:3]):
        inside &= (ijk[axis] >= 0) & (ijk[axis] < n)
    return FrameIndex(ijk, inside)  # type: ignore[arg-type]


def _axis_steps(steps: np.ndarray) -> bool:
    """True when both columns are +-1 steps along two different volume axes."""
    axes = []
    for col in steps.T:
        nonzero = np.flatnonzero(col)
        if len(nonzero) != 1 or abs(col[nonzero[0]]) != 1:
            return False
        axes.append(int(nonzero[0]))
    return axes[0] != axes[1]
