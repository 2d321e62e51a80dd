"""DICOM SEG output: graftwatch's masks written against the source series, and read back.

``write_dicom_seg`` takes a LabelVolume (or per-label probabilities) that is in the
source series' voxel space, in any axis order, and the source DICOM files. Each
source slice is matched to the mask by its ImagePositionPatient through the
mask's affine (``segmentation.dicom_grid``), so neither file order nor the
Volume's orientation matters, and a mask that is not on the source grid is refused.
One segment per label (1 cord, 2 lesion, 3 graft) with the coded terms and
tracking identifiers of ``segmentation.dicom_codes``. Probabilities give a
FRACTIONAL (PROBABILITY) SEG quantised to 1/255, labels a BINARY one.

``read_dicom_seg`` reads a SEG with highdicom and puts its frames, by their stored
plane positions, onto a reference grid: a Volume, or the grid ``imaging.load`` gives
the source files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from imaging.atomic import atomic_path
from imaging.errors import DicomExportError, ImageReadError
from imaging.volume import LabelVolume, Volume, require_same_space
from segmentation import dicom_codes
from segmentation.dicom_grid import FrameIndex, FramePlane, frame_index, single_frame_plane

log = logging.getLogger(__name__)

MAX_FRACTIONAL_VALUE = 255
MANUFACTURER = "graftwatch"


def software_version() -> str:
    """The installed graftwatch version, else the one pyproject.toml declares, else 'unknown'."""
    from importlib import metadata
    try:
        return metadata.version("graftwatch")
    except metadata.PackageNotFoundError:
        pass
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return "unknown"
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def read_source_datasets(source_files: Sequence[str | os.PathLike]) -> list[Dataset]:
    """Read every source file with pydicom (headers and pixels), checking they form one series."""
    if not source_files:
        raise DicomExportError("no source DICOM files given; pass the files of the series "
                               "the mask was computed on")
    datasets = []
    for path in source_files:
        try:
            datasets.append(pydicom.dcmread(path))
        except (OSError, InvalidDicomError) as exc:
            raise DicomExportError(f"{path}: cannot be read as DICOM ({exc}); pass the "
                                   "source series' image files") from exc
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(series) != 1:
        raise DicomExportError(f"source files belong to {len(series)} series "
                               f"({sorted(series)}); pass the files of one series")
    return [with_type2_patient_study(ds) for ds in datasets]


# Patient and General Study attributes of type 2: required to be present, allowed empty.
# Anonymised or synthetic series often leave them out; the derived objects copy them.
TYPE2_PATIENT_STUDY = {"PatientName": "", "PatientID": "", "PatientBirthDate": "",
                       "PatientSex": "", "StudyDate": "", "StudyTime": "",
                       "ReferringPhysicianName": "", "StudyID": "", "AccessionNumber": ""}


def with_type2_patient_study(ds: Dataset) -> Dataset:
    """``ds`` (read into memory, never written back) with absent type-2 attributes present
    and empty, as DICOM allows, so highdicom can copy the patient and study modules."""
    for keyword, empty in TYPE2_PATIENT_STUDY.items():
        if keyword not in ds:
            setattr(ds, keyword, empty)
    return ds


@dataclass(frozen=True)
class SegContents:
    """What a DICOM SEG holds, on a reference grid."""

    labels: LabelVolume
    probabilities: Volume | None
    tracking: Mapping[int, tuple[str, str]]  # label -> (tracking ID, tracking UID)
    sop_instance_uid: str
    referenced_series_uid: str


def write_dicom_seg(labels: LabelVolume, source_files: Sequence[str | os.PathLike],
                    out_path: str | os.PathLike, *, probabilities: Volume | None = None,
                    series_number: int = 300, subject_id: str | None = None,
                    tracking_ids: Mapping[int, str] | None = None,
                    content_label: str = "GRAFTWATCH",
                    content_description: str = "graftwatch cord, lesion and graft") -> Path:
    """Write ``labels`` (or ``probabilities``, channel k = label k) as a SEG of the source series.

    ``tracking_ids`` overrides the tracking ID per label; by default it is
    '<subject_id> <label name>' with ``subject_id`` defaulting to the source PatientID,
    and each tracking UID is derived from its ID (same subject and label -> same UID).
    """
    datasets = read_source_datasets(source_files)
    names = [str(p) for p in source_files]
    label_values = _segment_labels(labels, probabilities)
    frames = _frame_arrays(labels, probabilities, datasets, names, label_values)
    ids = _tracking_ids(label_values, datasets[0], subject_id, tracking_ids)
    descriptions = [_segment_description(i + 1, label, ids[label])
                    for i, label in enumerate(label_values)]
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=frames,
        segmentation_type="FRACTIONAL" if probabilities is not None else "BINARY",
        segment_descriptions=descriptions, series_instance_uid=hd.UID(),
        series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MANUFACTURER,
        software_versions=software_version(), device_serial_number="0",
        max_fractional_value=MAX_FRACTIONAL_VALUE, content_label=content_label,
        content_description=content_description, omit_empty_frames=bool(np.any(frames)))
    with atomic_path(out_path) as tmp:
        seg.save_as(tmp)
    log.info("wrote DICOM SEG %s (%d segments, %d frames)", out_path, len(label_values),
             int(seg.NumberOfFrames))
    return Path(out_path)


def _segment_labels(labels: LabelVolume, probabilities: Volume | None) -> list[int]:
    known = set(dicom_codes.LABEL_TERMS)
    found = {int(v) for v in np.unique(labels.array)} - {0}
    if found - known:
        raise DicomExportError(f"label volume holds values {sorted(found - known)}; expected "
                               f"0 (background) and {sorted(known)}")
    if probabilities is None:
        return sorted(known)
    require_same_space(labels, probabilities)
    arr = probabilities.array
    if arr.ndim != 4 or not 2 <= arr.shape[3] <= len(known) + 1:
        raise DicomExportError(f"probabilities have shape {arr.shape}; expected (x, y, z, label) "
                               f"with 2 to {len(known) + 1} channels, channel k = label k")
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise DicomExportError(f"probabilities range over [{np.nanmin(arr):.3g}, "
                               f"{np.nanmax(arr):.3g}] or are not finite; expected values in [0, 1]")
    return list(range(1, arr.shape[3]))


def _frame_arrays(labels: LabelVolume, probabilities: Volume | None, datasets: Sequence[Dataset],
                  names: Sequence[str], label_values: Sequence[int]) -> np.ndarray:
    """(frames, rows, columns, segments) in source-file order: bool, or float probabilities."""
    if probabilities is not None:
        channels = np.asarray(probabilities.array[..., 1:], dtype=np.float32)
    else:
        channels = np.stack([labels.array == v for v in label_values], axis=-1)
    covered = np.zeros(labels.spatial_shape, dtype=bool)
    frames = []
    for ds, name in zip(datasets, names):
        index = frame_index(single_frame_plane(ds, name), labels.affine, labels.spatial_shape, name)
        index.scatter(np.ones(index.inside.shape, dtype=bool), covered)
        frames.append(index.gather(channels))
    lost = int(np.count_nonzero(np.any(channels[~covered] > 0, axis=-1)))
    if not covered.any() or lost:
        raise DicomExportError(
            f"{lost} labelled voxels of the mask (shape {labels.spatial_shape}) lie outside the "
            f"{len(datasets)} source slices ({int(covered.sum())} voxels covered); expected the "
            "mask on the source series' grid: pass all files of the series it was computed on")
    return np.stack(frames)


def _tracking_ids(label_values: Sequence[int], source: Dataset, subject_id: str | None,
                  overrides: Mapping[int, str] | None) -> dict[int, str]:
    overrides = dict(overrides or {})
    subject = subject_id or str(source.get("PatientID", "") or "")
    if not subject and set(label_values) - set(overrides):
        raise DicomExportError("source images have no PatientID and no subject_id was given; "
                               "pass subject_id so tracking identifiers stay per subject")
    return {label: overrides.get(label) or dicom_codes.tracking_id(subject, label)
            for label in label_values}


def _segment_description(number: int, label: int, tracking_id: str) -> hd.seg.SegmentDescription:
    terms = dicom_codes.LABEL_TERMS[label]
    algorithm = hd.AlgorithmIdentificationSequence(
        name=MANUFACTURER, family=dicom_codes.ARTIFICIAL_INTELLIGENCE, version=software_version())
    regions = None if label == 1 else [dicom_codes.SPINAL_CORD]
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=terms.name,
        segmented_property_category=terms.category, segmented_property_type=terms.property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm, tracking_id=tracking_id,
        tracking_uid=dicom_codes.tracking_uid(tracking_id), anatomic_regions=regions)


def read_dicom_seg(path: str | os.PathLike,
                   reference: Volume | Sequence[str | os.PathLike]) -> SegContents:
    """Read a SEG onto ``reference``: a Volume's grid, or the grid its source files span."""
    seg = _read_seg(path)
    series_uid = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    if isinstance(reference, Volume):
        affine, shape = reference.affine, reference.spatial_shape
    else:
        affine, shape = _source_grid(reference, series_uid, path)
    segment_labels = _labels_of_segments(seg, path)
    channels = np.zeros(shape + (len(dicom_codes.LABEL_TERMS) + 1,), dtype=np.float32)
    for number, plane, pixels in _seg_frames(seg):
        index = _index_or_read_error(plane, affine, shape, path)
        index.scatter(pixels, channels[..., segment_labels[number]])
    fractional = seg.segmentation_type.value == "FRACTIONAL"
    if fractional:
        channels /= float(seg.MaximumFractionalValue)
    tracking = {segment_labels[n]: (str(seg.get_segment_description(n).tracking_id),
                                    str(seg.get_segment_description(n).tracking_uid))
                for n in seg.segment_numbers}
    labels, probabilities = _volumes_from_channels(channels, affine, fractional)
    return SegContents(labels, probabilities, tracking, str(seg.SOPInstanceUID), series_uid)


def _read_seg(path: str | os.PathLike) -> hd.seg.Segmentation:
    try:
        return hd.seg.segread(path)
    except (OSError, InvalidDicomError, ValueError, AttributeError) as exc:
        raise ImageReadError(f"{path}: cannot be read as a DICOM SEG ({exc}); expected a "
                             "Segmentation Storage file") from exc


def _source_grid(files: Sequence[str | os.PathLike], series_uid: str, path) -> tuple:
    """The grid imaging.load gives the source files (the grid every graftwatch mask is on)."""
    from imaging.io import load
    source = load(list(files), nonfinite="keep")
    if str(source.meta.get("series_uid")) != series_uid:
        raise ImageReadError(f"{path} references series {series_uid}, but the reference files "
                             f"are series {source.meta.get('series_uid')}; pass the SEG's "
                             "source series")
    return source.affine, source.spatial_shape


def _labels_of_segments(seg: hd.seg.Segmentation, path) -> dict[int, int]:
    mapping = {}
    for number in seg.segment_numbers:
        concept = seg.get_segment_description(number).segmented_property_type
        label = dicom_codes.label_for_property_type(concept)
        if label is None:
            raise ImageReadError(f"{path}: segment {number} has type {concept.meaning!r} "
                                 f"({concept.scheme_designator} {concept.value}); expected one "
                                 "of graftwatch's cord/lesion/graft terms")
        mapping[number] = label
    return mapping


def _seg_frames(seg: hd.seg.Segmentation):
    """(segment number, plane, stored pixels) for every frame of the SEG."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    for i, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        orientation = _functional(frame, shared, "PlaneOrientationSequence")
        measures = _functional(frame, shared, "PixelMeasuresSequence")
        plane = FramePlane.from_tags(frame.PlanePositionSequence[0].ImagePositionPatient,
                                     orientation.ImageOrientationPatient,
                                     measures.PixelSpacing, seg.Rows, seg.Columns)
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        yield number, plane, seg.get_stored_frame(i + 1).astype(np.float32)


def _functional(frame: Dataset, shared: Dataset, keyword: str) -> Dataset:
    group = frame if keyword in frame else shared
    return group[keyword].value[0]


def _index_or_read_error(plane: FramePlane, affine, shape, path) -> FrameIndex:
    try:
        return frame_index(plane, affine, shape, str(path))
    except DicomExportError as exc:
        raise ImageReadError(f"{exc} (reading {path} onto the reference grid; pass the "
                             "reference it was made on)") from exc


def _volumes_from_channels(channels: np.ndarray, affine: np.ndarray,
                           fractional: bool) -> tuple[LabelVolume, Volume | None]:
    """Labels (highest label wins where binary segments overlap; argmax when fractional)."""
    if fractional:
        channels[..., 0] = np.clip(1.0 - channels[..., 1:].sum(axis=-1), 0.0, 1.0)
        labels = np.argmax(channels, axis=-1).astype(np.uint8)
        return LabelVolume(labels, affine), Volume(channels, affine)
    labels = np.zeros(channels.shape[:3], dtype=np.uint8)
    for label in range(1, channels.shape[-1]):
        labels[channels[..., label] > 0] = label
    return LabelVolume(labels, affine), None
