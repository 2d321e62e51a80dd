"""Study discovery: a subject's timepoints and the scans of each, from BIDS or a DICOM tree.

``discover_subject(path)`` recognises
- a BIDS subject folder ``sub-X`` with ``ses-Y/anat/sub-X_ses-Y[_acq-..]_<suffix>.nii.gz``
  files and ``sub-X_sessions.tsv`` giving ``session_id`` and ``days_post_transplant``
  (negative = before the injection), or ``acq_time`` plus a transplant date;
- a DICOM tree of one subject (several studies): series grouped by study date, days
  counted from a transplant date that must be given.

Nothing is loaded here: a ``Scan`` says where the voxels are (``imaging.load`` reads them).
Within a timepoint scans are keyed by contrast; a second scan of the same contrast gets
the contrast plus what tells it apart (``T2starw_run-2``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from imaging.bids import contrast_from_name, split_name
from imaging.errors import StudyError
from imaging.tsv import read_tsv

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_MISSING = ("", "n/a", "na", "nan")


@dataclass(frozen=True)
class Scan:
    """One series of one timepoint: a NIfTI file or the files of a DICOM series."""

    path: Path | tuple[Path, ...]
    contrast: str | None
    series_uid: str | None = None
    description: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def to_dict(self) -> dict[str, Any]:
        path = ([str(p) for p in self.path] if isinstance(self.path, tuple) else str(self.path))
        return {"path": path, "contrast": self.contrast, "series_uid": self.series_uid,
                "description": self.description}


@dataclass(frozen=True)
class Timepoint:
    """A session: its label, days from the transplant (negative before), scans by contrast."""

    label: str
    days: float | None
    scans: Mapping[str, Scan]
    acquisition_date: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scans", MappingProxyType(dict(self.scans)))

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "days": self.days, "acquisition_date": self.acquisition_date,
                "scans": {k: s.to_dict() for k, s in self.scans.items()}}


@dataclass(frozen=True)
class Subject:
    """A subject's timepoints, ordered by days from the transplant."""

    subject_id: str
    root: Path
    source: str  # "bids" | "dicom"
    timepoints: tuple[Timepoint, ...]
    participant: Mapping[str, Any] = field(default_factory=dict)
    transplant_date: str | None = None  # ISO date

    def __post_init__(self) -> None:
        object.__setattr__(self, "timepoints", tuple(self.timepoints))
        object.__setattr__(self, "participant", MappingProxyType(dict(self.participant)))

    @property
    def contrasts(self) -> tuple[str, ...]:
        return tuple(sorted({c for tp in self.timepoints for c in tp.scans}))

    def timepoint(self, label: str) -> Timepoint:
        for tp in self.timepoints:
            if tp.label == label:
                return tp
        raise StudyError(f"subject {self.subject_id} has no timepoint {label!r}; it has "
                         f"{[tp.label for tp in self.timepoints]}")

    def to_dict(self) -> dict[str, Any]:
        return {"subject_id": self.subject_id, "root": str(self.root), "source": self.source,
                "transplant_date": self.transplant_date, "participant": dict(self.participant),
                "timepoints": [tp.to_dict() for tp in self.timepoints]}


# --- small parsers ---------------------------------------------------------------------------
def parse_date(value: Any, what: str) -> dt.date:
    """A date from a date/datetime, 'YYYY-MM-DD', 'YYYYMMDD' or an ISO date-time string."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise StudyError(f"{what} is {value!r}; expected a date such as 2025-03-14 "
                         "(YYYY-MM-DD) or an ISO date-time") from None


def read_table(path: Path) -> list[dict[str, str | None]]:
    """Rows of a BIDS .tsv file, 'n/a' and empty cells as None; ragged rows refused."""
    rows = read_tsv(path)
    for number, row in enumerate(rows, start=2):
        if None in row:
            raise StudyError(f"{path}: line {number} has more cells than the header; expected "
                             "tab-separated cells, one per column")
    return [{k.strip(): (None if v is None or v.strip().lower() in _MISSING else v.strip())
             for k, v in row.items()} for row in rows]


def _require_column(path: Path, rows: list[dict], column: str, extra: str = "") -> None:
    if not rows or column not in rows[0]:
        found = sorted(rows[0]) if rows else "no rows"
        raise StudyError(f"{path}: no column {column!r} (found {found}); expected a BIDS "
                         f"table with {column!r}{extra}")


def _keyed_by_contrast(scans: Iterable[tuple[Scan, str]]) -> dict[str, Scan]:
    """contrast -> Scan; a repeated contrast gets '<contrast>_<what differs>'."""
    keyed: dict[str, Scan] = {}
    for scan, distinguisher in scans:
        key = scan.contrast if scan.contrast not in keyed else f"{scan.contrast}_{distinguisher}"
        if key in keyed:
            raise StudyError(f"two {scan.contrast} scans cannot be told apart: {keyed[key].path} "
                             f"and {scan.path}; remove one or give them different run- labels")
        keyed[key] = scan
    return keyed


# --- BIDS ------------------------------------------------------------------------------------
def _participant(subject_dir: Path, subject_label: str) -> dict[str, Any]:
    table = subject_dir.parent / "participants.tsv"
    if not table.exists():
        return {}
    rows = read_table(table)
    for row in rows:
        if row.get("participant_id") == subject_label:
            return dict(row)
    log.warning("%s has no row for %s", table, subject_label)
    return {}


def _session_days(table: Path, row: dict, transplant: dt.date | None) -> tuple[float, str | None]:
    acq = row.get("acq_time")
    acq_date = parse_date(acq, f"{table}: acq_time of {row['session_id']}") if acq else None
    if row.get("days_post_transplant") is not None:
        try:
            return float(row["days_post_transplant"]), acq_date and acq_date.isoformat()
        except ValueError:
            raise StudyError(f"{table}: days_post_transplant of {row['session_id']} is "
                             f"{row['days_post_transplant']!r}; expected a number of days "
                             "(negative before the injection)") from None
    if acq_date is not None and transplant is not None:
        return float((acq_date - transplant).days), acq_date.isoformat()
    raise StudyError(f"{table}: session {row['session_id']} has no days_post_transplant"
                     + ("" if transplant else " and no transplant date to count from acq_time")
                     + "; fill the column 'days_post_transplant', or give 'acq_time' and a "
                     "transplant date (--transplant-date)")


def _bids_scans(session_dir: Path, prefix: str) -> dict[str, Scan]:
    from imaging.nifti import read_sidecar
    anat = session_dir / "anat"
    files = sorted(p for p in anat.glob(f"{prefix}_*") if p.name.lower().endswith(NIFTI_SUFFIXES))
    found = []
    for path in files:
        contrast = contrast_from_name(path)
        if contrast is None:
            log.info("%s: no known contrast in the name; skipped", path)
            continue
        entities, suffix, _ = split_name(path.name)
        sidecar = read_sidecar(path)
        scan = Scan(path, contrast, sidecar.get("SeriesInstanceUID"),
                    sidecar.get("SeriesDescription"), {"entities": entities, "suffix": suffix})
        distinguisher = "_".join(f"{k}-{v}" for k, v in entities.items()
                                 if k not in ("sub", "ses")) or suffix
        found.append((scan, distinguisher))
    if not found:
        raise StudyError(f"{anat}: no NIfTI scan of a known contrast named {prefix}_*_<suffix>"
                         ".nii.gz (T2w, T2starw, T1w, acq-19F...); add the scans or remove the "
                         "session from the sessions table")
    return _keyed_by_contrast(found)


def _sessions_table(subject_dir: Path, label: str) -> tuple[Path, list[dict]]:
    table = subject_dir / f"{label}_sessions.tsv"
    if not table.exists():
        raise StudyError(f"{table}: missing; expected a BIDS sessions table with columns "
                         "session_id and days_post_transplant (or acq_time plus a transplant "
                         "date) to order the timepoints")
    rows = read_table(table)
    _require_column(table, rows, "session_id")
    return table, rows


def _check_sessions_match(table: Path, rows: list[dict], subject_dir: Path) -> None:
    listed = [r["session_id"] for r in rows]
    on_disk = sorted(p.name for p in subject_dir.glob("ses-*") if p.is_dir())
    missing = sorted(set(listed) - set(on_disk))
    unlisted = sorted(set(on_disk) - set(listed))
    if None in listed or len(set(listed)) != len(listed):
        raise StudyError(f"{table}: session_id column has empty or repeated entries "
                         f"({listed}); expected one row per ses-* folder")
    if missing:
        raise StudyError(f"{table}: sessions {missing} have rows but no folder in {subject_dir}; "
                         "add the folders or remove the rows")
    if unlisted:
        raise StudyError(f"{subject_dir}: session folders {unlisted} have no row in {table}; "
                         "add rows (session_id, days_post_transplant) or remove the folders")


def _discover_bids(subject_dir: Path, transplant_date: Any) -> Subject:
    label = subject_dir.name
    participant = _participant(subject_dir, label)
    if transplant_date is None and participant.get("transplant_date"):
        transplant_date = participant["transplant_date"]
    transplant = parse_date(transplant_date, "transplant date") if transplant_date else None
    table, rows = _sessions_table(subject_dir, label)
    _check_sessions_match(table, rows, subject_dir)
    timepoints = []
    for row in rows:
        days, acq_date = _session_days(table, row, transplant)
        scans = _bids_scans(subject_dir / row["session_id"], f"{label}_{row['session_id']}")
        timepoints.append(Timepoint(row["session_id"], days, scans, acq_date))
    timepoints.sort(key=lambda tp: tp.days)
    return Subject(label.removeprefix("sub-"), subject_dir, "bids", tuple(timepoints), participant,
                   transplant and transplant.isoformat())


# --- DICOM -----------------------------------------------------------------------------------
def _series_date(info) -> dt.date:
    when = info.study_date or info.acquisition_datetime
    if not when:
        raise StudyError(f"series {info.series_uid} ({info.description!r}, first file "
                         f"{info.files[0] if info.files else '?'}) has no StudyDate or "
                         "AcquisitionDateTime; expected dated studies to order the timepoints")
    return parse_date(str(when)[:10] if "-" in str(when) else str(when)[:8],
                      f"date of series {info.series_uid}")


def _dicom_scan(info) -> Scan:
    meta = {"modality": info.modality, "plane": info.plane, "dims": info.dims,
            "spacing_mm": info.spacing_mm, "n_echoes": info.n_echoes, "n_files": info.n_files,
            "study_uid": info.study_uid, "acquisition_datetime": info.acquisition_datetime}
    return Scan(tuple(info.files), info.contrast, info.series_uid, info.description, meta)


def _discover_dicom(path: Path, transplant_date: Any) -> Subject:
    try:
        from imaging.dicom import list_series
    except ImportError as exc:
        raise StudyError(f"{path}: holds no BIDS sessions and the DICOM reader (imaging.dicom) "
                         "is not available in this installation") from exc
    if transplant_date is None:
        raise StudyError(f"{path}: a DICOM tree needs a transplant date to count days from; "
                         "give transplant_date (command line: --transplant-date YYYY-MM-DD)")
    transplant = parse_date(transplant_date, "transplant date")
    series = list_series(path)
    if not series:
        raise StudyError(f"{path}: no DICOM series found; expected a folder of one subject's "
                         "studies (or a BIDS sub-* folder)")
    patients = sorted({s.patient_id for s in series if s.patient_id})
    if len(patients) > 1:
        raise StudyError(f"{path}: holds several patients {patients}; expected one subject per "
                         "folder: split the tree by patient")
    by_date: dict[dt.date, list] = {}
    for info in series:
        if getattr(info, "problem", None):
            log.warning("%s: series %s (%r) skipped: %s", path, info.series_uid,
                        info.description, info.problem)
            continue
        by_date.setdefault(_series_date(info), []).append(info)
    timepoints = []
    for date in sorted(by_date):
        known = sorted((s for s in by_date[date] if s.contrast),
                       key=lambda s: (s.description or "", s.series_uid))
        scans = _keyed_by_contrast((_dicom_scan(s), s.description or s.series_uid) for s in known)
        timepoints.append(Timepoint(f"ses-{date:%Y%m%d}", float((date - transplant).days),
                                    scans, date.isoformat()))
    return Subject(patients[0] if patients else path.name, path, "dicom", tuple(timepoints),
                   {}, transplant.isoformat())


# --- entry points ------------------------------------------------------------------------------
def _is_bids_subject(path: Path) -> bool:
    """sub-X with a sessions table or ses-*/anat folders; a DICOM tree laid out as
    sub-X/ses-Y/<series> (BIDS sourcedata) has neither and is read as DICOM."""
    return path.name.startswith("sub-") and (
        (path / f"{path.name}_sessions.tsv").exists()
        or any((p / "anat").is_dir() for p in path.glob("ses-*")))


def discover_subject(path: str | Path, transplant_date: Any = None) -> Subject:
    """A subject's timepoints from a BIDS subject folder or a DICOM tree of one subject.

    ``transplant_date`` (date or 'YYYY-MM-DD') is needed for DICOM and for BIDS sessions
    dated only by acq_time; a BIDS participants.tsv column transplant_date also serves.
    """
    path = Path(path)
    if not path.is_dir():
        raise StudyError(f"{path}: not a folder; expected a BIDS subject folder (sub-X) or a "
                         "DICOM folder of one subject")
    if _is_bids_subject(path):
        return _discover_bids(path, transplant_date)
    if path.name.startswith("sub-") and (path / "anat").is_dir():
        raise StudyError(f"{path}: BIDS subject without ses-* folders; longitudinal analysis "
                         "needs one ses-* folder per timepoint and a sessions table")
    return _discover_dicom(path, transplant_date)


def discover_subjects(root: str | Path) -> list[Path]:
    """The sub-* subject folders of a BIDS root, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise StudyError(f"{root}: not a folder; expected a BIDS root holding sub-* folders")
    subjects = sorted(p for p in root.glob("sub-*") if p.is_dir())
    if not subjects:
        raise StudyError(f"{root}: no sub-* folders; expected a BIDS root (one sub-<label> "
                         "folder per subject)")
    return subjects
