"""Scale-out: same outputs on a Dask cluster as locally; models loaded once per worker."""

from __future__ import annotations

import pickle

import pytest

from imaging.cohort import CohortEntry
from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL
from scripts import batch_models
from scripts.batch_runner import run_cohort
from segmentation.pipeline import PipelineOptions
from tests.scripts.batch_jobs import count_loads, marker_exists, record_worker_cache
from tests.scripts.output_digest import differences

pytestmark = pytest.mark.xdist_group("tiny_cohort")


def test_dask_cluster_gives_the_same_outputs_loading_models_once_per_worker(
        tiny_cohort, reference_run, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from scripts.batch import run_batch
    loads = count_loads(monkeypatch)
    out = tmp_path / "dask"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        summary = run_batch(tiny_cohort, out, PipelineOptions(device="cpu"),
                            scheduler=cluster.scheduler_address)
    assert summary.n_ok == 3
    assert differences(reference_run, out) == []
    # 3 subjects on 2 workers: at most one load of each model per worker (3 if per subject)
    assert set(loads) == {DEFAULT_MODEL, DEFAULT_LOCATOR}
    assert all(1 <= n <= 2 for n in loads.values()), loads


def test_local_worker_processes_make_their_model_cache_once(tmp_path):
    entries = [CohortEntry(f"sub-{i:02d}", tmp_path) for i in range(6)]
    out = tmp_path / "out"
    statuses = run_cohort(entries, record_worker_cache, out, is_complete=marker_exists, workers=2,
                          initializer=batch_models.init_worker)
    assert [s.status for s in statuses] == ["ok"] * 6
    seen = [(out / e.subject_id / "worker.txt").read_text().split() for e in entries]
    caches = {}
    for pid, cache in seen:
        assert cache != "none"  # the initializer ran in every worker process
        caches.setdefault(pid, set()).add(cache)
    assert all(len(ids) == 1 for ids in caches.values())  # one cache per process, kept
    assert len(caches) <= 2


def test_a_pickled_job_carries_options_not_models(monkeypatch):
    job = batch_models.SubjectJob(PipelineOptions(device="cpu"))
    job._cache._loaded[("some-model", "cpu")] = object()
    copy = pickle.loads(pickle.dumps(job))
    assert copy.options == job.options and copy._cache is None
    worker_cache = batch_models.ModelCache()
    monkeypatch.setattr(batch_models, "_worker_cache", worker_cache)
    assert copy.cache() is worker_cache
    assert job.cache() is job._cache


def test_the_job_loads_the_graft_model_its_options_name():
    names = []
    cache = batch_models.ModelCache()
    cache.get = lambda name, device, models_dir=None: names.append(name) or name
    assert cache.pipeline_models(PipelineOptions(device="cpu", graft="some-graft")) == (
        DEFAULT_MODEL, DEFAULT_LOCATOR, "some-graft")
    assert cache.pipeline_models(PipelineOptions(device="cpu", graft="none")) == (
        DEFAULT_MODEL, DEFAULT_LOCATOR)
    assert names.count("some-graft") == 1
