"""Where a subject's numbers came from: the scans read (with checksums), models, version, time.

A scan is either one file (NIfTI, other ITK formats) or the files of one DICOM series. Its
``ScanSource`` names it readably: the file, or the series folder with the
SeriesInstanceUID and the number of files; paths are relative to the subject folder when
they lie under it (absolute otherwise). Its provenance record adds checksums: the file's
sha256, or one sha256 per file of the series, as a list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaging.study import Scan, Subject


@dataclass(frozen=True)
class ScanSource:
    """One analysed scan: a file, or a DICOM series (its folder, UID and number of files)."""

    path: str   # the file or the series folder; relative to the subject folder when under it
    series_uid: str | None = None   # DICOM series only
    n_files: int = 1

    def __str__(self) -> str:
        if self.series_uid is None:
            return self.path
        return f"{self.path} (DICOM series {self.series_uid}, {self.n_files} files)"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "series_uid": self.series_uid, "n_files": self.n_files}


def _shown(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def _series_folder(files: tuple[Path, ...]) -> Path:
    return Path(os.path.commonpath([str(Path(f).parent) for f in files]))


def scan_source(scan: Scan, subject_root: Path) -> ScanSource:
    if not isinstance(scan.path, tuple):
        return ScanSource(_shown(scan.path, subject_root))
    return ScanSource(_shown(_series_folder(scan.path), subject_root), scan.series_uid,
                      len(scan.path))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def input_record(scan: Scan, subject_root: Path) -> dict[str, Any]:
    """The scan's ``ScanSource`` fields plus ``sha256`` (a file) or ``files`` (a DICOM
    series: one ``{"path", "sha256"}`` per file, the path relative to the series folder)."""
    record = scan_source(scan, subject_root).to_dict()
    if not isinstance(scan.path, tuple):
        return {**record, "sha256": sha256(scan.path)}
    folder = _series_folder(scan.path)
    return {**record, "files": [{"path": _shown(f, folder), "sha256": sha256(f)}
                                for f in scan.path]}


def describe_input(record: dict[str, Any]) -> str:
    """One readable line for an input record (the report's provenance table)."""
    if record.get("series_uid") is None:
        return f"{record['path']} (sha256 {record['sha256'][:12]}...)"
    return (f"{record['path']} (DICOM series {record['series_uid']}, {record['n_files']} files, "
            "sha256 of each file in survival.json)")


def subject_provenance(subject: Subject, models, scans: dict[str, Scan],
                       label_scans: dict[str, dict[str, Scan]], device) -> dict[str, Any]:
    """Version, models, device, time, subject folder, and the input records: ``scans`` is
    the analysed scan by session, ``label_scans`` the SPIO / 19F inputs by session and contrast."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        package_version = version("graftwatch")
    except PackageNotFoundError:
        package_version = "unknown (not installed)"
    root = Path(subject.root)
    return {"graftwatch_version": package_version,
            "models": [m.card.name for m in models],
            "model_weights_sha256": [m.card.weights_sha256 for m in models],
            "device": str(device),
            "analysed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "subject_root": str(subject.root),
            "inputs": {label: input_record(scan, root) for label, scan in scans.items()},
            "label_inputs": {label: {c: input_record(scan, root) for c, scan in by_contrast.items()}
                             for label, by_contrast in label_scans.items()}}
