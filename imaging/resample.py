"""Resampling a Volume onto another grid: linear for images, nearest for labels.

Every function maps each target voxel to a source voxel through the two affines
(target voxel -> RAS mm -> source voxel), so grids of different orientation,
spacing or obliquity line up in space. Out-of-field voxels are 0.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from imaging.errors import InvalidVolumeError
from imaging.volume import LabelVolume, Volume


def _default_order(volume: Volume, order: int | None) -> int:
    if order is None:
        return 0 if isinstance(volume, LabelVolume) else 1
    if isinstance(volume, LabelVolume) and order != 0:
        raise InvalidVolumeError(f"labels resample with order 0 (nearest); got order={order}")
    return int(order)


def _resample_3d(array: np.ndarray, matrix: np.ndarray, offset: np.ndarray,
                 shape: tuple[int, int, int], order: int) -> np.ndarray:
    if np.issubdtype(array.dtype, np.floating) or order == 0:
        source = array
    else:
        source = array.astype(np.float32)
    out = ndimage.affine_transform(source, matrix, offset=offset, output_shape=shape,
                                   order=order, mode="constant", cval=0.0, prefilter=order > 1)
    return out


def resample_to_grid(volume: Volume, shape: Sequence[int], affine: np.ndarray,
                     order: int | None = None) -> Volume:
    """Resample ``volume`` onto the grid (``shape``, ``affine``); same type, same metadata."""
    order = _default_order(volume, order)
    target_shape = tuple(int(s) for s in shape)
    if len(target_shape) != 3 or min(target_shape) < 1:
        raise InvalidVolumeError(f"target shape {shape}: expected three positive sizes")
    # target voxel -> source voxel
    vox_map = np.linalg.inv(volume.affine) @ np.asarray(affine, dtype=np.float64)
    matrix, offset = vox_map[:3, :3], vox_map[:3, 3]
    if np.allclose(vox_map, np.eye(4), atol=1e-6) and target_shape == volume.spatial_shape:
        return type(volume)(volume.array, affine, volume.meta)
    if volume.array.ndim == 3:
        data = _resample_3d(volume.array, matrix, offset, target_shape, order)
    else:
        data = np.stack([_resample_3d(volume.array[..., k], matrix, offset, target_shape, order)
                         for k in range(volume.array.shape[3])], axis=-1)
    return type(volume)(data, affine, volume.meta)


def resample_like(volume: Volume, reference: Volume, order: int | None = None) -> Volume:
    """Resample ``volume`` onto ``reference``'s voxel grid."""
    return resample_to_grid(volume, reference.spatial_shape, reference.affine, order=order)


def grid_for_spacing(volume: Volume, spacing_mm: Sequence[float]) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine covering the same field of view as ``volume`` at ``spacing_mm``.

    Axes keep their directions; the new grid's corner (voxel edge) matches the old one.
    """
    new_spacing = np.asarray([float(s) for s in spacing_mm], dtype=np.float64)
    if new_spacing.shape != (3,) or np.any(new_spacing <= 0) or not np.all(np.isfinite(new_spacing)):
        raise InvalidVolumeError(f"spacing {spacing_mm}: expected three positive sizes in mm")
    old_spacing = np.asarray(volume.spacing)
    extent = old_spacing * np.asarray(volume.spatial_shape)
    shape = tuple(int(max(1, round(e / s))) for e, s in zip(extent, new_spacing))
    directions = volume.affine[:3, :3] / old_spacing
    affine = np.eye(4)
    affine[:3, :3] = directions * new_spacing
    # keep the outer edge of voxel (0,0,0) in place: centre moves by half the size change
    corner = volume.affine[:3, 3] - directions @ (old_spacing / 2)
    affine[:3, 3] = corner + directions @ (new_spacing / 2)
    return shape, affine


def resample_to_spacing(volume: Volume, spacing_mm: Sequence[float],
                        order: int | None = None) -> Volume:
    """Resample to a new voxel size (mm) over the same field of view."""
    shape, affine = grid_for_spacing(volume, spacing_mm)
    return resample_to_grid(volume, shape, affine, order=order)
