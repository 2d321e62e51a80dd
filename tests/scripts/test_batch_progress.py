"""The batch progress display: stages in the bar on a terminal, one log line each otherwise."""

from __future__ import annotations

import io
import logging

from scripts.batch_progress import Progress
from scripts.batch_runner import SubjectStatus


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_shows_each_running_subject_with_its_current_stage():
    stream = FakeTerminal()
    with Progress(3, stream=stream) as progress:
        progress.stage("sub-001", "segmenting ses-01")
        progress.stage("sub-002", "reading the study")
        assert "sub-001: segmenting ses-01; sub-002: reading the study" in stream.getvalue()
        progress.stage("sub-001", "registering ses-02")
        assert progress.text() == ("sub-001: registering ses-02; sub-002: reading the study; "
                                   "failed 0")
        progress.update(SubjectStatus("sub-001", "failed", 3.0, "x", "broken"))
        progress.stage("sub-001", "writing outputs")   # late, from a worker: ignored
        assert progress.text() == "sub-002: reading the study; last sub-001 failed; failed 1"
    assert "registering ses-02" in stream.getvalue()
    assert "1/3" in stream.getvalue()


def test_without_a_terminal_each_stage_change_is_one_log_line(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="graftwatch.batch"):
        with Progress(2, stream=stream) as progress:
            progress.stage("sub-001", "segmenting ses-01")
            progress.stage("sub-001", "segmenting ses-01")   # the same stage again: no line
            progress.stage("sub-001", "quantifying ses-01")
            progress.update(SubjectStatus("sub-001", "ok", 2.0, "x"))
            progress.stage("sub-001", "writing outputs")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1:3] == ["sub-001: segmenting ses-01", "sub-001: quantifying ses-01"]
    assert lines[3].startswith("[1/2] sub-001 ok in 2.0 s") and len(lines) == 4
    assert stream.getvalue() == ""
