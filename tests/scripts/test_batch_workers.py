"""Worker processes get their share of the cores; the calling process is never changed."""

from __future__ import annotations

import functools

import pytest

from imaging.cohort import CohortEntry
from scripts.batch_runner import run_cohort
from scripts.batch_workers import WorkerSetupPlugin, start_local_worker, threads_per_worker
from tests.scripts.batch_jobs import process_threads, record_threads


def test_threads_per_worker_shares_the_cores_out():
    assert threads_per_worker(1, cores=8) == 8
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(4, cores=2) == 1   # never 0


def test_local_workers_use_their_share_and_the_caller_keeps_its_threads(tmp_path):
    before = process_threads()
    entries = [CohortEntry(f"sub-{i}", tmp_path) for i in range(2)]
    out = tmp_path / "out"
    statuses = run_cohort(entries, record_threads, out, is_complete=lambda e, o: False,
                          workers=2, initializer=functools.partial(start_local_worker, 1))
    assert [s.status for s in statuses] == ["ok", "ok"]
    assert {(out / e.subject_id / "threads.txt").read_text() for e in entries} == {"1 1"}
    assert process_threads() == before


def test_dask_worker_processes_get_one_thread_in_process_workers_are_left_alone():
    distributed = pytest.importorskip("distributed")
    before = process_threads()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster.scheduler_address) as client:
        client.register_plugin(WorkerSetupPlugin())
        (threads,) = client.run(process_threads).values()
    assert tuple(threads) == (1, 1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster.scheduler_address) as client:
        client.register_plugin(WorkerSetupPlugin())
    assert process_threads() == before
