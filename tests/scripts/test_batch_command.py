"""The batch command end to end on a small phantom cohort with one broken subject."""

from __future__ import annotations

import csv

import pytest

from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL
from scripts.batch import main
from tests.scripts.batch_jobs import count_loads


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from imaging.phantom import write_dataset
    root = tmp_path_factory.mktemp("cohort") / "study"
    write_dataset(root, n_subjects=3, seed=7, labels=("none",))
    for scan in sorted((root / "sub-003").glob("ses-*/anat/*_T2w.nii.gz")):
        scan.write_bytes(scan.read_bytes()[:200])  # every scan truncated: the subject fails
    one = sorted((root / "sub-002").glob("ses-*/anat/*_T2w.nii.gz"))[-1]
    one.write_bytes(b"not an image")  # one unreadable session: flagged, the rest analysed
    return root


def _rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_batch_isolates_failures_writes_tables_and_resumes(cohort, tmp_path, monkeypatch):
    out = tmp_path / "out"
    loads = count_loads(monkeypatch)
    assert main([str(cohort), "--out", str(out), "--device", "cpu"]) == 1
    # 3 subjects in one process: each model loaded once, not once per subject
    assert loads == {DEFAULT_MODEL: 1, DEFAULT_LOCATOR: 1}
    status = {r["subject_id"]: r for r in _rows(out / "status.tsv")}
    assert [status[s]["status"] for s in ("sub-001", "sub-002", "sub-003")] == ["ok", "ok", "failed"]
    assert "no session of" in status["sub-003"]["error"] and "NIfTI" in status["sub-003"]["error"]
    sub2 = _rows(out / "sub-002" / "sub-002_timepoints.tsv")
    assert sub2[-1]["flags"] == "session_unreadable" and sub2[-1]["graft_volume_mm3"] == "n/a"
    assert all(r["cord_volume_mm3"] != "n/a" for r in sub2[:-1])
    timepoints = _rows(out / "sub-001" / "sub-001_timepoints.tsv")
    assert timepoints[0]["session_id"] == "ses-01"
    assert {"graft_volume_mm3", "surviving_fraction_ci_low", "flags"} <= set(timepoints[0])
    cohort_rows = _rows(out / "cohort.tsv")
    assert {r["subject_id"] for r in cohort_rows} == {"sub-001", "sub-002"}
    assert (out / "sub-001" / "sub-001_report.html").read_text().count("<img") >= 1
    assert main([str(cohort), "--out", str(out), "--device", "cpu"]) == 1
    again = {r["subject_id"]: r["status"] for r in _rows(out / "status.tsv")}
    assert again == {"sub-001": "skipped", "sub-002": "skipped", "sub-003": "failed"}
