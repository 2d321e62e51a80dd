"""DICOM export of phantoms: read back by graftwatch's own loaders, it is the NIfTI session."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
import pytest

from imaging import study
from imaging.dicom.synthetic import geometry_from_affine, stored_integers
from imaging.errors import PhantomError
from imaging.io import load
from imaging.phantom import sample_spec, simulate_subject
from imaging.phantom.dicom_writer import session_date, write_session_dicom


def _participants(root: Path) -> dict[str, dict[str, str]]:
    with (root / "participants.tsv").open(newline="") as handle:
        return {r["participant_id"]: r for r in csv.DictReader(handle, delimiter="\t")}


def _same_image(from_dicom, nifti) -> None:
    """Same voxels (within half the rescale step), same world geometry, same contrast meta."""
    dicom = from_dicom.reorient(nifti.orientation)
    assert dicom.array.shape == nifti.array.shape
    np.testing.assert_allclose(dicom.affine, nifti.affine, atol=1e-3)
    top = float(nifti.array.max())
    step, float32_ulp = top / 65000, float(np.spacing(np.float32(top)))
    assert float(np.abs(dicom.array - nifti.array).max()) <= 0.5 * step + 2 * float32_ulp
    assert dicom.meta["contrast"] == nifti.meta["contrast"]
    assert dicom.meta["echo_times_ms"] == pytest.approx(nifti.meta["echo_times_ms"], abs=1e-4)


def test_dicom_sessions_read_back_as_the_nifti_sessions(dataset):
    participants = _participants(dataset)
    checked = set()
    for sid, row in participants.items():
        bids = study.discover_subject(dataset / sid)
        dicom = study.discover_subject(dataset / "sourcedata" / sid,
                                       transplant_date=row["transplant_date"])
        assert dicom.source == "dicom" and dicom.subject_id == sid
        assert [tp.days for tp in dicom.timepoints] == [tp.days for tp in bids.timepoints]
        for from_dicom, from_bids in zip(dicom.timepoints, bids.timepoints):
            expected = {c for c in from_bids.scans if c in ("T2w", "T2starw")}
            assert set(from_dicom.scans) == expected
            for contrast in expected:
                _same_image(load(from_dicom.scans[contrast].path),
                            load(from_bids.scans[contrast].path))
                checked.add(contrast)
    assert checked == {"T2w", "T2starw"}


def test_multi_echo_series_has_one_instance_per_slice_per_echo(dataset):
    folder = next((dataset / "sourcedata" / "sub-001" / "ses-02").glob("03_t2star_me_gre_*"))
    nifti = load(dataset / "sub-001/ses-02/anat/sub-001_ses-02_T2starw.nii.gz")
    files = sorted(folder.glob("*.dcm"))
    n_slices, n_echoes = nifti.array.shape[2], nifti.array.shape[3]      # PSR: slices along R
    assert len(files) == n_slices * n_echoes
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    tes = sorted({float(h.EchoTime) for h in headers})
    assert tes == pytest.approx(nifti.meta["echo_times_ms"], abs=1e-4)
    assert len({h.SeriesInstanceUID for h in headers}) == 1
    assert len({h.SOPInstanceUID for h in headers}) == len(files)


def test_identity_is_fake_and_dates_count_from_the_transplant(dataset):
    transplant = dt.date.fromisoformat(_participants(dataset)["sub-002"]["transplant_date"])
    with (dataset / "sub-002" / "sub-002_sessions.tsv").open() as handle:
        sessions = list(csv.DictReader(handle, delimiter="\t"))
    for row in sessions:
        path = next((dataset / "sourcedata" / "sub-002" / row["session_id"]).rglob("*.dcm"))
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.PatientID == "sub-002" and str(ds.PatientName) == "Phantom^002"
        assert "PatientBirthDate" not in ds and "PatientAddress" not in ds
        days = float(row["days_post_transplant"])
        assert dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date() == \
            transplant + dt.timedelta(days=days)


def test_an_axial_spio_session_reads_back_too(tmp_path):
    rng = np.random.default_rng(21)
    spec = sample_spec(rng, label="spio", plane="axial", n_sessions=2)
    session = simulate_subject(spec, rng, subject_id="sub-009").sessions[1]
    folder = write_session_dicom(tmp_path, "sub-009", session, dt.date(2025, 3, 3), 21,
                                 np.random.default_rng(0))
    t2w_dir, t2s_dir = sorted(p for p in folder.iterdir() if p.is_dir())
    assert pydicom.dcmread(next(t2w_dir.glob("*.dcm"))).ImageOrientationPatient == \
        [1, 0, 0, 0, 1, 0]
    _same_image(load(t2w_dir), session.t2w)
    _same_image(load(t2s_dir), session.t2starw)


def test_session_dates_hold_whole_days_only():
    assert session_date(dt.date(2025, 1, 6), -3.0) == dt.date(2025, 1, 3)
    with pytest.raises(PhantomError, match="whole days"):
        session_date(dt.date(2025, 1, 6), 2.5)


def test_geometry_and_rescale_helpers():
    pir = np.array([[0, 0, 3.0, -20], [-0.5, 0, 0, 10], [0, -0.6, 0, 40], [0, 0, 0, 1]])
    geometry = geometry_from_affine(pir, 4)
    assert geometry["orientation"] == (0, 1, 0, 0, 0, -1)             # LPS: rows P, columns I
    assert geometry["pixel_spacing_mm"] == (0.6, 0.5)
    assert geometry["origin_lps"] == (20, -10, 40)
    assert geometry["slice_offsets_mm"] == (0.0, 3.0, 6.0, 9.0)       # along the normal (R)
    pil = pir * np.array([1, 1, -1, 1])
    assert geometry_from_affine(pil, 3)["slice_offsets_mm"] == (0.0, -3.0, -6.0)
    with pytest.raises(ValueError, match="not perpendicular"):
        geometry_from_affine(np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.]]), 2)
    values = np.array([0.0, 1.234567, 2500.0, 17.5])
    stored, (slope, intercept) = stored_integers(values)
    assert stored.dtype == np.uint16 and float(f"{slope:g}") == slope
    assert np.abs(stored * slope + intercept - values).max() <= slope / 2
