"""The stages ``run_subject`` / ``analyze_subject`` report, in order, for a phantom subject."""

from __future__ import annotations

import json

from imaging.cohort import CohortEntry


def test_a_phantom_subject_reports_its_stages_in_order(tmp_path):
    from imaging.phantom import write_dataset
    from segmentation.pipeline import PipelineOptions, run_subject
    study = write_dataset(tmp_path / "study", n_subjects=1, seed=11, labels=("none",),
                          n_sessions=3)
    out = tmp_path / "out"
    stages: list[str] = []
    run_subject(CohortEntry("sub-001", study / "sub-001"), out,
                PipelineOptions(device="cpu", write_report=False), on_stage=stages.append)
    saved = json.loads((out / "sub-001" / "sub-001_survival.json").read_text())
    sessions = [t["session_id"] for t in saved["timepoints"]]
    assert sessions == ["ses-01", "ses-02", "ses-03"]
    registered = [t["session_id"] for t in saved["timepoints"] if t["transform"] is not None]
    assert registered == ["ses-02", "ses-03"]   # the later sessions, onto the baseline
    expected = ["reading the study", *(f"segmenting {s}" for s in sessions)]
    for session in sessions:
        expected += [f"registering {session}"] * (session in registered) + [f"quantifying {session}"]
    assert stages == [*expected, "survival fit and flags", "writing outputs"]
