"""Find DICOM files, read their headers (no pixels) and group them by series.

A folder is searched recursively; files that are not DICOM (notes, JSON,
DICOMDIR indexes) and DICOM objects without an image (reports, presentation
states) are skipped there with a log line, but refused when named explicitly.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from imaging.errors import DicomSeriesError, ImageReadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Header:
    path: Path
    dataset: Dataset  # read with stop_before_pixels

    @property
    def series_uid(self) -> str:
        return str(getattr(self.dataset, "SeriesInstanceUID", "")) or f"(no UID: {self.path.parent})"

    @property
    def has_image(self) -> bool:
        return "Rows" in self.dataset and "Columns" in self.dataset


def _head(path: Path) -> bytes:
    """First 132 bytes (preamble and magic), or ImageReadError if the file cannot be opened."""
    try:
        with open(path, "rb") as fh:
            return fh.read(132)
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied; make it readable (chmod) or run as a "
                             "user who can read it") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be opened ({exc.strerror}); check the path") from exc


def _parses_as_dicom(path: Path) -> bool:
    try:
        with warnings.catch_warnings():  # forced parsing of non-DICOM bytes warns loudly
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # force=True can fail in many ways on non-DICOM bytes
        return False
    return "SOPClassUID" in ds or ("Modality" in ds and "StudyInstanceUID" in ds)


def is_dicom_file(path: Path) -> bool:
    """True for a file with the DICM preamble, or one pydicom parses as a DICOM dataset."""
    try:
        head = _head(Path(path))
    except ImageReadError:
        return False
    return head[128:132] == b"DICM" or _parses_as_dicom(Path(path))


def _files_under(folder: Path) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root, n) for n in sorted(names)
                  if not n.startswith(".") and n.upper() != "DICOMDIR"]
    return found


def read_header(path: Path) -> Dataset:
    """Header of one DICOM file (pixels not read), with readable errors."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied; make it readable (chmod) or run as a "
                             "user who can read it") from exc
    except InvalidDicomError as exc:
        if _parses_as_dicom(path):  # a DICOM dataset without the 128-byte preamble
            return pydicom.dcmread(path, stop_before_pixels=True, force=True)
        raise ImageReadError(f"{path}: not a DICOM file ({exc}); expected DICOM images. Remove "
                             "it from the list, or load it with imaging.load if it is NIfTI") from exc
    except (EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DicomSeriesError(f"{path}: DICOM header cannot be read ({type(exc).__name__}: "
                               f"{exc}); the file is probably truncated or corrupt: copy it "
                               "again from the scanner or PACS") from exc


def _folder_headers(folder: Path) -> list[Header]:
    files = _files_under(folder)
    if not files:
        raise ImageReadError(f"{folder}: folder is empty; expected DICOM files (searched "
                             "recursively). Check the path")
    headers = []
    for path in files:
        if _head(path)[128:132] != b"DICM" and not _parses_as_dicom(path):
            log.debug("skipping %s: not DICOM", path)
            continue
        headers.append(Header(path, read_header(path)))
    if not headers:
        shown = ", ".join(p.name for p in files[:5])
        raise ImageReadError(f"{folder}: none of its {len(files)} file(s) is DICOM ({shown}"
                             f"{' ...' if len(files) > 5 else ''}); point at a DICOM series "
                             "folder, or load NIfTI files with imaging.load")
    return headers


def read_headers(source: Path | Sequence[Path]) -> list[Header]:
    """Headers of a folder's DICOM files (searched recursively) or of the given files."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageReadError(f"{path}: no such file or folder; check the path")
        if path.is_dir():
            return _folder_headers(path)
        return [Header(path, read_header(path))]
    paths = [Path(p) for p in source]
    if not paths:
        raise ImageReadError("an empty list of files was given; expected DICOM files")
    return [Header(p, read_header(p)) for p in paths]


def image_series(headers: list[Header], source: str) -> dict[str, list[Header]]:
    """Image headers grouped by SeriesInstanceUID (insertion order: first file seen)."""
    groups: dict[str, list[Header]] = defaultdict(list)
    skipped = []
    for header in headers:
        if header.has_image:
            groups[header.series_uid].append(header)
        else:
            skipped.append(header)
    for header in skipped:
        log.info("skipping %s: DICOM without an image (%s)", header.path,
                 getattr(getattr(header.dataset, "SOPClassUID", None), "name", "no SOP class"))
    if not groups:
        kinds = sorted({getattr(getattr(h.dataset, "SOPClassUID", None), "name", "unknown")
                        for h in skipped})
        raise DicomSeriesError(
            f"{source}: DICOM without pixel data only ({', '.join(kinds)}; e.g. {skipped[0].path}); "
            "structured reports and presentation states are not images. Point at the image "
            "series they refer to")
    return dict(groups)
