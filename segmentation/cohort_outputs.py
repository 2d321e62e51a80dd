"""What a batch run writes beside the subjects: status.tsv, cohort.tsv and the index page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imaging.tsv import read_tsv, write_tsv

STATUS_COLUMNS = ("subject_id", "status", "seconds", "path", "error")


@dataclass(frozen=True)
class BatchSummary:
    out_dir: Path
    n_ok: int
    n_failed: int
    n_skipped: int
    index_html: Path | None

    def describe(self) -> str:
        text = (f"{self.n_ok} analysed, {self.n_skipped} already complete (skipped), "
                f"{self.n_failed} failed; status in {self.out_dir / 'status.tsv'}")
        if self.index_html is not None:
            text += f"\nreport: {self.index_html}"
        return text


def timepoints_table(out_dir: Path, subject_id: str) -> Path:
    return Path(out_dir) / subject_id / f"{subject_id}_timepoints.tsv"


def write_cohort_outputs(out_dir: Path, entries, statuses, include_report: bool = True) -> BatchSummary:
    """status.tsv, cohort.tsv (every ok/skipped subject's timepoints) and index.html."""
    from segmentation.outputs import TIMEPOINT_COLUMNS
    out_dir = Path(out_dir)
    write_tsv(out_dir / "status.tsv", STATUS_COLUMNS, [s.to_row() for s in statuses])
    rows = []
    for status in statuses:
        if status.status in ("ok", "skipped"):
            for row in read_tsv(timepoints_table(out_dir, status.subject_id)):
                rows.append({"subject_id": status.subject_id, **row})
    write_tsv(out_dir / "cohort.tsv", ("subject_id",) + tuple(TIMEPOINT_COLUMNS), rows)
    index = None
    if include_report:
        from segmentation.report import write_cohort_index
        index = write_cohort_index(out_dir, statuses)
    counts = {name: sum(s.status == name for s in statuses) for name in ("ok", "failed", "skipped")}
    return BatchSummary(out_dir, counts["ok"], counts["failed"], counts["skipped"], index)
