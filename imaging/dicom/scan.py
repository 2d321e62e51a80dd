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
# load_dicom reads pixel data together with headers (one parse per file) up to this total.
FULL_READ_LIMIT_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Header:
    path: Path
    dataset: Dataset  # header, with pixel data only when read_headers was asked for it

    @property
    def series_uid(self) -> str:
        return str(getattr(self.dataset, "SeriesInstanceUID", "")) or f"(no UID: {self.path.parent})"

    @property
    def has_image(self) -> bool:
        return "Rows" in self.dataset and "Columns" in self.dataset


def permission_denied(path: Path) -> ImageReadError:
    return ImageReadError(f"{path}: permission denied; make it readable (chmod) or run as a "
                          "user who can read it")


def _head(path: Path) -> bytes:
    """First 132 bytes (preamble and magic), or ImageReadError if the file cannot be opened."""
    try:
        with open(path, "rb") as fh:
            return fh.read(132)
    except PermissionError as exc:
        raise permission_denied(path) from exc
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


def _read(path: Path, pixels: bool) -> Dataset | None:
    """The dataset (header only unless ``pixels``), or None when the file is not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except PermissionError as exc:
        raise permission_denied(path) from exc
    except InvalidDicomError:
        if _parses_as_dicom(path):  # a DICOM dataset without the 128-byte preamble
            return pydicom.dcmread(path, stop_before_pixels=not pixels, force=True)
        return None
    except (EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DicomSeriesError(f"{path}: DICOM header cannot be read ({type(exc).__name__}: "
                               f"{exc}); the file is probably truncated or corrupt: copy it "
                               "again from the scanner or PACS") from exc


def read_header(path: Path, pixels: bool = False) -> Dataset:
    """One DICOM file's dataset (pixels only if asked), with readable errors."""
    ds = _read(path, pixels)
    if ds is None:
        raise ImageReadError(f"{path}: not a DICOM file; expected DICOM images. Remove it from "
                             "the list, or load it with imaging.load if it is NIfTI")
    return ds


def _folder_headers(folder: Path, pixels: bool | None) -> list[Header]:
    files = _files_under(folder)
    if not files:
        raise ImageReadError(f"{folder}: folder is empty; expected DICOM files (searched "
                             "recursively). Check the path")
    wanted = _small_enough(files) if pixels is None else pixels
    headers = []
    for path in files:
        ds = _read(path, wanted)
        if ds is None:
            log.debug("skipping %s: not DICOM", path)
            continue
        headers.append(Header(path, ds))
    if not headers:
        shown = ", ".join(p.name for p in files[:5])
        raise ImageReadError(f"{folder}: none of its {len(files)} file(s) is DICOM ({shown}"
                             f"{' ...' if len(files) > 5 else ''}); point at a DICOM series "
                             "folder, or load NIfTI files with imaging.load")
    return headers


def _small_enough(paths: list[Path]) -> bool:
    return sum(p.stat().st_size for p in paths) <= FULL_READ_LIMIT_BYTES


def read_headers(source: Path | Sequence[Path], pixels: bool | None = False) -> list[Header]:
    """Datasets of a folder's DICOM files (searched recursively) or of the given files.

    ``pixels``: False reads headers only; True reads pixel data too (one parse per file
    when the pixels will be needed); None reads them when all files together are small.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageReadError(f"{path}: no such file or folder; check the path")
        if path.is_dir():
            return _folder_headers(path, pixels)
        return [Header(path, read_header(path, pixels is not False))]
    paths = [Path(p) for p in source]
    if not paths:
        raise ImageReadError("an empty list of files was given; expected DICOM files")
    for p in paths:
        if not p.exists():
            raise ImageReadError(f"{p}: no such file; check the path")
    wanted = _small_enough(paths) if pixels is None else pixels
    return [Header(p, read_header(p, wanted)) for p in paths]


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
