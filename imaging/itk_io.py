"""NRRD, MetaImage (.mha/.mhd) and other ITK formats through SimpleITK.

SimpleITK gives a (z, y, x) array and an LPS geometry (origin, spacing, direction).
The conversion to graftwatch's (x, y, z) array and voxel-to-RAS+ affine is done by
``imaging.sitk_bridge.sitk_to_volume`` (the project's one SimpleITK <-> Volume
crossing); this module adds reading, checks and metadata. No SimpleITK object or
array leaves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imaging.bids import contrast_from_name
from imaging.errors import ImageReadError, InvalidVolumeError
from imaging.volume import Volume

_FORMATS = {".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "metaimage", ".mhd": "metaimage"}


def _read(path: Path):
    import SimpleITK as sitk
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(f"{path}: SimpleITK cannot read it ({first}); the file may be "
                             "truncated, corrupt or not an image: re-export or re-copy it") from exc


def _check_shape(image, path: Path) -> None:
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
    if dim == 4:
        direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(4, 4)
        if not (np.allclose(direction[:3, 3], 0) and np.allclose(direction[3, :3], 0)):
            raise ImageReadError(f"{path}: the fourth axis is mixed with space in the direction "
                                 f"matrix\n{direction}\nexpected a 3-D grid repeated along the "
                                 "fourth axis; resample it to 3-D volumes first")


def _array_and_affine(image) -> tuple[np.ndarray, np.ndarray]:
    """(x, y, z[, n]) voxels and the RAS+ affine, through the SimpleITK bridge."""
    from imaging.sitk_bridge import sitk_to_volume
    if image.GetDimension() == 3:
        vol = sitk_to_volume(image)
        return vol.array, vol.affine
    frames = [sitk_to_volume(image[:, :, :, t]) for t in range(image.GetSize()[3])]
    return np.stack([f.array for f in frames], axis=-1), frames[0].affine


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
    _check_shape(image, path)
    try:
        array, affine = _array_and_affine(image)
        return Volume(array, affine, _meta(image, path, affine))
    except InvalidVolumeError as exc:
        raise InvalidVolumeError(f"{path}: {exc}") from exc
