"""DICOM SR export: write -> read gives the same per-timepoint graft numbers and references."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from imaging.errors import DicomExportError, ImageReadError
from imaging.volume import LabelVolume
from segmentation import dicom_codes
from segmentation.dicom_seg import write_dicom_seg
from segmentation.dicom_sr import GraftTimepoint, read_dicom_sr, write_dicom_sr
from tests.segmentation.mr_series import write_mr_series

TIMEPOINTS = [
    GraftTimepoint("ses-pre", -3.0, 0.0, (0.0, 1.5)),
    GraftTimepoint("ses-d7", 7.0, 23.456789, (20.1, 27.3), 0.6123456789, (0.5, 0.7)),
    GraftTimepoint("ses-d30", 30.5, 12.3, None, 1 / 3, None),
]
STUDY_DATES = ["20250101", "20250111", "20250204"]


@dataclass(frozen=True)
class Study:
    source_files: list[list[Path]]
    seg_files: list[Path]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    """Three timepoints of one subject, each an MR series with a SEG holding a graft."""
    root = tmp_path_factory.mktemp("sr")
    sources, segs = [], []
    for i, date in enumerate(STUDY_DATES):
        series = write_mr_series(root / f"ses{i}", study_date=date, n_slices=6)
        labels = np.zeros(series.shape, dtype=np.uint8)
        labels[8:24, 8:24, 1:5] = 1
        labels[12:15, 12:16, 2:4] = 3
        segs.append(write_dicom_seg(LabelVolume(labels, series.affine), series.files,
                                    root / f"seg{i}.dcm"))
        sources.append(series.files)
    return Study(sources, segs)


@pytest.fixture(scope="module")
def sr_path(study: Study, tmp_path_factory) -> Path:
    # given out of day order: the report sorts by days
    order = [2, 0, 1]
    return write_dicom_sr([TIMEPOINTS[i] for i in order], [study.source_files[i] for i in order],
                          [study.seg_files[i] for i in order],
                          tmp_path_factory.mktemp("out") / "sr.dcm")


def test_numbers_read_back_unchanged(sr_path: Path) -> None:
    back = [r.measurement for r in read_dicom_sr(sr_path)]
    assert [tp.session for tp in back] == ["ses-pre", "ses-d7", "ses-d30"]
    for got, want in zip(back, TIMEPOINTS):
        assert got.days == want.days
        for name in ("graft_volume_mm3", "graft_volume_ci_mm3", "surviving_fraction",
                     "surviving_fraction_ci"):
            _assert_close(getattr(got, name), getattr(want, name))


def _assert_close(got, want) -> None:
    """Equal within 1e-12 relative; None only where None was written (pytest >= 9.2 refuses approx(None))."""
    if want is None:
        assert got is None
    else:
        assert got is not None and got == pytest.approx(want, rel=1e-12)


def test_not_quantifiable_fraction_is_a_qualitative_evaluation(sr_path: Path) -> None:
    report = hd.sr.MeasurementReport.from_sequence([hd.sr.srread(sr_path)])
    baseline = report.get_volumetric_roi_measurement_groups()[0]
    evaluations = baseline.get_qualitative_evaluations(name=dicom_codes.SURVIVING_FRACTION)
    assert len(evaluations) == 1 and evaluations[0].value == dicom_codes.NOT_QUANTIFIABLE
    assert not baseline.get_measurements(name=dicom_codes.SURVIVING_FRACTION)


def test_groups_reference_each_seg_graft_segment_with_one_tracking_uid(
        sr_path: Path, study: Study) -> None:
    back = read_dicom_sr(sr_path)
    seg_uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                for p in study.seg_files]
    assert [r.seg_sop_instance_uid for r in back] == seg_uids
    assert {r.segment_number for r in back} == {dicom_codes.GRAFT_LABEL}
    graft = hd.seg.segread(study.seg_files[0]).get_segment_description(3)
    assert {(r.tracking_id, r.tracking_uid) for r in back} == {
        ("sub-01 graft", str(graft.tracking_uid))}


def test_units_codes_and_document_type(sr_path: Path, study: Study) -> None:
    sr = hd.sr.srread(sr_path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr.StudyDate == STUDY_DATES[-1] and sr.PatientID == "sub-01"
    group = hd.sr.MeasurementReport.from_sequence([sr]).get_volumetric_roi_measurement_groups()[1]
    volume = group.get_measurements(name=dicom_codes.GRAFT_VOLUME)[0]
    fraction = group.get_measurements(name=dicom_codes.SURVIVING_FRACTION)[0]
    assert (volume.unit.value, volume.unit.scheme_designator) == ("mm3", "UCUM")
    assert (fraction.unit.value, fraction.name.scheme_designator) == ("{ratio}", "99GRAFTWATCH")


def test_evidence_lists_every_source_and_seg_instance(sr_path: Path, study: Study) -> None:
    sr = pydicom.dcmread(sr_path)
    listed = set()
    for seq in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for studies in sr.get(seq, []):
            for series in studies.ReferencedSeriesSequence:
                listed |= {str(i.ReferencedSOPInstanceUID) for i in series.ReferencedSOPSequence}
    files = [f for files in study.source_files for f in files] + study.seg_files
    assert listed == {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                      for f in files}


def test_value_outside_its_interval_is_refused(study: Study, tmp_path: Path) -> None:
    bad = GraftTimepoint("ses-d7", 7.0, 30.0, (20.0, 27.0))
    with pytest.raises(DicomExportError, match=r"outside its interval \(20.0, 27.0\)"):
        write_dicom_sr([bad], study.source_files[:1], study.seg_files[:1], tmp_path / "sr.dcm")
    assert list(tmp_path.iterdir()) == []


def test_mismatched_inputs_are_refused(study: Study, tmp_path: Path) -> None:
    with pytest.raises(DicomExportError, match="expected one series and one SEG per timepoint"):
        write_dicom_sr(TIMEPOINTS, study.source_files[:2], study.seg_files, tmp_path / "sr.dcm")


def test_seg_without_graft_segment_is_refused(study: Study, tmp_path: Path) -> None:
    with pytest.raises(DicomExportError, match="no graft segment"):
        write_dicom_sr(TIMEPOINTS[:1], study.source_files[:1], study.source_files[0][:1],
                       tmp_path / "sr.dcm")


def test_reading_a_non_report_is_refused(study: Study) -> None:
    with pytest.raises(ImageReadError, match="cannot be read as a TID 1500 measurement report"):
        read_dicom_sr(study.seg_files[0])


def test_seg_without_graft_voxels_is_still_referenced(tmp_path: Path) -> None:
    """A timepoint where no voxel is labelled graft (its SEG omits the empty frames) still gets
    a measurement group pointing at the SEG's graft segment, through the source series."""
    series = write_mr_series(tmp_path / "src", n_slices=4)
    labels = np.zeros(series.shape, dtype=np.uint8)
    labels[8:24, 8:24, 1:3] = 1
    seg = write_dicom_seg(LabelVolume(labels, series.affine), series.files, tmp_path / "seg.dcm")
    sr = write_dicom_sr([GraftTimepoint("ses-d7", 7.0, 0.8, (0.0, 2.0))], [series.files], [seg],
                        tmp_path / "sr.dcm")
    (back,) = read_dicom_sr(sr)
    written = pydicom.dcmread(seg, stop_before_pixels=True)
    graft = [s for s in written.SegmentSequence if s.SegmentLabel == "graft"][0]
    assert back.seg_sop_instance_uid == written.SOPInstanceUID
    assert back.segment_number == graft.SegmentNumber
    assert back.measurement.graft_volume_mm3 == pytest.approx(0.8)
