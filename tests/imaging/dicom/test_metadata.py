"""Metadata of loaded DICOM: contrast inference, timing, dates, identity kept but not shown."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from imaging.dicom import list_series, load_dicom
from imaging.dicom.metadata import infer_contrast


def _header(**tags) -> Dataset:
    ds = Dataset()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize("tags, echoes, contrast", [
    ({"ScanningSequence": "SE", "RepetitionTime": "4000", "FlipAngle": "150"}, (95.0,), "T2w"),
    ({"ScanningSequence": "GR", "RepetitionTime": "40", "FlipAngle": "15"}, (3.0, 8.0, 13.0),
     "T2starw"),
    ({"ScanningSequence": "GR", "RepetitionTime": "600", "FlipAngle": "20"}, (15.0,), "T2starw"),
    ({"ScanningSequence": ["GR", "IR"], "SequenceName": "*tfl3d1_16ns",
      "RepetitionTime": "2300", "FlipAngle": "9"}, (2.4,), "T1w"),
    ({"ScanningSequence": "SE", "RepetitionTime": "550", "FlipAngle": "90"}, (12.0,), "T1w"),
    ({"EchoPulseSequence": "GRADIENT", "PulseSequenceName": "*tfl3d1"}, (2.4,), "T1w"),
    ({"ScanningSequence": "EP", "RepetitionTime": "2000", "FlipAngle": "90"}, (30.0,), None),
    ({"ScanningSequence": "SE", "RepetitionTime": "2500"}, (30.0,), None),
])
def test_contrast_inference(tags, echoes, contrast):
    assert infer_contrast(_header(**tags), echoes) == contrast


def test_loaded_meta_keys(t2_series):
    meta = load_dicom(t2_series[0].parent).meta
    assert meta["format"] == "dicom" and meta["modality"] == "MR"
    assert meta["contrast"] == "T2w" and meta["echo_times_ms"] == (95.0,)
    assert meta["repetition_time_ms"] == 3500.0 and meta["field_strength_t"] == 3.0
    assert meta["study_date"] == "20250301"
    assert meta["acquisition_datetime"] == "2025-03-01T10:15:00.000000"
    assert meta["series_description"] == "t2_tse_sag"
    assert meta["series_uid"] and meta["study_uid"]
    assert (meta["patient_id"], meta["patient_name"], meta["patient_birth_date"]) == (
        "SUBJ01", "Doe^Jane", "19800101")
    assert meta["source"] == str(t2_series[0].parent)


def test_series_info_hides_patient_identity(t2_series):
    (info,) = list_series(t2_series[0].parent)
    assert info.patient_id == "SUBJ01"
    assert "SUBJ01" not in repr(info) and "SUBJ01" not in str(info.to_row())
    assert info.n_files == len(t2_series) and set(info.files) == set(t2_series)
    assert info.spacing_mm == pytest.approx((0.5, 0.5, 3.0))
    assert info.contrast == "T2w" and info.plane == "sagittal"
