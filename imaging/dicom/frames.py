"""One 2-D image with its geometry: the unit every DICOM layout is broken into.

A classic file holds one frame; an enhanced multi-frame file holds many (see
``multiframe``); a Siemens mosaic holds one tile per slice (see ``mosaic``).
``frames_of`` turns a header (read without pixels) into its frames, so slices
can be grouped, sorted and checked before any pixel is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from imaging.dicom.geometry import check_orientation
from imaging.errors import DicomSeriesError


@dataclass(frozen=True)
class Frame:
    """Where one 2-D image lies, which echo/repetition it belongs to, how to scale it."""

    path: Path
    index: int  # position of this image in the file's decoded stack (frame or mosaic tile)
    rows: int
    columns: int
    orientation: tuple[float, ...]  # ImageOrientationPatient, LPS
    position_lps: tuple[float, float, float]
    pixel_spacing_mm: tuple[float, float]  # (row spacing, column spacing) as DICOM orders it
    echo_time_ms: float | None
    echo_number: int | None
    temporal_key: tuple
    slope: float = 1.0
    intercept: float = 0.0
    mosaic_tiles: int = 0  # images in the mosaic this frame is cut from (0: not a mosaic)
    thickness_mm: float | None = None  # slice step for a lone slice (SpacingBetweenSlices)


def number(ds: Any, keyword: str, default: float | None = None) -> float | None:
    """A numeric tag as float (first value of a multi-valued one), or ``default``."""
    value = getattr(ds, keyword, None) if ds is not None else None
    if value is None or value == "":
        return default
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
        if value is None:
            return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def triple(values: Any, name: str, source: str, size: int) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != size or not np.all(np.isfinite(out)):
        raise DicomSeriesError(f"{source}: {name} is {values!r}; expected {size} numbers. "
                               "The file lacks image geometry; it cannot be placed in space")
    return out


def require_geometry(ds: Dataset, source: str) -> None:
    missing = [k for k in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing")
               if k not in ds]
    if missing:
        raise DicomSeriesError(
            f"{source}: no {', '.join(missing)}; expected an MR/CT image with patient geometry "
            "(this looks like a secondary capture or a screenshot); choose the original series")


def temporal_key(ds: Dataset) -> tuple:
    """Orders repeated measurements of the same slice: acquisition, temporal position, time."""
    return (number(ds, "AcquisitionNumber", 0.0), number(ds, "TemporalPositionIdentifier", 0.0),
            str(getattr(ds, "AcquisitionTime", "")), number(ds, "InstanceNumber", 0.0))


def echo_of(ds: Dataset) -> tuple[float | None, int | None]:
    te = number(ds, "EchoTime")
    echo_number = number(ds, "EchoNumbers")
    return te, (int(echo_number) if echo_number is not None else None)


def classic_frame(ds: Dataset, path: Path) -> Frame:
    source = str(path)
    require_geometry(ds, source)
    orientation = triple(ds.ImageOrientationPatient, "ImageOrientationPatient", source, 6)
    check_orientation(orientation, source)
    te, echo_number = echo_of(ds)
    return Frame(
        path=path, index=0, rows=int(ds.Rows), columns=int(ds.Columns), orientation=orientation,
        position_lps=triple(ds.ImagePositionPatient, "ImagePositionPatient", source, 3),
        pixel_spacing_mm=triple(ds.PixelSpacing, "PixelSpacing", source, 2),
        echo_time_ms=te, echo_number=echo_number, temporal_key=temporal_key(ds),
        slope=number(ds, "RescaleSlope", 1.0), intercept=number(ds, "RescaleIntercept", 0.0),
        thickness_mm=number(ds, "SpacingBetweenSlices") or number(ds, "SliceThickness"))


def frames_of(ds: Dataset, path: Path) -> list[Frame]:
    """Every 2-D image a header describes (classic, enhanced multi-frame or mosaic)."""
    from imaging.dicom.mosaic import is_mosaic, mosaic_frames
    from imaging.dicom.multiframe import is_multiframe, multiframe_frames
    if is_multiframe(ds):
        return multiframe_frames(ds, path)
    if is_mosaic(ds):
        return mosaic_frames(ds, path, classic_frame(ds, path))
    return [classic_frame(ds, path)]
