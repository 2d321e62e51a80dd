"""Small picklable jobs for the batch-runner tests (worker processes import them by name)."""

from __future__ import annotations

from pathlib import Path

from imaging.atomic import write_text_atomic
from imaging.errors import StudyError


def write_marker(entry, out_dir: Path) -> None:
    """Succeeds unless the subject id says 'broken'."""
    if "broken" in entry.subject_id:
        raise StudyError(f"{entry.path}: broken on purpose")
    if "crash" in entry.subject_id:
        raise ZeroDivisionError("division by zero")
    write_text_atomic(Path(out_dir) / entry.subject_id / "done.txt", entry.subject_id)


def marker_exists(entry, out_dir: Path) -> bool:
    marker = Path(out_dir) / entry.subject_id / "done.txt"
    return marker.exists() and marker.read_text() == entry.subject_id
