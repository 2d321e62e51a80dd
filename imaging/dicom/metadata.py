"""Metadata of a DICOM series: timing, field strength, dates, identity, and inferred contrast.

Classic headers carry ScanningSequence, EchoTime, RepetitionTime and FlipAngle
at the top level; enhanced objects carry EchoPulseSequence at the top level and
timing in functional groups, which are searched too. The patient's name, ID and
birth date are kept in the metadata for export but must never be printed.
"""

from __future__ import annotations

from typing import Any, Sequence

from pydicom.dataset import Dataset

from imaging.dicom.frames import number
from imaging.dicom.multiframe import first_functional_value

# Contrast inference thresholds (ms, degrees).
T2_SPIN_ECHO_MIN_TE_MS = 60.0
T2STAR_MIN_TE_MS = 5.0
T2STAR_MAX_FLIP_DEG = 40.0
T1_MAX_TE_MS = 20.0
T1_MAX_TR_MS = 1000.0
_T1_SEQUENCE_MARKERS = ("tfl", "mprage", "mp2rage", "spgr", "bravo")


def _text(ds: Dataset, *keywords: str) -> str:
    return " ".join(str(getattr(ds, k, "")) for k in keywords).lower()


def repetition_time_ms(ds: Dataset) -> float | None:
    return number(ds, "RepetitionTime") or first_functional_value(
        ds, "MRTimingAndRelatedParametersSequence", "RepetitionTime")


def flip_angle_deg(ds: Dataset) -> float | None:
    return number(ds, "FlipAngle") or first_functional_value(
        ds, "MRTimingAndRelatedParametersSequence", "FlipAngle")


def _sequence_family(ds: Dataset) -> tuple[bool, bool]:
    """(gradient echo, spin echo) from ScanningSequence or, when enhanced, EchoPulseSequence."""
    scanning = [str(v).upper() for v in (getattr(ds, "ScanningSequence", None) or [])]
    if isinstance(getattr(ds, "ScanningSequence", None), str):
        scanning = [str(ds.ScanningSequence).upper()]
    pulse = str(getattr(ds, "EchoPulseSequence", "")).upper()
    gradient = "GR" in scanning or pulse in ("GRADIENT", "BOTH")
    spin = "SE" in scanning or pulse in ("SPIN", "BOTH")
    return gradient, spin


def infer_contrast(ds: Dataset, echo_times_ms: Sequence[float]) -> str | None:
    """T1w, T2w or T2starw (the project's name for T2*w) from sequence type and timing; None when the header does not say."""
    names = _text(ds, "SequenceName", "PulseSequenceName", "ScanOptions")
    gradient, spin = _sequence_family(ds)
    tes = [t for t in echo_times_ms if t is not None]
    te = min(tes) if tes else None
    tr = repetition_time_ms(ds)
    flip = flip_angle_deg(ds)
    if any(marker in names for marker in _T1_SEQUENCE_MARKERS):
        return "T1w"
    if gradient and not spin and te is not None and (flip is None or flip < T2STAR_MAX_FLIP_DEG):
        if len(tes) >= 2 or te > T2STAR_MIN_TE_MS:
            return "T2starw"
    if spin and te is not None and te > T2_SPIN_ECHO_MIN_TE_MS:
        return "T2w"
    if te is not None and tr is not None and te < T1_MAX_TE_MS and tr < T1_MAX_TR_MS:
        return "T1w"
    return None


def _iso_datetime(ds: Dataset) -> str | None:
    stamp = str(getattr(ds, "AcquisitionDateTime", "") or "")
    if not stamp:
        date = str(getattr(ds, "AcquisitionDate", "") or getattr(ds, "SeriesDate", "")
                   or getattr(ds, "StudyDate", "") or "")
        time = str(getattr(ds, "AcquisitionTime", "") or getattr(ds, "SeriesTime", "") or "")
        stamp = date + time if date else ""
    if len(stamp) < 8 or not stamp[:8].isdigit():
        return None
    iso = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"
    clock = stamp[8:]
    if len(clock) >= 4 and clock[:4].isdigit():
        iso += f"T{clock[:2]}:{clock[2:4]}" + (f":{clock[4:6]}" if clock[4:6].isdigit() else "")
        fraction = clock[6:].split("+")[0].split("-")[0]
        if fraction.startswith(".") and fraction[1:].isdigit():
            iso += fraction
    return iso


def series_identity(ds: Dataset) -> dict[str, Any]:
    """What names a series (no patient identity): UIDs, description, modality, dates."""
    date = str(getattr(ds, "StudyDate", "") or "")
    return {
        "series_uid": str(getattr(ds, "SeriesInstanceUID", "")),
        "study_uid": str(getattr(ds, "StudyInstanceUID", "")),
        "series_description": str(getattr(ds, "SeriesDescription", "")
                                  or getattr(ds, "ProtocolName", "")),
        "modality": str(getattr(ds, "Modality", "")) or None,
        "study_date": date if len(date) == 8 and date.isdigit() else None,
        "acquisition_datetime": _iso_datetime(ds),
    }


def patient_identity(ds: Dataset) -> dict[str, Any]:
    """PHI: kept for export, never printed or logged."""
    return {"patient_id": str(getattr(ds, "PatientID", "")) or None,
            "patient_name": str(getattr(ds, "PatientName", "")) or None,
            "patient_birth_date": str(getattr(ds, "PatientBirthDate", "")) or None}


def series_meta(ds: Dataset, echo_times_ms: Sequence[float]) -> dict[str, Any]:
    """The metadata keys of a loaded DICOM volume, except source/geometry ones."""
    return {
        "format": "dicom",
        **series_identity(ds),
        "contrast": infer_contrast(ds, echo_times_ms),
        "echo_times_ms": tuple(float(t) for t in echo_times_ms),
        "repetition_time_ms": repetition_time_ms(ds),
        "flip_angle_deg": flip_angle_deg(ds),
        "field_strength_t": number(ds, "MagneticFieldStrength"),
        **patient_identity(ds),
    }
