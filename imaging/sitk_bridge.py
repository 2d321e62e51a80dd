"""Volume <-> SimpleITK image, the one place imaging modules cross into SimpleITK.

A Volume is (x, y, z) with a voxel -> RAS+ affine; a SimpleITK image keeps its
voxels (z, y, x) in a NumPy view and its geometry (origin, spacing, direction)
in LPS. These two functions translate one into the other so that callers only
ever handle ``SimpleITK.Image`` objects (which carry their geometry) or Volumes,
never a bare SimpleITK array. Rigid/affine transforms between RAS and LPS are
converted here too.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import SimpleITK as sitk

from imaging.errors import InvalidVolumeError
from imaging.volume import LabelVolume, Volume

# RAS <-> LPS: flip the first two world axes (its own inverse).
_FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])


def _geometry_lps(affine: np.ndarray) -> tuple[tuple, tuple, tuple]:
    lps = _FLIP_XY @ affine
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    direction = lps[:3, :3] / spacing
    return (tuple(float(v) for v in lps[:3, 3]), tuple(float(s) for s in spacing),
            tuple(float(v) for v in direction.ravel()))


def volume_to_sitk(volume: Volume, index: int | None = None,
                   dtype: Any = None) -> sitk.Image:
    """A 3-D SimpleITK image (LPS geometry) of ``volume`` or of one of its echoes.

    ``index`` picks the volume along the fourth axis of a 4-D Volume (required
    for 4-D input); ``dtype`` casts the voxels first (e.g. ``np.float32`` for filters
    that need floating point input). Boolean masks become uint8.
    """
    array = np.asarray(volume.array)
    if array.ndim == 4:
        if index is None:
            raise InvalidVolumeError(
                f"volume has shape {volume.shape}; a SimpleITK image is 3-D, so pass index= "
                f"to choose one of its {array.shape[3]} volumes")
        array = array[..., index]
    elif index not in (None, 0):
        raise InvalidVolumeError(f"volume is 3-D; index {index} does not exist")
    if dtype is not None:
        array = array.astype(dtype)
    elif array.dtype == bool:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    origin, spacing, direction = _geometry_lps(volume.affine)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def affine_from_sitk(image: sitk.Image) -> np.ndarray:
    """The voxel -> RAS+ affine of a 3-D SimpleITK image."""
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing
    lps[:3, 3] = image.GetOrigin()
    return _FLIP_XY @ lps


def sitk_to_volume(image: sitk.Image, meta: Mapping[str, Any] | None = None,
                   labels: bool = False) -> Volume:
    """A Volume (or LabelVolume with ``labels``) from a 3-D SimpleITK image."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidVolumeError(
            f"SimpleITK image has dimension {image.GetDimension()} with "
            f"{image.GetNumberOfComponentsPerPixel()} components; expected a scalar 3-D image")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    kind = LabelVolume if labels else Volume
    return kind(np.ascontiguousarray(array), affine_from_sitk(image), meta or {})


def ras_matrix_to_lps(matrix_ras: np.ndarray) -> np.ndarray:
    """A 4x4 point transform in RAS+ mm expressed in LPS mm (and back: it is symmetric)."""
    return _FLIP_XY @ np.asarray(matrix_ras, dtype=np.float64) @ _FLIP_XY


def point_ras_to_lps(points: np.ndarray) -> np.ndarray:
    """(N, 3) or (3,) points from RAS+ to LPS (or back)."""
    pts = np.array(points, dtype=np.float64)
    pts[..., :2] *= -1.0
    return pts
