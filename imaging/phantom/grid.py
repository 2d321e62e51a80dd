"""Acquisition grids and supersampling: where partial volume comes from.

A session's image grid is aligned with the scanner axes; the body sits in the scanner
rotated and shifted (rigid motion). To get real partial volume, each voxel of a region
is split into sub-voxels of about ``step_mm``, the tissue is evaluated at every
sub-voxel centre (mapped into the body frame), and the values are box-averaged back
onto the voxel. Fractions therefore sum exactly: the mean of a 0/1 indicator over a
voxel's sub-voxels times the voxel volume is the volume the fine grid holds there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial.transform import Rotation

from imaging.phantom.spec import SessionSpec

# Nominal field-of-view centre in the body frame: a little behind the cord so that the
# vertebral bodies in front and the posterior skin both fit.
NOMINAL_FOV_CENTRE_MM = (0.0, -4.0, 0.0)


@dataclass(frozen=True)
class Grid:
    """A voxel grid: shape and voxel -> scanner RAS (mm) affine."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))


def scanner_from_body(session: SessionSpec) -> np.ndarray:
    """4x4 rigid pose of the body in the scanner (rotation about the epicentre, then shift)."""
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_rotvec(np.radians(session.rotation_deg)).as_matrix()
    pose[:3, 3] = session.translation_mm
    return pose


def axis_aligned_grid(centre_mm, extent_mm, spacing_mm) -> Grid:
    """A scanner-aligned grid (RAS axes) of about ``extent_mm`` centred on ``centre_mm``."""
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    shape = tuple(max(1, int(round(e / s))) for e, s in zip(extent_mm, spacing))
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = np.asarray(centre_mm) - (np.asarray(shape) - 1) / 2.0 * spacing
    return Grid(shape, affine)


def session_grid(session: SessionSpec) -> Grid:
    centre = np.asarray(NOMINAL_FOV_CENTRE_MM) + np.asarray(session.fov_shift_mm)
    return axis_aligned_grid(centre, session.fov_mm, session.spacing_mm)


@dataclass(frozen=True)
class Supersampled:
    """Sub-voxel centres (body frame) of the voxels lo <= index < hi of a grid."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    sub: tuple[int, int, int]
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    point_volume_mm3: float
    step_mm: float
    step_per_axis_mm: tuple[float, float, float]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi))  # type: ignore[return-value]

    @property
    def n_voxels(self) -> int:
        return int(np.prod([b - a for a, b in zip(self.lo, self.hi)]))

    @property
    def box_shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.lo, self.hi))  # type: ignore[return-value]

    @cached_property
    def voxel_index(self) -> np.ndarray:
        """Flat index (C order over the box) of the voxel each point (flat) falls in."""
        n = self.box_shape
        i, j, k = (np.arange(a * s, dtype=np.int64) // s for a, s in zip(n, self.sub))
        return ((i[:, None, None] * n[1] + j[None, :, None]) * n[2] + k[None, None, :]).ravel()

    def voxel_sums(self, weights: np.ndarray | None, channels: np.ndarray | None = None,
                   n_channels: int = 1, points: np.ndarray | None = None) -> np.ndarray:
        """(voxels, n_channels) float64 sums of point ``weights`` (None: counts) per voxel and
        channel; ``points`` (flat indices) restricts the sum to those points, whose
        weights and channels are then given for them only."""
        index = self.voxel_index if points is None else self.voxel_index[points]
        if channels is not None:
            index = index * n_channels + np.ravel(channels)
        w = None if weights is None else np.ravel(weights)
        sums = np.bincount(index, weights=w, minlength=self.n_voxels * n_channels)
        return sums.reshape(self.n_voxels, n_channels)

    def average(self, values: np.ndarray) -> np.ndarray:
        """Box-average point values back onto the voxels (float32)."""
        n = [b - a for a, b in zip(self.lo, self.hi)]
        shaped = values.reshape(n[0], self.sub[0], n[1], self.sub[1], n[2], self.sub[2])
        total = shaped.sum(axis=(1, 3, 5), dtype=np.float32)
        return total / np.float32(self.sub[0] * self.sub[1] * self.sub[2])


def supersample(grid: Grid, body_from_scanner: np.ndarray, lo, hi, step_mm: float) -> Supersampled:
    """Sub-voxel centres of a voxel box, each voxel split into cells of at most ``step_mm``."""
    spacing = grid.spacing_mm
    sub = tuple(max(1, math.ceil(s / step_mm - 1e-6)) for s in spacing)
    axes = []
    for a, b, s in zip(lo, hi, sub):
        offsets = (np.arange(s) + 0.5) / s - 0.5
        axes.append((np.arange(a, b)[:, None] + offsets[None, :]).ravel())
    m = (body_from_scanner @ grid.affine).astype(np.float32)
    i, j, k = np.ix_(*(ax.astype(np.float32) for ax in axes))
    coords = [m[r, 0] * i + m[r, 1] * j + (m[r, 2] * k + m[r, 3]) for r in range(3)]
    steps = tuple(float(s / n) for s, n in zip(spacing, sub))
    return Supersampled(tuple(int(v) for v in lo), tuple(int(v) for v in hi), sub, *coords,
                        point_volume_mm3=grid.voxel_volume_mm3 / float(np.prod(sub)),
                        step_mm=float(np.prod(steps) ** (1 / 3)), step_per_axis_mm=steps)


def voxel_box(grid: Grid, body_from_scanner: np.ndarray, body_lo, body_hi, pad: int = 1):
    """Index box (lo, hi) of the grid voxels that cover a body-frame axis-aligned box."""
    corners = np.array([[x, y, z, 1.0] for x in (body_lo[0], body_hi[0])
                        for y in (body_lo[1], body_hi[1]) for z in (body_lo[2], body_hi[2])])
    to_index = np.linalg.inv(body_from_scanner @ grid.affine)
    idx = (corners @ to_index.T)[:, :3]
    lo = np.maximum(np.floor(idx.min(axis=0) + 0.5).astype(int) - pad, 0)
    hi = np.minimum(np.ceil(idx.max(axis=0) + 0.5).astype(int) + pad, grid.shape)
    return tuple(int(v) for v in lo), tuple(int(v) for v in np.maximum(hi, lo + 1))


def body_extent(grid: Grid, body_from_scanner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame bounding box of the whole grid."""
    n = np.asarray(grid.shape) - 0.5
    corners = np.array([[x, y, z, 1.0] for x in (-0.5, n[0]) for y in (-0.5, n[1])
                        for z in (-0.5, n[2])])
    pts = (corners @ (body_from_scanner @ grid.affine).T)[:, :3]
    return pts.min(axis=0), pts.max(axis=0)
