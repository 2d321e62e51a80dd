"""Faults during a batch run: kill -9 and a full disk. A rerun completes, and its outputs are
identical to an uninterrupted run's (``output_digest`` lists the fields allowed to differ)."""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import time

import pytest

from scripts.batch import main
from segmentation.outputs import manifest_path, outputs_complete
from tests.scripts.batch_process import PROJECT_ROOT, batch_command, deterministic_env
from tests.scripts.output_digest import differences

pytestmark = [pytest.mark.xdist_group("tiny_cohort"), pytest.mark.slow]


def _status(out):
    with (out / "status.tsv").open() as handle:
        return {r["subject_id"]: r for r in csv.DictReader(handle, delimiter="\t")}


def _wait_for(path, process, log, timeout_s=300.0):
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"batch ended (code {process.returncode}) before {path} appeared:\n"
                        f"{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path} did not appear within {timeout_s:.0f} s")
        time.sleep(0.05)


def test_kill_9_then_rerun_gives_the_uninterrupted_outputs(tiny_cohort, reference_run, tmp_path,
                                                            one_thread):
    out = tmp_path / "out"
    log = tmp_path / "killed.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(batch_command(tiny_cohort, out), cwd=PROJECT_ROOT,
                                   env=deterministic_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        _wait_for(manifest_path(out, "sub-001"), process, log)
    os.kill(process.pid, signal.SIGKILL)  # while sub-002 is being analysed
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert outputs_complete(out, "sub-001")
    assert not outputs_complete(out, "sub-003")
    assert not (out / "status.tsv").exists()

    assert main([str(tiny_cohort), "--out", str(out), "--device", "cpu"]) == 0
    status = _status(out)
    assert status["sub-001"]["status"] == "skipped"  # completed before the kill: not redone
    assert status["sub-003"]["status"] == "ok"
    assert differences(reference_run, out) == []


def test_disk_full_fails_the_subject_clearly_and_a_rerun_completes(tiny_cohort, reference_run,
                                                                   tmp_path, monkeypatch,
                                                                   one_thread):
    out = tmp_path / "out"
    real_replace = os.replace
    target = out / "sub-002"
    renamed = []

    def disk_full_in_sub_002(src, dst, *args, **kwargs):
        if str(dst).startswith(str(target)):
            renamed.append(dst)
            if len(renamed) > 2:  # a few files of sub-002 are written, then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", disk_full_in_sub_002)
    assert main([str(tiny_cohort), "--out", str(out), "--device", "cpu"]) == 1
    monkeypatch.undo()
    status = _status(out)
    assert [status[s]["status"] for s in ("sub-001", "sub-002", "sub-003")] == ["ok", "failed", "ok"]
    assert status["sub-002"]["error"].startswith("disk full while writing sub-002's outputs")
    assert "free space" in status["sub-002"]["error"]
    assert len(list(target.rglob("*.nii.gz"))) == 2  # half-written: files, but no manifest
    assert not outputs_complete(out, "sub-002")
    assert list(out.rglob(".*.tmp*")) == []  # the failed write left no temporary behind

    assert main([str(tiny_cohort), "--out", str(out), "--device", "cpu"]) == 0
    status = _status(out)
    assert [status[s]["status"] for s in ("sub-001", "sub-002", "sub-003")] == [
        "skipped", "ok", "skipped"]
    assert differences(reference_run, out) == []


def test_rerun_removes_what_a_killed_write_left(tiny_cohort, reference_run, tmp_path, one_thread):
    """A kill inside an atomic write leaves its temporary file; the next run removes it."""
    import shutil
    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    stale = out / "sub-002" / "ses-01" / "anat" / ".sub-002_ses-01_dseg.nii.gz.k3j2.tmp.nii.gz"
    stale.write_bytes(b"half a file")
    assert main([str(tiny_cohort), "--out", str(out), "--device", "cpu"]) == 0
    assert not stale.exists()
    assert differences(reference_run, out) == []
