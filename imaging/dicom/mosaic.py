"""Siemens mosaics: one file holding every slice of a volume as tiles of one big image.

The Siemens CSA image header (read with nibabel's ``csareader``) gives the
number of tiles (NumberOfImagesInMosaic) and the slice normal along which the
tiles are stacked. ImagePositionPatient of a mosaic is the corner of the whole
big image placed as if it were one slice, so the first tile's true position is
moved by half the size difference between the mosaic and a tile.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from imaging.dicom.frames import Frame, number, text
from imaging.dicom.geometry import slice_normal
from imaging.errors import DicomSeriesError


def _csareader():
    with warnings.catch_warnings():  # nibabel.nicom warns that its readers are experimental
        warnings.simplefilter("ignore")
        from nibabel.nicom import csareader
    return csareader


def _csa_image_header(ds: Dataset) -> dict | None:
    reader = _csareader()
    try:
        return reader.get_csa_header(ds, "image")
    except reader.CSAReadError:
        return None


def is_mosaic(ds: Dataset) -> bool:
    return "MOSAIC" in text(ds, "ImageType").upper().split("\\") and (0x0029, 0x0010) in ds


def _csa_geometry(ds: Dataset, source: str) -> tuple[int, np.ndarray | None]:
    csa = _csa_image_header(ds)
    reader = _csareader()
    n_images = reader.get_n_mosaic(csa) if csa else None
    if not n_images:
        raise DicomSeriesError(
            f"{source}: Siemens mosaic without NumberOfImagesInMosaic in its CSA header (the "
            "header may have been removed by anonymisation); re-export the series unanonymised "
            "or as single-slice images")
    normal = reader.get_slice_normal(csa)
    return int(n_images), (None if normal is None else np.asarray(normal, dtype=float))


def mosaic_frames(ds: Dataset, path: Path, whole: Frame) -> list[Frame]:
    """One frame per tile, with the mosaic position correction and the CSA slice normal."""
    source = str(path)
    n_images, normal = _csa_geometry(ds, source)
    per_side = math.ceil(math.sqrt(n_images))
    rows, columns = whole.rows // per_side, whole.columns // per_side
    iop = np.asarray(whole.orientation)
    row_spacing, col_spacing = whole.pixel_spacing_mm
    first = (np.asarray(whole.position_lps)
             + iop[:3] * col_spacing * (whole.columns - columns) / 2
             + iop[3:] * row_spacing * (whole.rows - rows) / 2)
    if normal is None or np.linalg.norm(normal) < 0.5:
        normal = slice_normal(iop)
    step = number(ds, "SpacingBetweenSlices") or number(ds, "SliceThickness")
    if not step:
        raise DicomSeriesError(f"{source}: mosaic has neither SpacingBetweenSlices nor "
                               "SliceThickness; the slice step is unknown")
    return [replace(whole, index=k, rows=rows, columns=columns, mosaic_tiles=n_images,
                    position_lps=tuple(first + k * step * normal))
            for k in range(n_images)]


def split_mosaic(image: np.ndarray, n_images: int) -> np.ndarray:
    """(rows, cols) mosaic -> (n_images, tile rows, tile cols), tiles read row by row."""
    per_side = math.ceil(math.sqrt(n_images))
    rows, columns = image.shape[0] // per_side, image.shape[1] // per_side
    tiles = image[:per_side * rows, :per_side * columns].reshape(per_side, rows, per_side, columns)
    return tiles.transpose(0, 2, 1, 3).reshape(per_side * per_side, rows, columns)[:n_images]
