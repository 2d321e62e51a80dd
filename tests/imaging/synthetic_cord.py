"""A continuous synthetic neck for registration tests: sampled on any grid, moved by any transform.

The anatomy is a function of RAS+ position (mm), so a session with another
resolution, orientation or position is made by sampling the same function, not
by resampling an image (which would blur the truth). A curved elliptical cord
(1.0) with mottled texture sits in a CSF annulus (2.2) inside soft tissue (0.5)
crossed by vertebrae (1.1) and discs (2.0) every 16 mm along S, so the cord has
features in all three directions. Rician noise is added on request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.rigid import RigidTransform
from imaging.volume import LabelVolume, Volume


@dataclass(frozen=True)
class Neck:
    """Random texture parameters; build with :func:`make_neck`."""

    wave_vectors: np.ndarray  # (K, 3) rad/mm
    phases: np.ndarray        # (K,)

    def cord_center(self, s_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 3.0 * np.sin(s_mm / 30.0), 2.0 * np.cos(s_mm / 25.0) - 2.0

    def cord_radius(self, points: np.ndarray) -> np.ndarray:
        """Elliptical 'radius': 1 on the cord surface (about 5 x 3.5 mm, varying along S)."""
        cx, cy = self.cord_center(points[..., 2])
        swell = 1.0 + 0.12 * np.sin(points[..., 2] / 6.0)
        return np.hypot((points[..., 0] - cx) / 5.0, (points[..., 1] - cy) / 3.5) / swell

    def texture(self, points: np.ndarray) -> np.ndarray:
        """Smooth random pattern with unit standard deviation."""
        waves = np.cos(points @ self.wave_vectors.T + self.phases)
        return waves.sum(axis=-1) * np.sqrt(2.0 / len(self.phases))

    def intensity(self, points: np.ndarray) -> np.ndarray:
        r = self.cord_radius(points)
        texture = self.texture(points)
        s = points[..., 2]
        disc = np.abs(((s + 8.0) % 16.0) - 8.0) < 2.5
        in_spine = np.hypot(points[..., 0] / 9.0, (points[..., 1] + 12.0) / 5.0) < 1
        tissue = np.where(in_spine, np.where(disc, 2.0, 1.1), 0.5 + 0.05 * texture)
        csf_edge = np.where(disc, 1.35, 1.7)
        csf = np.where(r < csf_edge, 2.2, tissue)
        return np.where(r < 1.0, 1.0 + 0.1 * texture, csf)


def make_neck(rng: np.random.Generator, n_waves: int = 12) -> Neck:
    directions = rng.normal(size=(n_waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavelengths = rng.uniform(4.0, 12.0, size=(n_waves, 1))
    return Neck(2 * np.pi * directions / wavelengths, rng.uniform(0, 2 * np.pi, n_waves))


def grid_affine(spacing_mm, codes_matrix, center_ras, shape) -> np.ndarray:
    """Voxel -> RAS affine: axes along the columns of ``codes_matrix``, centre ``center_ras``."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(codes_matrix, dtype=float) * np.asarray(spacing_mm, dtype=float)
    half = (np.asarray(shape) - 1) / 2.0
    affine[:3, 3] = np.asarray(center_ras, dtype=float) - affine[:3, :3] @ half
    return affine


def _voxel_points(affine: np.ndarray, shape, offsets: np.ndarray) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"),
                   axis=-1)
    return (idx + offsets) @ affine[:3, :3].T + affine[:3, 3]


def _subvoxel_offsets(spacing_mm, step_mm: float = 0.8) -> list[np.ndarray]:
    """Offsets (voxel units) that average thick voxels over their extent (partial volume)."""
    counts = [max(1, int(np.ceil(s / step_mm))) for s in spacing_mm]
    axes = [(np.arange(n) + 0.5) / n - 0.5 for n in counts]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return list(grid)


def sample_session(neck: Neck, affine: np.ndarray, shape, motion: RigidTransform,
                   rng: np.random.Generator | None = None, noise_sigma: float = 0.05) -> Volume:
    """The neck seen on a grid, after ``motion`` (fixed -> this session's space).

    A point q of this session shows the anatomy found at ``motion^-1(q)`` in the
    fixed space. Rician noise of ``noise_sigma`` when ``rng`` is given.
    """
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    back = motion.inverse()
    total = np.zeros(tuple(shape))
    offsets = _subvoxel_offsets(spacing)
    for offset in offsets:
        points = _voxel_points(affine, shape, offset)
        total += neck.intensity(back.transform_points(points.reshape(-1, 3)).reshape(points.shape))
    image = total / len(offsets)
    if rng is not None:
        image = np.hypot(image + rng.normal(0, noise_sigma, image.shape),
                         rng.normal(0, noise_sigma, image.shape))
    return Volume(image.astype(np.float32), affine)


def cord_mask(neck: Neck, affine: np.ndarray, shape,
              motion: RigidTransform | None = None) -> LabelVolume:
    """The cord on a grid (after ``motion``): voxel centres inside the ellipse."""
    points = _voxel_points(affine, shape, np.zeros(3))
    if motion is not None:
        points = motion.inverse().transform_points(points.reshape(-1, 3)).reshape(points.shape)
    return LabelVolume((neck.cord_radius(points) < 1.0).astype(np.uint8), affine)
