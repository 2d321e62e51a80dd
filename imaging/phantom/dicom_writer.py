"""Simulated sessions as DICOM series: ``OUT/sourcedata/sub-X/ses-Y/<series>/IM*.dcm``.

One folder per session, holding one study (StudyDate = the subject's transplant date +
``days_post_transplant``) with one series per image:

- ``02_t2_tse_<plane>``: the T2w image as a turbo spin echo series (TE 100 ms);
- ``03_t2star_me_gre_<plane>`` (SPIO subjects): the multi-echo T2*w image, one instance
  per slice per echo, EchoTime and EchoNumbers on each instance.

The 19F image is not exported (DICOM has no standard tag for the reference tube's atoms;
its NIfTI sidecar carries them). Pixels are unsigned 16-bit with one RescaleSlope per
series, so values come back within slope / 2 of the NIfTI (``imaging.dicom.synthetic``
writes the files). Sagittal series use the usual ImageOrientationPatient 0\\1\\0\\0\\0\\-1
(rows towards posterior, columns towards the feet), axial ones 1\\0\\0\\0\\1\\0.

Identity: PatientID is the subject id and PatientName ``Phantom^<label>``; no birth date
or other identity is written. UIDs are derived from the seed, subject, session and series,
so the same seed gives the same files.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from imaging.dicom.synthetic import SeriesSpec, geometry_from_affine, stored_integers, write_series
from imaging.errors import PhantomError
from imaging.phantom.results import SimulatedSession, SimulatedSubject
from imaging.volume import Volume

SOURCEDATA = "sourcedata"
# Subject i (0-based) was transplanted on TRANSPLANT_EPOCH + i x TRANSPLANT_STEP_DAYS; the
# date is also written to participants.tsv (column transplant_date).
TRANSPLANT_EPOCH = dt.date(2025, 1, 6)
TRANSPLANT_STEP_DAYS = 7
DICOM_ORIENTATION = {"sagittal": "PIR", "axial": "LPS"}
_COMMON_TAGS = {"BodyPartExamined": "CSPINE", "PatientPosition": "HFS", "ImagedNucleus": "1H",
                "StudyDescription": "graftwatch phantom^spinal cord graft",
                "InstitutionName": "graftwatch phantom"}


def transplant_date(subject_index: int) -> dt.date:
    """The documented transplant date of the subject at ``subject_index`` (0-based)."""
    return TRANSPLANT_EPOCH + dt.timedelta(days=TRANSPLANT_STEP_DAYS * subject_index)


def session_date(transplant: dt.date, days_post_transplant: float) -> dt.date:
    whole = round(days_post_transplant)
    if abs(days_post_transplant - whole) > 1e-9:
        raise PhantomError(f"days_post_transplant = {days_post_transplant}: a DICOM StudyDate "
                           "holds whole days; simulate sessions on whole days")
    return transplant + dt.timedelta(days=whole)


def _uid(seed: int, *parts: str) -> str:
    return generate_uid(entropy_srcs=["graftwatch phantom", str(seed), *parts])


def _series(volume: Volume, description: str, number: int, identity: dict, series_uid: str,
            **acquisition) -> tuple[np.ndarray, SeriesSpec]:
    """Stored pixels and the spec of one image, in the usual DICOM orientation of its plane."""
    oriented = volume.reorient(DICOM_ORIENTATION[volume.meta["plane"]])
    stored, rescale = stored_integers(oriented.array)
    geometry = geometry_from_affine(oriented.affine, oriented.array.shape[2])
    spec = SeriesSpec(description=description, series_number=number, rescale=rescale,
                      echo_times_ms=tuple(float(t) for t in volume.meta["echo_times_ms"]),
                      repetition_time_ms=float(volume.meta["repetition_time_ms"]),
                      series_uid=series_uid, **geometry, **acquisition, **identity)
    return stored, spec


def write_session_dicom(out: Path, subject_id: str, session: SimulatedSession,
                        transplant: dt.date, seed: int, rng: np.random.Generator) -> Path:
    """Write one session's study; return its folder. ``rng`` only shuffles file names."""
    ses = session.session_id
    folder = Path(out) / SOURCEDATA / subject_id / ses
    date = session_date(transplant, session.days_post_transplant)
    identity = {"study_uid": _uid(seed, subject_id, ses), "study_date": f"{date:%Y%m%d}",
                "patient_id": subject_id,
                "patient_name": f"Phantom^{subject_id.removeprefix('sub-')}",
                "patient_birth_date": None, "extra": dict(_COMMON_TAGS)}
    plane = session.t2w.meta["plane"][:3]
    images = [(session.t2w, f"t2_tse_{plane}", 2, {
        "flip_angle_deg": 150.0, "scanning_sequence": "SE", "sequence_variant": "SK\\SP",
        "sequence_name": "*tse2d1_15", "acquisition_time": "101500.000000"})]
    if session.t2starw is not None:
        images.append((session.t2starw, f"t2star_me_gre_{plane}", 3, {
            "flip_angle_deg": 25.0, "scanning_sequence": "GR", "sequence_variant": "SP",
            "sequence_name": "*me2d1r3", "acquisition_time": "102400.000000"}))
    for volume, description, number, acquisition in images:
        stored, spec = _series(volume, description, number, identity,
                               _uid(seed, subject_id, ses, description), **acquisition)
        write_series(folder / f"{number:02d}_{description}", stored, spec, rng)
    return folder


def write_subject_dicom(out: Path, subject: SimulatedSubject, transplant: dt.date, seed: int,
                        rng: np.random.Generator) -> Path:
    """Every session of a subject under ``OUT/sourcedata/sub-X``; return that folder."""
    for session in subject.sessions:
        write_session_dicom(out, subject.subject_id, session, transplant, seed, rng)
    return Path(out) / SOURCEDATA / subject.subject_id
