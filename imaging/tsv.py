"""Tab-separated tables (BIDS .tsv): read as dicts, write atomically with fixed columns."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from imaging.atomic import write_text_atomic
from imaging.errors import StudyError

MISSING = "n/a"


def format_cell(value: Any) -> str:
    """BIDS cell text: n/a for missing or non-finite, compact numbers, plain strings."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, (list, tuple)):
        return ";".join(format_cell(v) for v in value) or MISSING
    return str(value).replace("\t", " ").replace("\n", " ")


def write_tsv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write rows (missing keys -> n/a) under exactly ``columns``, atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_cell(row.get(c)) for c in columns])
    return write_text_atomic(path, buffer.getvalue())


def read_tsv(path: Path, required: Sequence[str] = (), delimiter: str = "\t",
             hint: str = "") -> list[dict[str, str]]:
    """Rows of a TSV (or, with ``delimiter=","``, CSV) as dicts of strings.

    StudyError naming the file when it cannot be read or columns are missing; ``hint``
    is appended to the missing-column message.
    """
    kind = "TSV" if delimiter == "\t" else "CSV"
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StudyError(f"{path}: cannot be read as a {kind} table ({exc})") from exc
    missing = [c for c in required if c not in columns]
    if missing:
        raise StudyError(f"{path}: missing column(s) {missing}; found {columns}{hint}")
    return rows


def parse_number(text: str | None) -> float | None:
    """A TSV cell as a float; None for empty or n/a; ValueError for anything else."""
    if text is None or text.strip() in ("", MISSING):
        return None
    return float(text)
