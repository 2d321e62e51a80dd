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
from imaging.volume import LabelVolume, Volume, checked_affine


# A target voxel whose source position lies this far (in voxels) beyond the outer edge
# of the source's field of view still counts as inside (floating-point slack).
_EDGE_SLACK_VOXELS = 1e-6


def _default_order(volume: Volume, order: int | None) -> int:
    if order is None:
        return 0 if isinstance(volume, LabelVolume) else 1
    if isinstance(volume, LabelVolume) and order != 0:
        raise InvalidVolumeError(f"labels resample with order 0 (nearest); got order={order}. "
                                 "Leave order unset, or resample volume.as_image() for soft masks")
    if order not in (0, 1, 2, 3, 4, 5):
        raise InvalidVolumeError(f"interpolation order {order!r}: expected 0 (nearest), "
                                 "1 (linear) or a spline order 2-5")
    return int(order)


def _source_dtype(dtype: np.dtype, order: int) -> np.dtype:
    """What the interpolator works in: floats stay, integers go float32 unless nearest."""
    if dtype == bool:
        return np.dtype(np.uint8)
    if np.issubdtype(dtype, np.floating) or order == 0:
        return dtype
    return np.dtype(np.float32)


def _in_field(matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, int, int],
              source_shape: tuple[int, ...]) -> np.ndarray | None:
    """Mask of target voxels whose source position lies inside the source's voxel extent.

    None when every target voxel is inside (checked on the target grid's corners,
    which suffices because the map is affine).
    """
    low = -0.5 - _EDGE_SLACK_VOXELS
    high = np.asarray(source_shape[:3], dtype=np.float64) - 0.5 + _EDGE_SLACK_VOXELS
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in shape], indexing="ij")).reshape(3, -1)
    at_corners = matrix @ corners + offset[:, None]
    if np.all(at_corners >= low) and np.all(at_corners <= high[:, None]):
        return None
    i = np.arange(shape[0], dtype=np.float64)[:, None]
    j = np.arange(shape[1], dtype=np.float64)[None, :]
    mask = np.empty(shape, dtype=bool)
    for k in range(shape[2]):  # one target slice at a time keeps memory small
        inside = np.ones(shape[:2], dtype=bool)
        for axis in range(3):
            pos = matrix[axis, 0] * i + matrix[axis, 1] * j + (matrix[axis, 2] * k + offset[axis])
            inside &= (pos >= low) & (pos <= high[axis])
        mask[:, :, k] = inside
    return mask


def _axis_map(matrix: np.ndarray, offset: np.ndarray) -> list[tuple[int, int, int]] | None:
    """(source axis, step, start) per target axis when the voxel map is a signed
    permutation with whole-voxel shifts (grids that differ by reorientation or cropping);
    None for anything that needs interpolation."""
    rounded = np.rint(matrix)
    shift = np.rint(offset)
    if not (np.allclose(matrix, rounded, rtol=0, atol=1e-6)
            and np.allclose(offset, shift, rtol=0, atol=1e-6)):
        return None
    if not np.array_equal(np.abs(rounded).sum(axis=0), [1, 1, 1]) or \
            not np.array_equal(np.abs(rounded).sum(axis=1), [1, 1, 1]):
        return None
    axes = [int(np.flatnonzero(rounded[:, t])[0]) for t in range(3)]
    return [(src, int(rounded[src, t]), int(shift[src])) for t, src in enumerate(axes)]


def _take_exact(array: np.ndarray, axis_map: list[tuple[int, int, int]],
                shape: tuple[int, int, int]) -> np.ndarray:
    """Copy voxels for a whole-voxel grid change: bit-exact, any dtype, 0 outside."""
    out = array.transpose([src for src, _, _ in axis_map] + list(range(3, array.ndim)))
    inside = []
    for axis, ((src, step, start), n) in enumerate(zip(axis_map, shape)):
        index = start + step * np.arange(n)
        valid = (index >= 0) & (index < array.shape[src])
        out = np.take(out, np.where(valid, index, 0), axis=axis)
        inside.append(valid)
    out = np.array(out)
    outside = ~(inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :])
    out[outside] = 0
    return out


def _resample_3d(array: np.ndarray, matrix: np.ndarray, offset: np.ndarray,
                 shape: tuple[int, int, int], order: int, inside: np.ndarray | None) -> np.ndarray:
    source = array.astype(_source_dtype(array.dtype, order), copy=False)
    diagonal = np.count_nonzero(matrix - np.diag(np.diag(matrix))) == 0
    out = ndimage.affine_transform(source, np.diag(matrix) if diagonal else matrix,
                                   offset=offset, output_shape=shape, order=order,
                                   mode="nearest", prefilter=order > 1)
    if inside is not None:
        out[~inside] = 0
    return out.astype(bool) if array.dtype == bool else out


def resample_to_grid(volume: Volume, shape: Sequence[int], affine: np.ndarray,
                     order: int | None = None) -> Volume:
    """Resample ``volume`` onto the grid (``shape``, ``affine``); same type, same metadata.

    Each target voxel centre is mapped through the affines to a source position and
    interpolated there (order 1 linear for images, 0 nearest for labels, which keep
    their dtype). Positions outside the source's field of view (the union of its
    voxels) get 0. A 4-D volume is resampled volume by volume along its fourth axis.
    """
    order = _default_order(volume, order)
    target_shape = tuple(int(s) for s in shape)
    if len(target_shape) != 3 or min(target_shape) < 1:
        raise InvalidVolumeError(f"target shape {tuple(shape)}: expected three positive sizes")
    target_affine = checked_affine(affine)
    vox_map = np.linalg.inv(volume.affine) @ target_affine  # target voxel -> source voxel
    if np.allclose(vox_map, np.eye(4), rtol=0, atol=1e-6) and target_shape == volume.spatial_shape:
        return type(volume)(volume.array, target_affine, volume.meta)
    matrix, offset = vox_map[:3, :3], vox_map[:3, 3]
    axis_map = _axis_map(matrix, offset)
    if axis_map is not None:
        return type(volume)(_take_exact(volume.array, axis_map, target_shape), target_affine,
                            volume.meta)
    inside = _in_field(matrix, offset, target_shape, volume.spatial_shape)
    if volume.array.ndim == 3:
        data = _resample_3d(volume.array, matrix, offset, target_shape, order, inside)
    else:
        data = np.stack([_resample_3d(volume.array[..., k], matrix, offset, target_shape,
                                      order, inside)
                         for k in range(volume.array.shape[3])], axis=-1)
    return type(volume)(data, target_affine, volume.meta)


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
