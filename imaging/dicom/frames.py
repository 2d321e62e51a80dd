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
from pydicom.datadict import dictionary_VR, tag_for_keyword
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
    component: str = ""  # magnitude / phase / real / imaginary, when the header says


def numbers(ds: Any, keyword: str) -> tuple[float, ...]:
    """All values of a numeric tag as floats (empty when absent or unreadable).

    Decimal/integer strings (DS, IS) are parsed straight from the raw bytes: pydicom's
    own conversion of them dominates header reading time on large series.
    """
    tag = tag_for_keyword(keyword)
    if ds is None or tag is None or tag not in ds:
        return ()
    value = ds.get_item(tag).value
    try:
        if isinstance(value, bytes) and dictionary_VR(tag) in ("DS", "IS"):
            text = value.decode("ascii", "replace").strip(" \x00")
            return tuple(float(v) for v in text.split("\\")) if text else ()
        value = getattr(ds, keyword)
        if value is None or value == "":
            return ()
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            return tuple(float(v) for v in value)
        return (float(value),)
    except (TypeError, ValueError):
        return ()


def text(ds: Any, keyword: str) -> str:
    """A string tag's raw text (multiple values joined by backslashes), '' when absent."""
    tag = tag_for_keyword(keyword)
    if ds is None or tag is None or tag not in ds:
        return ""
    value = ds.get_item(tag).value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    if value is None:
        return ""
    return "\\".join(map(str, value)) if isinstance(value, (list, tuple)) or \
        type(value).__name__ == "MultiValue" else str(value)


def number(ds: Any, keyword: str, default: float | None = None) -> float | None:
    """A numeric tag as float (first value of a multi-valued one), or ``default``."""
    values = numbers(ds, keyword)
    return values[0] if values else default


def triple(ds: Dataset, keyword: str, source: str, size: int) -> tuple[float, ...]:
    """``size`` finite numbers from a geometry tag, or DicomSeriesError naming the file."""
    out = numbers(ds, keyword)
    if len(out) != size or not np.all(np.isfinite(out)):
        raise DicomSeriesError(f"{source}: {keyword} is {getattr(ds, keyword, None)!r}; expected "
                               f"{size} numbers. The file lacks image geometry; it cannot be "
                               "placed in space")
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
            text(ds, "AcquisitionTime"), number(ds, "InstanceNumber", 0.0))


def echo_of(ds: Dataset) -> tuple[float | None, int | None]:
    te = number(ds, "EchoTime")
    echo_number = number(ds, "EchoNumbers")
    return te, (int(echo_number) if echo_number is not None else None)


_COMPONENTS = {"M": "magnitude", "MAGNITUDE": "magnitude", "P": "phase", "PHASE": "phase",
               "R": "real", "REAL": "real", "I": "imaginary", "IMAGINARY": "imaginary"}


def image_component(image_type: str) -> str:
    """'magnitude', 'phase', 'real', 'imaginary' from ImageType/FrameType values, or ''."""
    found = [_COMPONENTS[v] for v in image_type.upper().split("\\")[2:] if v in _COMPONENTS]
    return found[0] if found else ""


def classic_frame(ds: Dataset, path: Path) -> Frame:
    source = str(path)
    require_geometry(ds, source)
    orientation = triple(ds, "ImageOrientationPatient", source, 6)
    check_orientation(orientation, source)
    te, echo_number = echo_of(ds)
    return Frame(
        path=path, index=0, rows=int(ds.Rows), columns=int(ds.Columns), orientation=orientation,
        position_lps=triple(ds, "ImagePositionPatient", source, 3),
        pixel_spacing_mm=triple(ds, "PixelSpacing", source, 2),
        echo_time_ms=te, echo_number=echo_number, temporal_key=temporal_key(ds),
        slope=number(ds, "RescaleSlope", 1.0), intercept=number(ds, "RescaleIntercept", 0.0),
        thickness_mm=number(ds, "SpacingBetweenSlices") or number(ds, "SliceThickness"),
        component=image_component(text(ds, "ImageType")))


def frames_of(ds: Dataset, path: Path) -> list[Frame]:
    """Every 2-D image a header describes (classic, enhanced multi-frame or mosaic)."""
    from imaging.dicom.mosaic import is_mosaic, mosaic_frames
    from imaging.dicom.multiframe import is_multiframe, multiframe_frames
    if is_multiframe(ds):
        return multiframe_frames(ds, path)
    if is_mosaic(ds):
        return mosaic_frames(ds, path, classic_frame(ds, path))
    return [classic_frame(ds, path)]
