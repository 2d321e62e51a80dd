"""Enhanced multi-frame objects: per-frame functional groups, with shared groups as fallback.

Each frame's plane position, orientation, pixel measures, echo time (MR Echo
Sequence / EffectiveEchoTime) and rescale come from its own item of the
Per-frame Functional Groups Sequence when present, else from the Shared
Functional Groups Sequence. Repeated frames at one position are ordered by
temporal position (Frame Content Sequence), then by frame number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from imaging.dicom.frames import Frame, image_component, number, text, triple
from imaging.dicom.geometry import check_orientation
from imaging.errors import DicomSeriesError


def is_multiframe(ds: Dataset) -> bool:
    return "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds


def _item(groups: list[Dataset], sequence: str) -> Dataset | None:
    """First item of ``sequence`` in the first group (per-frame, then shared) that has it."""
    for group in groups:
        if group is not None and sequence in group and len(group[sequence].value):
            return group[sequence].value[0]
    return None


def _groups(ds: Dataset, index: int) -> list[Any]:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    return [per_frame[index] if per_frame is not None and index < len(per_frame) else None,
            shared[0] if shared else None]


def _geometry(groups: list[Any], source: str) -> tuple[tuple, tuple, tuple]:
    position = _item(groups, "PlanePositionSequence")
    orientation = _item(groups, "PlaneOrientationSequence")
    measures = _item(groups, "PixelMeasuresSequence")
    if position is None or orientation is None or measures is None:
        raise DicomSeriesError(
            f"{source}: enhanced multi-frame object without plane position, plane orientation "
            "or pixel measures functional groups; it cannot be placed in space")
    iop = triple(orientation, "ImageOrientationPatient", source, 6)
    check_orientation(iop, source)
    return (iop, triple(position, "ImagePositionPatient", source, 3),
            triple(measures, "PixelSpacing", source, 2))


def _frame(ds: Dataset, path: Path, index: int) -> Frame:
    source = f"{path} (frame {index + 1})"
    groups = _groups(ds, index)
    orientation, position, spacing = _geometry(groups, source)
    echo = _item(groups, "MREchoSequence")
    scale = _item(groups, "PixelValueTransformationSequence")
    content = _item(groups, "FrameContentSequence")
    kind = _item(groups, "MRImageFrameTypeSequence")
    measures = _item(groups, "PixelMeasuresSequence")
    return Frame(
        path=path, index=index, rows=int(ds.Rows), columns=int(ds.Columns),
        orientation=orientation, position_lps=position, pixel_spacing_mm=spacing,
        echo_time_ms=number(echo, "EffectiveEchoTime", number(ds, "EchoTime")),
        echo_number=None,
        temporal_key=(number(content, "TemporalPositionIndex", 0.0),
                      str(getattr(content, "FrameAcquisitionDateTime", "")), index),
        slope=number(scale, "RescaleSlope", number(ds, "RescaleSlope", 1.0)),
        intercept=number(scale, "RescaleIntercept", number(ds, "RescaleIntercept", 0.0)),
        thickness_mm=number(measures, "SpacingBetweenSlices") or number(measures, "SliceThickness"),
        component=(text(kind, "ComplexImageComponent").lower()
                   or image_component(text(kind, "FrameType"))))


def multiframe_frames(ds: Dataset, path: Path) -> list[Frame]:
    n_frames = int(number(ds, "NumberOfFrames", 1.0))
    return [_frame(ds, path, i) for i in range(n_frames)]


def first_functional_value(ds: Dataset, sequence: str, keyword: str) -> float | None:
    """A numeric value from a functional group (per-frame item 1, then shared), for metadata."""
    return number(_item(_groups(ds, 0), sequence), keyword)
