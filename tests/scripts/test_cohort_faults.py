"""A small cohort with broken subjects: broken rows fail with their reasons, the rest complete,
the exit code is non-zero and a rerun skips what completed (the 20-subject version is
``scripts/benchmarks/cohort_faults.py``)."""

from __future__ import annotations

import shutil

import pytest

from scripts.batch import main
from scripts.benchmarks.cohort_faults import check, read_status, write_fault_manifest
from tests.scripts.output_digest import comparable_outputs

pytestmark = [pytest.mark.xdist_group("tiny_cohort"), pytest.mark.slow]

REASONS = {"corrupt_nifti": "sub-002_ses-02_T2w.nii.gz: cannot be read as NIfTI",
           "missing_session_file": "no NIfTI scan of a known contrast",
           "bad_manifest_date": "transplant_date '2025-13-45' is not a date",
           "wrong_path": "sub-003-moved does not exist"}


@pytest.mark.parametrize("breakages", [("corrupt_nifti", "missing_session_file"),
                                       ("bad_manifest_date", "wrong_path")])
def test_broken_subjects_fail_in_their_rows_and_a_rerun_skips_the_rest(
        tiny_cohort, reference_run, tmp_path, breakages, one_thread):
    study = shutil.copytree(tiny_cohort, tmp_path / "study")
    broken = write_fault_manifest(study, tmp_path / "manifest.csv", breakages)
    assert broken == dict(zip(("sub-002", "sub-003"), breakages))
    out = tmp_path / "out"
    assert main([str(tmp_path / "manifest.csv"), "--out", str(out), "--device", "cpu"]) == 1
    rows = read_status(out)
    assert check(rows, broken, "ok") == []
    errors = {r["subject_id"]: r["error"] for r in rows}
    for subject, kind in broken.items():
        assert REASONS[kind] in errors[subject], errors[subject]
    # the complete subject's masks and table are those of the run without broken neighbours
    # (its JSON, report and manifest name the copied study's paths, so they differ)
    ours, reference = (_masks_and_table(comparable_outputs(d / "sub-001"))
                       for d in (out, reference_run))
    assert ours == reference and len(ours) == 5

    assert main([str(tmp_path / "manifest.csv"), "--out", str(out), "--device", "cpu"]) == 1
    assert check(read_status(out), broken, "skipped") == []


def _masks_and_table(digests: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in digests.items() if k.endswith((".nii.gz", "_timepoints.tsv"))}
