from __future__ import annotations

from pathlib import Path

import pytest

from imaging.cohort import CohortEntry
from imaging.errors import OutputError
from scripts.batch_lock import output_lock
from scripts.batch_runner import input_bytes, run_cohort
from tests.scripts.batch_jobs import marker_exists, record_start, report_stages, write_marker


def _entries(tmp_path: Path, names):
    return [CohortEntry(n, tmp_path / n) for n in names]


@pytest.mark.parametrize("workers", [1, 2])
def test_failures_do_not_stop_the_others(tmp_path, workers):
    names = ["sub-01", "sub-broken", "sub-03", "sub-crash", "sub-05"]
    out = tmp_path / "out"
    statuses = run_cohort(_entries(tmp_path, names), write_marker, out,
                          is_complete=marker_exists, workers=workers)
    assert [s.subject_id for s in statuses] == names
    assert [s.status for s in statuses] == ["ok", "failed", "ok", "failed", "ok"]
    assert "broken on purpose" in statuses[1].error
    assert "ZeroDivisionError" in statuses[3].error
    assert all((out / n / "done.txt").exists() for n in ("sub-01", "sub-03", "sub-05"))


def test_rerun_skips_complete_subjects_unless_forced(tmp_path):
    out = tmp_path / "out"
    entries = _entries(tmp_path, ["sub-01", "sub-02"])
    run_cohort(entries, write_marker, out, is_complete=marker_exists)
    (out / "sub-02" / "done.txt").write_text("half-written")
    second = run_cohort(entries, write_marker, out, is_complete=marker_exists)
    assert [s.status for s in second] == ["skipped", "ok"]
    forced = run_cohort(entries, write_marker, out, is_complete=marker_exists, force=True)
    assert [s.status for s in forced] == ["ok", "ok"]


def test_entry_with_a_problem_fails_with_its_reason(tmp_path):
    entries = [CohortEntry("sub-01", tmp_path, problem="manifest line 2: path /x does not exist")]
    (status,) = run_cohort(entries, write_marker, tmp_path / "out", is_complete=marker_exists)
    assert status.status == "failed" and "does not exist" in status.error


def test_second_lock_on_the_same_folder_is_refused(tmp_path):
    with output_lock(tmp_path / "out"):
        with pytest.raises(OutputError, match="another graftwatch batch is writing"):
            with output_lock(tmp_path / "out"):
                pass
    with output_lock(tmp_path / "out"):  # released after the first run
        pass


def test_dask_local_cluster_gives_the_same_statuses(tmp_path):
    distributed = pytest.importorskip("distributed")
    names = ["sub-01", "sub-broken", "sub-03"]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        statuses = run_cohort(_entries(tmp_path, names), write_marker, tmp_path / "out",
                              is_complete=marker_exists, scheduler=cluster.scheduler_address)
    assert [s.status for s in statuses] == ["ok", "failed", "ok"]


@pytest.mark.parametrize("workers", [1, 2])
def test_stages_reach_the_caller_in_order_from_worker_processes(tmp_path, workers):
    names = ["sub-01", "sub-02", "sub-03"]
    seen: list[tuple[str, str]] = []
    order: list[str] = []
    statuses = run_cohort(_entries(tmp_path, names), report_stages, tmp_path / "out",
                          is_complete=marker_exists, workers=workers,
                          on_stage=lambda sid, stage: seen.append((sid, stage)),
                          on_done=lambda status: order.append(status.subject_id))
    assert [s.status for s in statuses] == ["ok"] * 3
    for name in names:
        assert [stage for sid, stage in seen if sid == name] == [
            f"step {n} of {name}" for n in (1, 2, 3)]
    assert sorted(order) == names


def test_dask_subjects_report_being_sent_and_their_worker(tmp_path):
    distributed = pytest.importorskip("distributed")
    names = ["sub-slow-01", "sub-slow-02"]
    seen: list[tuple[str, str]] = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        statuses = run_cohort(_entries(tmp_path, names), report_stages, tmp_path / "out",
                              is_complete=marker_exists, scheduler=cluster.scheduler_address,
                              on_stage=lambda sid, stage: seen.append((sid, stage)))
        workers = set(cluster.scheduler_info["workers"])
    assert [s.status for s in statuses] == ["ok", "ok"]
    for name in names:
        stages = [stage for sid, stage in seen if sid == name]
        assert stages[0] == "sent to the cluster"
        # each task runs 1.2 s, the scheduler is polled every 0.5 s
        assert [s.removeprefix("on worker ") in workers for s in stages[1:]] == [True]


def test_with_two_workers_the_costliest_subjects_start_first(tmp_path):
    cost = {"sub-a": 1.0, "sub-b": 4.0, "sub-c": 2.0, "sub-d": 3.0}
    entries = _entries(tmp_path, cost)
    out = tmp_path / "out"
    statuses = run_cohort(entries, record_start, out, is_complete=lambda e, o: False,
                          workers=2, cost=lambda e: cost[e.subject_id])
    assert [s.subject_id for s in statuses] == list(cost)   # still in the cohort's order
    started = sorted(cost, key=lambda n: int((out / n / "started.txt").read_text()))
    assert set(started[:2]) == {"sub-b", "sub-d"} and set(started[2:]) == {"sub-a", "sub-c"}


def test_input_bytes_counts_the_files_under_the_subject(tmp_path):
    (tmp_path / "sub-01" / "ses-01").mkdir(parents=True)
    (tmp_path / "sub-01" / "ses-01" / "scan.nii").write_bytes(b"x" * 300)
    (tmp_path / "sub-01" / "sessions.tsv").write_bytes(b"x" * 20)
    assert input_bytes(CohortEntry("sub-01", tmp_path / "sub-01")) == 320
    assert input_bytes(CohortEntry("sub-02", tmp_path / "missing")) == 0


def test_output_folder_that_cannot_be_written_is_refused_with_its_path(tmp_path, capsys):
    """A folder under a regular file cannot be created, even by root (unlike permissions)."""
    from scripts.cli import main
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    root = tmp_path / "study"
    (root / "sub-001" / "anat").mkdir(parents=True)
    out = blocker / "out"
    assert main(["batch", str(root), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"graftwatch batch: error: cannot write to output folder {out}" in err
    assert "Traceback" not in err
