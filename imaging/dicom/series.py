"""What series a folder holds (``list_series``) and which one the user means (``select_series``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from imaging.dicom.frames import frames_of
from imaging.dicom.geometry import plane_of
from imaging.dicom.metadata import infer_contrast, series_identity
from imaging.dicom.scan import Header, image_series, read_headers
from imaging.dicom.stack import Stack, assemble
from imaging.errors import DicomSeriesError, GraftwatchError


@dataclass(frozen=True)
class SeriesInfo:
    """One image series as found on disk (no pixels read). Patient ID is never shown."""

    series_uid: str
    study_uid: str
    description: str
    modality: str | None
    plane: str
    dims: tuple[int, ...]
    spacing_mm: tuple[float, float, float]
    n_echoes: int
    n_files: int
    files: tuple[Path, ...] = field(repr=False)
    study_date: str | None
    acquisition_datetime: str | None
    patient_id: str | None = field(repr=False)
    contrast: str | None
    series_number: int | None = None
    echo_times_ms: tuple[float, ...] = ()
    problem: str | None = None  # why the series cannot be loaded as it is, if it cannot

    def to_row(self) -> dict[str, Any]:
        """Table / JSON row (no patient identity)."""
        return {"series_uid": self.series_uid, "series_number": self.series_number,
                "description": self.description, "modality": self.modality,
                "plane": self.plane, "dims": "x".join(str(d) for d in self.dims),
                "spacing_mm": "x".join(f"{s:.3g}" for s in self.spacing_mm),
                "echoes": self.n_echoes, "files": self.n_files, "contrast": self.contrast,
                "study_date": self.study_date, "problem": self.problem}


def stack_of(headers: list[Header], source: str, **options: Any) -> Stack:
    frames = [frame for h in headers for frame in frames_of(h.dataset, h.path)]
    return assemble(frames, source, **options)


def _rough_shape(headers: list[Header]) -> tuple[int, ...]:
    ds = headers[0].dataset
    return (int(ds.Columns), int(ds.Rows), len(headers))


def describe(uid: str, headers: list[Header]) -> SeriesInfo:
    """SeriesInfo of one group of headers; geometry problems are recorded, not raised."""
    ds = headers[0].dataset
    ident = series_identity(ds)
    problem, plane, dims, spacing, tes = None, "unknown", _rough_shape(headers), (0.0,) * 3, ()
    try:
        stack = stack_of(headers, f"series {uid}")
        first = stack.grid[0][0]
        plane, dims, tes = plane_of(first.orientation), stack.shape, stack.echo_times_ms
        spacing = tuple(np.linalg.norm(stack.affine_lps[:3, :3], axis=0))
    except GraftwatchError as exc:
        problem = str(exc)
    number = getattr(ds, "SeriesNumber", None)
    return SeriesInfo(
        series_uid=uid, study_uid=ident["study_uid"], description=ident["series_description"],
        modality=ident["modality"], plane=plane, dims=tuple(dims),
        spacing_mm=tuple(float(s) for s in spacing), n_echoes=max(len(tes), 1),
        n_files=len(headers), files=tuple(h.path for h in headers),
        study_date=ident["study_date"], acquisition_datetime=ident["acquisition_datetime"],
        patient_id=str(getattr(ds, "PatientID", "")) or None,
        contrast=infer_contrast(ds, tes), series_number=int(number) if number not in (None, "") else None,
        echo_times_ms=tuple(tes), problem=problem)


def list_series(path: Path | Sequence[Path]) -> list[SeriesInfo]:
    """Every image series under a folder (recursively) or among the given files."""
    groups = image_series(read_headers(path), str(path))
    infos = [describe(uid, headers) for uid, headers in groups.items()]
    return sorted(infos, key=lambda s: (s.study_date or "", s.series_number or 0, s.series_uid))


def _listing(groups: dict[str, list[Header]]) -> str:
    lines = []
    for uid, headers in groups.items():
        desc = series_identity(headers[0].dataset)["series_description"]
        lines.append(f"  {uid}  {desc!r}  ({len(headers)} files, e.g. {headers[0].path})")
    return "\n".join(lines)


def select_series(groups: dict[str, list[Header]], series: str | None,
                  source: str) -> tuple[str, list[Header]]:
    """The one group meant by ``series`` (UID, exact description, or unique substring of it)."""
    if series is None:
        if len(groups) == 1:
            return next(iter(groups.items()))
        raise DicomSeriesError(
            f"{source}: holds {len(groups)} series; expected one. Choose one with series=... "
            f"(command line: --series) giving its UID or description:\n{_listing(groups)}")
    if series in groups:
        return series, groups[series]
    descriptions = {uid: series_identity(h[0].dataset)["series_description"]
                    for uid, h in groups.items()}
    for matches in ([u for u, d in descriptions.items() if d == series],
                    [u for u, d in descriptions.items() if series.lower() in d.lower()]):
        if len(matches) == 1:
            return matches[0], groups[matches[0]]
        if len(matches) > 1:
            chosen = {u: groups[u] for u in matches}
            raise DicomSeriesError(
                f"{source}: series={series!r} matches {len(matches)} series; pass the UID of "
                f"one of them:\n{_listing(chosen)}")
    raise DicomSeriesError(f"{source}: no series matches series={series!r}; the folder "
                           f"holds:\n{_listing(groups)}")
