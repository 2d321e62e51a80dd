"""``graftwatch series PATH [--json]``: list the DICOM image series under a folder.

Prints one row per series (UID, description, plane, dims, spacing, echo count,
files); patient identity is never printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

COLUMNS = (("series_uid", "UID"), ("series_number", "#"), ("description", "description"),
           ("plane", "plane"), ("dims", "dims"), ("spacing_mm", "spacing (mm)"),
           ("echoes", "echoes"), ("files", "files"), ("contrast", "contrast"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graftwatch series",
        description="List the DICOM image series in a folder (searched recursively), "
                    "with what you need to choose one: UID, description, plane, dims, spacing, "
                    "echo count. Load one with --series UID or part of its description.")
    parser.add_argument("path", type=Path, help="a DICOM folder or file")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    return parser


def format_table(rows: list[dict]) -> str:
    """Left-aligned text table of the COLUMNS of ``rows``, with a final problems list."""
    cells = [[head for _, head in COLUMNS]]
    cells += [["" if row[key] is None else str(row[key]) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    lines += [f"problem in {row['series_uid']}: {row['problem']}" for row in rows if row["problem"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from imaging.dicom import list_series
    rows = [info.to_row() for info in list_series(args.path)]
    if args.json:
        import json
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    return 0
