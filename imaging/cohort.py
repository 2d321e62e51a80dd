"""A cohort: the subjects a batch run goes through, from a BIDS root, DICOM trees or a manifest.

``find_cohort(root)`` accepts
- a BIDS root: every ``sub-*`` folder (participants.tsv gives injected cells and label);
- a folder of DICOM subject trees: every sub-folder is one subject;
- a CSV manifest with columns ``subject_id, path`` and optionally ``transplant_date``
  (YYYY-MM-DD), ``injected_cells``, ``label`` (none | spio | 19f).
A manifest row with a wrong path or a bad date is kept with its ``problem`` set, so a
batch run can record that row as failed and go on with the others.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from imaging.errors import StudyError
from imaging.tsv import parse_number, read_tsv

LABEL_TYPES = ("none", "spio", "19f")
MANIFEST_REQUIRED = ("subject_id", "path")


@dataclass(frozen=True)
class CohortEntry:
    """One subject to analyse; ``problem`` is set when the entry itself is unusable."""

    subject_id: str
    path: Path
    transplant_date: dt.date | None = None
    injected_cells: float | None = None
    label: str | None = None
    problem: str | None = None

    def to_dict(self) -> dict:
        return {"subject_id": self.subject_id, "path": str(self.path),
                "transplant_date": self.transplant_date.isoformat() if self.transplant_date else None,
                "injected_cells": self.injected_cells, "label": self.label, "problem": self.problem}


def find_cohort(root: Path) -> list[CohortEntry]:
    """Subjects under ``root`` (a BIDS root, a folder of DICOM trees, or a CSV manifest)."""
    root = Path(root)
    if not root.exists():
        raise StudyError(f"{root}: no such file or folder; expected a BIDS root, a folder of "
                         "subject folders, or a CSV manifest")
    if root.is_file():
        return read_manifest(root)
    entries = _bids_subjects(root) or _subject_folders(root)
    if not entries:
        raise StudyError(f"{root}: no subjects found; expected sub-* folders (BIDS), one folder "
                         "per subject (DICOM), or a CSV manifest with subject_id,path columns")
    return entries


def _participants(root: Path) -> dict[str, dict[str, str]]:
    table = root / "participants.tsv"
    if not table.exists():
        return {}
    return {row.get("participant_id", ""): row for row in read_tsv(table, ("participant_id",))}


def _bids_subjects(root: Path) -> list[CohortEntry]:
    participants = _participants(root)
    entries = []
    for folder in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        row = participants.get(folder.name, {})
        problem = None
        try:
            cells = parse_number(row.get("injected_cells"))
        except ValueError:
            cells, problem = None, (f"{root / 'participants.tsv'}: injected_cells "
                                    f"{row.get('injected_cells')!r} for {folder.name} is not a number")
        entries.append(CohortEntry(folder.name, folder, None, cells, row.get("label") or None, problem))
    return entries


def _subject_folders(root: Path) -> list[CohortEntry]:
    return [CohortEntry(p.name, p) for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith((".", "derivatives"))]


def read_manifest(path: Path) -> list[CohortEntry]:
    """Rows of a CSV manifest; rows with a bad path or value carry a ``problem``."""
    rows = read_tsv(path, MANIFEST_REQUIRED, delimiter=",",
                    hint="; a manifest needs subject_id,path[,transplant_date,injected_cells,label]")
    if not rows:
        raise StudyError(f"{path}: manifest has no rows; expected one row per subject")
    return [_manifest_entry(Path(path), number, row) for number, row in enumerate(rows, start=2)]


def _manifest_entry(manifest: Path, line: int, row: dict[str, str]) -> CohortEntry:
    subject = (row.get("subject_id") or "").strip() or f"line-{line}"
    target = Path((row.get("path") or "").strip())
    if not target.is_absolute():
        target = manifest.parent / target
    problems = []
    if not target.exists():
        problems.append(f"path {target} does not exist")
    date = None
    text = (row.get("transplant_date") or "").strip()
    if text:
        try:
            date = dt.date.fromisoformat(text)
        except ValueError:
            problems.append(f"transplant_date {text!r} is not a date (expected YYYY-MM-DD)")
    cells = None
    try:
        cells = parse_number(row.get("injected_cells"))
    except ValueError:
        problems.append(f"injected_cells {row.get('injected_cells')!r} is not a number")
    label = (row.get("label") or "").strip().lower() or None
    if label is not None and label not in LABEL_TYPES:
        problems.append(f"label {label!r} is not one of {LABEL_TYPES}")
    problem = f"{manifest} line {line}: " + "; ".join(problems) if problems else None
    return CohortEntry(subject, target, date, cells, label, problem)
