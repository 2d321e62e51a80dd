"""Study discovery from BIDS subject folders and DICOM trees."""

from __future__ import annotations

import datetime as dt
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imaging.errors import StudyError
from imaging.study import Subject, discover_subject, discover_subjects

SESSIONS = {"ses-01": "-3", "ses-02": "1", "ses-03": "28"}


def _nifti(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), str(path))


def _tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _bids_subject(root: Path, sessions=SESSIONS, label="sub-P01") -> Path:
    subject = root / label
    for ses in sessions:
        anat = subject / ses / "anat"
        for suffix in ("T2w", "T2starw", "acq-19F_MRI"):
            _nifti(anat / f"{label}_{ses}_{suffix}.nii.gz")
    # listed out of order on purpose: discovery orders by days
    rows = [[ses, days] for ses, days in reversed(list(sessions.items()))]
    _tsv(subject / f"{label}_sessions.tsv", ["session_id", "days_post_transplant"], rows)
    return subject


def test_bids_subject_with_days(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    _nifti(subject_dir / "ses-02" / "anat" / "sub-P01_ses-02_run-2_T2w.nii.gz")
    _nifti(subject_dir / "ses-02" / "anat" / "sub-P01_ses-02_unknownthing.nii.gz")
    _tsv(tmp_path / "participants.tsv", ["participant_id", "injected_cells", "label"],
         [["sub-P00", "0", "control"], ["sub-P01", "2000000", "iron"]])
    subject = discover_subject(subject_dir)
    assert isinstance(subject, Subject) and subject.source == "bids"
    assert subject.subject_id == "P01" and subject.root == subject_dir
    assert [tp.label for tp in subject.timepoints] == ["ses-01", "ses-02", "ses-03"]
    assert [tp.days for tp in subject.timepoints] == [-3.0, 1.0, 28.0]
    assert subject.participant["injected_cells"] == "2000000"
    assert subject.participant["label"] == "iron"
    day1 = subject.timepoint("ses-02")
    assert set(day1.scans) == {"T2w", "T2starw", "19F", "T2w_run-2"}
    assert day1.scans["T2w"].path == subject_dir / "ses-02/anat/sub-P01_ses-02_T2w.nii.gz"
    assert day1.scans["19F"].meta["entities"]["acq"] == "19F"
    assert subject.contrasts == ("19F", "T2starw", "T2w", "T2w_run-2")
    assert subject.to_dict()["timepoints"][0]["scans"]["T2w"]["contrast"] == "T2w"


def test_days_from_acq_time_and_a_transplant_date(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    _tsv(subject_dir / "sub-P01_sessions.tsv", ["session_id", "acq_time"],
         [["ses-01", "2025-03-01T09:00:00"], ["ses-02", "2025-03-05T10:30:00"],
          ["ses-03", "2025-04-01T08:00:00"]])
    subject = discover_subject(subject_dir, transplant_date="2025-03-04")
    assert [tp.days for tp in subject.timepoints] == [-3.0, 1.0, 28.0]
    assert subject.timepoints[1].acquisition_date == "2025-03-05"
    assert subject.transplant_date == "2025-03-04"


def test_transplant_date_from_participants_table(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    _tsv(subject_dir / "sub-P01_sessions.tsv", ["session_id", "days_post_transplant", "acq_time"],
         [["ses-01", "n/a", "2025-03-01"], ["ses-02", "1", "2025-03-05"],
          ["ses-03", "28", "2025-04-01"]])
    _tsv(tmp_path / "participants.tsv", ["participant_id", "transplant_date"],
         [["sub-P01", "2025-03-04"]])
    subject = discover_subject(subject_dir)
    assert [tp.days for tp in subject.timepoints] == [-3.0, 1.0, 28.0]


def test_missing_sessions_table_is_named(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    table = subject_dir / "sub-P01_sessions.tsv"
    table.unlink()
    with pytest.raises(StudyError, match=r"sub-P01_sessions\.tsv: missing; .*days_post_transplant"):
        discover_subject(subject_dir)


def test_session_without_days_names_file_and_column(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    _tsv(subject_dir / "sub-P01_sessions.tsv", ["session_id", "days_post_transplant"],
         [["ses-01", "-3"], ["ses-02", "n/a"], ["ses-03", "28"]])
    with pytest.raises(StudyError, match=r"sub-P01_sessions\.tsv: session ses-02 has no "
                                         r"days_post_transplant.*'days_post_transplant'"):
        discover_subject(subject_dir)


def test_table_without_session_id_column(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    _tsv(subject_dir / "sub-P01_sessions.tsv", ["session", "days_post_transplant"], [["ses-01", "1"]])
    with pytest.raises(StudyError, match="no column 'session_id'"):
        discover_subject(subject_dir)


def test_non_numeric_days(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    _tsv(subject_dir / "sub-P01_sessions.tsv", ["session_id", "days_post_transplant"],
         [["ses-01", "-3"], ["ses-02", "one"], ["ses-03", "28"]])
    with pytest.raises(StudyError, match="days_post_transplant of ses-02 is 'one'"):
        discover_subject(subject_dir)


def test_folder_without_row(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    _nifti(subject_dir / "ses-04" / "anat" / "sub-P01_ses-04_T2w.nii.gz")
    with pytest.raises(StudyError, match=r"session folders \['ses-04'\] have no row"):
        discover_subject(subject_dir)


def test_row_without_folder(tmp_path):
    subject_dir = _bids_subject(tmp_path, {"ses-01": "-3", "ses-02": "1"})
    _tsv(subject_dir / "sub-P01_sessions.tsv", ["session_id", "days_post_transplant"],
         [["ses-01", "-3"], ["ses-02", "1"], ["ses-09", "90"]])
    with pytest.raises(StudyError, match=r"sessions \['ses-09'\] have rows but no folder"):
        discover_subject(subject_dir)


def test_session_without_scans(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    for f in (subject_dir / "ses-03" / "anat").iterdir():
        f.unlink()
    with pytest.raises(StudyError, match=r"ses-03/anat: no NIfTI scan of a known contrast"):
        discover_subject(subject_dir)


def test_ragged_table(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    (subject_dir / "sub-P01_sessions.tsv").write_text(
        "session_id\tdays_post_transplant\nses-01\t-3\textra\n")
    with pytest.raises(StudyError, match="line 2 has more cells than the header"):
        discover_subject(subject_dir)


def test_bad_transplant_date(tmp_path):
    subject_dir = _bids_subject(tmp_path)
    with pytest.raises(StudyError, match="transplant date is 'last tuesday'"):
        discover_subject(subject_dir, transplant_date="last tuesday")


def test_bids_subject_without_sessions(tmp_path):
    _nifti(tmp_path / "sub-X" / "anat" / "sub-X_T2w.nii.gz")
    with pytest.raises(StudyError, match="without ses-\\* folders"):
        discover_subject(tmp_path / "sub-X")


def test_not_a_folder(tmp_path):
    with pytest.raises(StudyError, match="not a folder"):
        discover_subject(tmp_path / "nothing")


def test_discover_subjects(tmp_path):
    _bids_subject(tmp_path, label="sub-B")
    _bids_subject(tmp_path, label="sub-A")
    (tmp_path / "sub-notafolder.txt").write_text("")
    assert [p.name for p in discover_subjects(tmp_path)] == ["sub-A", "sub-B"]
    with pytest.raises(StudyError, match="no sub-\\* folders"):
        discover_subjects(tmp_path / "sub-A")


# --- DICOM trees, against the list_series interface ------------------------------------------------
@dataclass(frozen=True)
class FakeSeriesInfo:
    series_uid: str
    study_uid: str
    description: str
    modality: str
    plane: str
    dims: tuple
    spacing_mm: tuple
    n_echoes: int
    n_files: int
    files: tuple
    study_date: str | None
    acquisition_datetime: str | None
    patient_id: str
    contrast: str | None


def _info(uid, date, contrast, description="t2_tse_sag", patient="P01", acq=None):
    return FakeSeriesInfo(uid, f"study-{date}", description, "MR", "sagittal", (320, 320, 15),
                          (0.5, 0.5, 3.0), 1, 15, (Path(f"/x/{uid}/1.dcm"),), date, acq, patient,
                          contrast)


@pytest.fixture
def fake_dicom(monkeypatch):
    """Stand-in for imaging.dicom.list_series with the interface the DICOM helper publishes."""
    module = types.ModuleType("imaging.dicom")
    monkeypatch.setitem(sys.modules, "imaging.dicom", module)
    return module


def test_dicom_tree_grouped_by_study_date(fake_dicom, tmp_path):
    fake_dicom.list_series = lambda path: [
        _info("1.1", "20250301", "T2w"), _info("1.2", "20250301", "T2starw", "me_gre"),
        _info("1.3", "20250301", None, "localizer"),
        _info("2.1", "20250305", "T2w"), _info("2.2", "20250305", "T2w", "t2_tse_ax"),
        _info("3.1", None, "T2w", acq="2025-04-01T08:00:00")]
    subject = discover_subject(tmp_path, transplant_date=dt.date(2025, 3, 4))
    assert subject.source == "dicom" and subject.subject_id == "P01"
    assert [tp.days for tp in subject.timepoints] == [-3.0, 1.0, 28.0]
    assert [tp.label for tp in subject.timepoints] == ["ses-20250301", "ses-20250305",
                                                       "ses-20250401"]
    assert set(subject.timepoints[0].scans) == {"T2w", "T2starw"}
    assert set(subject.timepoints[1].scans) == {"T2w", "T2w_t2_tse_sag"}
    scan = subject.timepoints[0].scans["T2starw"]
    assert scan.series_uid == "1.2" and scan.path == (Path("/x/1.2/1.dcm"),)
    assert scan.meta["plane"] == "sagittal"


def test_dicom_tree_needs_a_transplant_date(fake_dicom, tmp_path):
    fake_dicom.list_series = lambda path: [_info("1.1", "20250301", "T2w")]
    with pytest.raises(StudyError, match="needs a transplant date"):
        discover_subject(tmp_path)


def test_dicom_tree_of_two_patients(fake_dicom, tmp_path):
    fake_dicom.list_series = lambda path: [_info("1.1", "20250301", "T2w", patient="A"),
                                           _info("1.2", "20250301", "T2w", patient="B")]
    with pytest.raises(StudyError, match=r"several patients \['A', 'B'\]"):
        discover_subject(tmp_path, transplant_date="2025-03-04")


def test_dicom_series_without_a_date(fake_dicom, tmp_path):
    fake_dicom.list_series = lambda path: [_info("1.1", None, "T2w")]
    with pytest.raises(StudyError, match="series 1.1 .* has no StudyDate"):
        discover_subject(tmp_path, transplant_date="2025-03-04")


def test_empty_dicom_tree(fake_dicom, tmp_path):
    fake_dicom.list_series = lambda path: []
    with pytest.raises(StudyError, match="no DICOM series found"):
        discover_subject(tmp_path, transplant_date="2025-03-04")


def _write_dicom_series(folder: Path, study_date: str, series_uid: str, n_slices: int = 3):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
    from pydicom import Dataset
    folder.mkdir(parents=True)
    study_uid = generate_uid()
    for k in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.StudyDate = "MR", "P01", study_date
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "t2_tse_sag", 1, k + 1
        ds.ScanningSequence, ds.EchoTime, ds.RepetitionTime = "SE", 100.0, 3000.0
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [float(3 * k), 0.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 3.0
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = np.full((4, 4), k, np.uint16).tobytes()
        ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)


def test_real_dicom_tree_with_the_dicom_reader(tmp_path):
    pytest.importorskip("imaging.dicom", reason="imaging.dicom not merged into this branch yet")
    _write_dicom_series(tmp_path / "study1" / "s1", "20250301", "1.2.826.0.1.1")
    _write_dicom_series(tmp_path / "study2" / "s1", "20250305", "1.2.826.0.1.2")
    subject = discover_subject(tmp_path, transplant_date="2025-03-04")
    assert [tp.days for tp in subject.timepoints] == [-3.0, 1.0]
    assert all(len(tp.scans) == 1 for tp in subject.timepoints)
    scan = next(iter(subject.timepoints[1].scans.values()))
    assert scan.series_uid == "1.2.826.0.1.2" and len(scan.path) == 3
