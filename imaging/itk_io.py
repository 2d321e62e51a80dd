"""NRRD, MetaImage (.mha/.mhd) and other ITK formats through SimpleITK.

SimpleITK gives a (z, y, x) array and an LPS geometry (origin, spacing, direction).
This module, and only this module, turns them into graftwatch's (x, y, z) array and
voxel-to-RAS+ affine; no SimpleITK object or array leaves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imaging.bids import contrast_from_name
from imaging.errors import ImageReadError, InvalidVolumeError
from imaging.volume import Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_FORMATS = {".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "metaimage", ".mhd": "metaimage"}


def _read(path: Path):
    import SimpleITK as sitk
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(f"{path}: SimpleITK cannot read it ({first}); the file may be "
                             "truncated, corrupt or not an image: re-export or re-copy it") from exc


def itk_affine(spacing: Any, origin: Any, direction: Any) -> np.ndarray:
    """Voxel (i, j, k) -> RAS+ mm from ITK's LPS origin, spacing and 3x3 direction."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, dtype=np.float64).reshape(3, 3) * np.asarray(spacing)
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps


def _spatial_geometry(image, path: Path) -> np.ndarray:
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)
    if dim == 4 and not (np.allclose(direction[:3, 3], 0) and np.allclose(direction[3, :3], 0)):
        raise ImageReadError(f"{path}: the fourth axis is mixed with space in the direction "
                             f"matrix\n{direction}\nexpected a 3-D grid repeated along the "
                             "fourth axis; resample it to 3-D volumes first")
    return itk_affine(image.GetSpacing()[:3], image.GetOrigin()[:3], direction[:3, :3])


def _xyz_array(image, path: Path) -> np.ndarray:
    import SimpleITK as sitk
    dim = image.GetDimension()
    if dim < 3:
        raise InvalidVolumeError(f"{path}: image is {dim}-D (size {image.GetSize()}); expected "
                                 "a 3-D volume or 4-D series. A single 2-D slice cannot be "
                                 "analysed: export the whole series")
    if dim > 4:
        raise InvalidVolumeError(f"{path}: image is {dim}-D; expected 3-D or 4-D")
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise InvalidVolumeError(
            f"{path}: pixels are vectors of {image.GetNumberOfComponentsPerPixel()} components "
            f"({image.GetPixelIDTypeAsString()}); expected one value per voxel. Split the "
            "components into separate files (or save the series as a scalar 4-D image)")
    zyx = sitk.GetArrayFromImage(image)  # (z, y, x) or (t, z, y, x): never leaves this module
    return np.ascontiguousarray(zyx.transpose(tuple(range(zyx.ndim))[::-1]))


def _meta(image, path: Path, affine: np.ndarray) -> dict[str, Any]:
    header = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys()}
    suffix = path.suffix.lower()
    meta: dict[str, Any] = {"source": str(path), "format": _FORMATS.get(suffix, suffix.lstrip(".")),
                            "contrast": contrast_from_name(path),
                            "original_affine": tuple(map(tuple, affine)), "itk_header": header}
    if image.GetDimension() == 4:
        meta["fourth_axis"] = "time"
    return meta


def load_itk(path: Path) -> Volume:
    """Read an NRRD/MHA/MHD (or other SimpleITK-readable) file as a Volume in RAS+."""
    path = Path(path)
    image = _read(path)
    array = _xyz_array(image, path)
    affine = _spatial_geometry(image, path)
    try:
        return Volume(array, affine, _meta(image, path, affine))
    except InvalidVolumeError as exc:
        raise InvalidVolumeError(f"{path}: {exc}") from exc
