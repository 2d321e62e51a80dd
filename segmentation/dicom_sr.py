"""DICOM SR output: the graft's volume and surviving fraction per timepoint (TID 1500), read back.

One Comprehensive 3D SR holding a Measurement Report (TID 1500) with, per timepoint,
a Volumetric ROI measurement group (TID 1411) that references the graft segment of
that timepoint's SEG and carries the SEG segment's tracking ID and UID (the same at
every timepoint of a subject). Each group holds:

- Volume (SCT 118565006) in mm3 (UCUM "mm3");
- Surviving graft fraction (99GRAFTWATCH GW001) in UCUM "{ratio}", or, when the
  fraction is not quantifiable (a baseline scan, an untrustworthy label), a
  qualitative evaluation "Surviving graft fraction" = "Not quantifiable" (GW003);
- the confidence interval of each number as the standard measurement
  uncertainties of TID 310 (SCT 371886008 "+, range of upper measurement
  uncertainty" = high - value, SCT 371885007 "-, range of lower measurement
  uncertainty" = value - low);
- the time point context (TID 1502): the session label as "Time Point", its order,
  pre- or post-operative type, and the days as "Longitudinal Temporal Offset from
  Event" (UCUM "d") from the event 99GRAFTWATCH GW002 "Cell transplantation".

The SR belongs to the study of the latest timepoint; the other studies are listed
as evidence.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes

from imaging.atomic import atomic_path
from imaging.errors import DicomExportError, ImageReadError
from segmentation import dicom_codes
from segmentation.dicom_seg import MANUFACTURER, software_version

log = logging.getLogger(__name__)

UPPER_UNCERTAINTY = "371886008"
LOWER_UNCERTAINTY = "371885007"
TIME_POINT = "C2348792"
TEMPORAL_OFFSET = "128740"


@dataclass(frozen=True)
class GraftTimepoint:
    """The graft's numbers at one timepoint; intervals are (low, high), None when absent."""

    session: str
    days: float
    graft_volume_mm3: float
    graft_volume_ci_mm3: tuple[float, float] | None = None
    surviving_fraction: float | None = None
    surviving_fraction_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReportedTimepoint:
    """One measurement group read back from an SR."""

    measurement: GraftTimepoint
    seg_sop_instance_uid: str
    segment_number: int
    tracking_id: str
    tracking_uid: str


def write_dicom_sr(timepoints: Sequence[GraftTimepoint],
                   source_files: Sequence[Sequence[str | os.PathLike]],
                   seg_files: Sequence[str | os.PathLike], out_path: str | os.PathLike, *,
                   series_number: int = 400) -> Path:
    """Write one SR for a subject: ``timepoints[i]`` was measured on the series
    ``source_files[i]`` and segmented in ``seg_files[i]`` (its graft segment is referenced)."""
    if not timepoints or not len(timepoints) == len(source_files) == len(seg_files):
        raise DicomExportError(
            f"got {len(timepoints)} timepoints, {len(source_files)} source series and "
            f"{len(seg_files)} SEG files; expected one series and one SEG per timepoint (>= 1)")
    order = sorted(range(len(timepoints)), key=lambda i: timepoints[i].days)
    groups, evidence = [], []
    for rank, i in enumerate(order):
        seg = _read_dataset(seg_files[i], "SEG")
        groups.append(_measurement_group(timepoints[i], seg, rank + 1, seg_files[i]))
        evidence = [*(_read_dataset(f, "source image") for f in source_files[i]), seg, *evidence]
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(),
        procedure_reported=codes.SCT.ImagingProcedure, imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=hd.UID(),
        series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, series_description="graftwatch graft survival")
    with atomic_path(out_path) as tmp:
        sr.save_as(tmp)
    log.info("wrote DICOM SR %s (%d timepoints)", out_path, len(groups))
    return Path(out_path)


def _read_dataset(path: str | os.PathLike, kind: str) -> Dataset:
    from segmentation.dicom_seg import with_type2_patient_study
    try:
        return with_type2_patient_study(pydicom.dcmread(path, stop_before_pixels=True))
    except (OSError, InvalidDicomError) as exc:
        raise DicomExportError(f"{path}: cannot read this {kind} as DICOM ({exc}); pass the "
                               f"{kind} files of each timepoint") from exc


def _observation_context() -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=dicom_codes.derived_uid("graftwatch device"), name=MANUFACTURER,
        manufacturer_name=MANUFACTURER, model_name=software_version())
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def _graft_segment(seg: Dataset, path) -> Dataset:
    for item in seg.get("SegmentSequence", []):
        concept = item.SegmentedPropertyTypeCodeSequence[0]
        if (concept.CodeValue, concept.CodingSchemeDesignator) == (
                dicom_codes.LABEL_TERMS[dicom_codes.GRAFT_LABEL].property_type.value, "SCT"):
            return item
    raise DicomExportError(f"{path}: no graft segment (SCT 246345001 'Graft material'); pass "
                           "the SEG graftwatch wrote for this timepoint")


def _measurement_group(tp: GraftTimepoint, seg: Dataset, order: int, seg_path):
    segment = _graft_segment(seg, seg_path)
    tracking = hd.sr.TrackingIdentifier(uid=segment.TrackingUID, identifier=segment.TrackingID)
    referenced = _referenced_segment(seg, int(segment.SegmentNumber))
    measurements = [_measurement(dicom_codes.GRAFT_VOLUME, tp.graft_volume_mm3,
                                 dicom_codes.CUBIC_MILLIMETER, tp.graft_volume_ci_mm3, tp)]
    evaluations = None
    if tp.surviving_fraction is None:
        evaluations = [hd.sr.QualitativeEvaluation(dicom_codes.SURVIVING_FRACTION,
                                                   dicom_codes.NOT_QUANTIFIABLE)]
    else:
        measurements.append(_measurement(dicom_codes.SURVIVING_FRACTION, tp.surviving_fraction,
                                         dicom_codes.RATIO, tp.surviving_fraction_ci, tp))
    context = hd.sr.TimePointContext(
        time_point=tp.session, time_point_order=order,
        time_point_type=dicom_codes.PRE_OPERATIVE if tp.days < 0 else dicom_codes.POST_OPERATIVE,
        temporal_offset_from_event=hd.sr.LongitudinalTemporalOffsetFromEvent(
            value=float(tp.days), unit=dicom_codes.DAY,
            event_type=dicom_codes.CELL_TRANSPLANTATION))
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, referenced_segment=referenced, time_point_context=context,
        finding_type=dicom_codes.LABEL_TERMS[dicom_codes.GRAFT_LABEL].property_type,
        finding_sites=[hd.sr.FindingSite(dicom_codes.SPINAL_CORD)],
        algorithm_id=hd.sr.AlgorithmIdentification(name=MANUFACTURER, version=software_version()),
        measurements=measurements, qualitative_evaluations=evaluations)


def _referenced_segment(seg: Dataset, number: int) -> hd.sr.ReferencedSegment:
    """The segment with its frames' source images; an empty segment (no graft voxel, frames
    omitted) is referenced with its source series instead."""
    frames = [f for f in seg.get("PerFrameFunctionalGroupsSequence", [])
              if int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == number]
    if frames:
        return hd.sr.ReferencedSegment.from_segmentation(seg, segment_number=number)
    return hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
        segment_number=number, source_series=hd.sr.SourceSeriesForSegmentation(
            seg.ReferencedSeriesSequence[0].SeriesInstanceUID))


def _measurement(name, value: float, unit, ci: tuple[float, float] | None,
                 tp: GraftTimepoint) -> hd.sr.Measurement:
    properties = None
    if ci is not None:
        low, high = (float(v) for v in ci)
        if not low <= value <= high:
            raise DicomExportError(f"timepoint {tp.session!r}: {name.meaning} {value} lies outside "
                                   f"its interval ({low}, {high}); expected low <= value <= high")
        properties = hd.sr.MeasurementProperties(upper_measurement_uncertainty=high - value,
                                                 lower_measurement_uncertainty=value - low)
    return hd.sr.Measurement(name=name, value=float(value), unit=unit, properties=properties)


def read_dicom_sr(path: str | os.PathLike) -> list[ReportedTimepoint]:
    """The per-timepoint graft numbers of an SR written by ``write_dicom_sr``, in day order."""
    try:
        sr = hd.sr.srread(path)
        report = hd.sr.MeasurementReport.from_sequence([sr])
    except (OSError, InvalidDicomError, ValueError, AttributeError, RuntimeError) as exc:
        # highdicom raises RuntimeError for a DICOM file that is not an SR
        raise ImageReadError(f"{path}: cannot be read as a TID 1500 measurement report ({exc}); "
                             "expected an SR written by graftwatch") from exc
    results = [_read_group(group, path) for group in report.get_volumetric_roi_measurement_groups()]
    return sorted(results, key=lambda r: r.measurement.days)


def _read_group(group, path) -> ReportedTimepoint:
    volume, volume_ci = _read_measurement(group, dicom_codes.GRAFT_VOLUME, path)
    fraction, fraction_ci = (None, None)
    if group.get_measurements(name=dicom_codes.SURVIVING_FRACTION):
        fraction, fraction_ci = _read_measurement(group, dicom_codes.SURVIVING_FRACTION, path)
    session = _find_item(group, TIME_POINT)
    offset = _find_item(group, TEMPORAL_OFFSET)
    if session is None or offset is None:
        raise ImageReadError(f"{path}: a measurement group has no time point context; expected "
                             "an SR written by graftwatch")
    tp = GraftTimepoint(str(session.TextValue), float(offset.MeasuredValueSequence[0].NumericValue),
                        volume, volume_ci, fraction, fraction_ci)
    segment = group.referenced_segment
    return ReportedTimepoint(tp, str(segment.referenced_sop_instance_uid),
                             int(segment.referenced_segment_numbers[0]),
                             str(group.tracking_identifier), str(group.tracking_uid))


def _read_measurement(group, name, path) -> tuple[float, tuple[float, float] | None]:
    found = group.get_measurements(name=name)
    if len(found) != 1:
        raise ImageReadError(f"{path}: {len(found)} '{name.meaning}' measurements in a group; "
                             "expected exactly one")
    value = float(found[0].value)
    upper, lower = _find_item(found[0], UPPER_UNCERTAINTY), _find_item(found[0], LOWER_UNCERTAINTY)
    if upper is None or lower is None:
        return value, None
    up = float(upper.MeasuredValueSequence[0].NumericValue)
    down = float(lower.MeasuredValueSequence[0].NumericValue)
    return value, (value - down, value + up)


def _find_item(item, code_value: str):
    """Depth-first search of an SR content tree (an item or a sequence of items) for the item
    whose concept name has this code."""
    if isinstance(item, Dataset):
        children = item.ContentSequence if "ContentSequence" in item else []
    else:
        children = item
    for child in children:
        if child.ConceptNameCodeSequence[0].CodeValue == code_value:
            return child
        found = _find_item(child, code_value)
        if found is not None:
            return found
    return None
