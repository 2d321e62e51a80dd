"""Unexpected exceptions at the command line: one line naming the subject (exit 2), the
traceback only with -v; graftwatch errors keep exit 1 and their message."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from imaging.errors import StudyError
from models.registry import DEFAULT_MODEL
from scripts.cli import main


def _fail(*args, **kwargs):
    raise ValueError("boom in the reader")


@pytest.fixture
def failing_discovery(monkeypatch):
    import imaging.study
    monkeypatch.setattr(imaging.study, "discover_subject", _fail)


def test_analyze_unexpected_error_is_one_line_naming_the_subject(failing_discovery, tmp_path,
                                                                capsys):
    subject = tmp_path / "sub-001"
    assert main(["analyze", str(subject), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"graftwatch analyze: unexpected error (subject {subject}): "
                           "ValueError: boom in the reader; run with -v for the traceback")


def test_analyze_with_verbose_shows_the_traceback(failing_discovery, tmp_path, capsys):
    subject = tmp_path / "sub-001"
    assert main(["analyze", str(subject), "--out", str(tmp_path / "out"), "-v"]) == 2
    err = capsys.readouterr().err
    assert f"unexpected error (subject {subject}): ValueError: boom in the reader\n" in err
    assert "Traceback (most recent call last)" in err and "in _fail" in err


def test_batch_unexpected_error_outside_a_subject_names_the_cohort(monkeypatch, tmp_path, capsys):
    import imaging.cohort
    monkeypatch.setattr(imaging.cohort, "find_cohort", _fail)
    root, out = tmp_path / "study", tmp_path / "out"
    assert main(["batch", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"graftwatch batch: unexpected error (cohort {root}, output {out}): ValueError" in err
    assert "run with -v for the traceback" in err and "Traceback" not in err


def test_graftwatch_errors_keep_exit_code_1(monkeypatch, tmp_path, capsys):
    import imaging.study

    def bad_study(*args, **kwargs):
        raise StudyError("study/sub-001: no sessions; expected ses-* folders")

    monkeypatch.setattr(imaging.study, "discover_subject", bad_study)
    assert main(["analyze", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "graftwatch analyze: error: study/sub-001: no sessions; expected ses-* folders"


def test_analyze_reads_the_models_from_models_dir(monkeypatch, tmp_path, capsys):
    import imaging.study
    monkeypatch.setattr(imaging.study, "discover_subject", lambda *a, **k: SimpleNamespace(participant={}))
    empty = tmp_path / "models"
    empty.mkdir()
    assert main(["analyze", str(tmp_path / "sub-001"), "--out", str(tmp_path / "out"),
                 "--models-dir", str(empty), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert f"no model named '{DEFAULT_MODEL}'" in err and str(empty) in err
