from __future__ import annotations

import datetime as dt

import pytest

from imaging.cohort import find_cohort
from imaging.errors import StudyError


def test_bids_root_lists_subjects_with_participant_columns(tmp_path):
    for name in ("sub-02", "sub-01"):
        (tmp_path / name / "ses-01").mkdir(parents=True)
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tinjected_cells\tlabel\nsub-01\t2000000\tspio\nsub-02\t0\tnone\n")
    entries = find_cohort(tmp_path)
    assert [e.subject_id for e in entries] == ["sub-01", "sub-02"]
    assert entries[0].injected_cells == 2e6 and entries[0].label == "spio"


def test_manifest_rows_with_bad_path_or_date_carry_their_problem(tmp_path):
    (tmp_path / "a").mkdir()
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("subject_id,path,transplant_date,injected_cells,label\n"
                        "p1,a,2025-03-01,2e6,none\n"
                        "p2,missing,2025-03-01,2e6,none\n"
                        "p3,a,01/03/2025,2e6,none\n")
    good, bad_path, bad_date = find_cohort(manifest)
    assert good.problem is None and good.transplant_date == dt.date(2025, 3, 1)
    assert "does not exist" in bad_path.problem and "line 3" in bad_path.problem
    assert "not a date" in bad_date.problem


def test_empty_root_and_bad_manifest_are_clear_errors(tmp_path):
    with pytest.raises(StudyError, match="no subjects found"):
        find_cohort(tmp_path)
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,where\nx,y\n")
    with pytest.raises(StudyError, match="missing column"):
        find_cohort(manifest)
