"""Run one job per subject: locally in worker processes, or on a Dask cluster.

One failure never stops the others: every subject ends as ``ok``, ``failed`` (with the
error message) or ``skipped`` (outputs already complete and valid). The caller gives the
job and the completeness check, so this module knows nothing about MRI.

Stages: with ``on_stage(subject_id, stage)`` given, the job is called as ``job(entry,
out_dir, on_stage=report)`` and every ``report(stage)`` it makes reaches ``on_stage`` in the
calling process, in order: directly without worker processes, through a multiprocessing
queue (given to each worker process when it starts) drained every 0.2 s for local workers;
a stage may then arrive just after its subject's status. Dask workers report no stages of their
own: the subject gets "sent to the cluster" and then "on worker ADDRESS" when the scheduler
gives it to a worker (polled every 0.5 s).
"""

from __future__ import annotations

import concurrent.futures as cf
import errno
import functools
import logging
import multiprocessing
import queue
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from imaging.cohort import CohortEntry

log = logging.getLogger(__name__)

STATUS_COLUMNS = ("subject_id", "status", "seconds", "path", "error")


@dataclass(frozen=True)
class SubjectStatus:
    subject_id: str
    status: str  # ok | failed | skipped
    seconds: float
    path: str
    error: str = ""

    def to_row(self) -> dict[str, str]:
        return {"subject_id": self.subject_id, "status": self.status,
                "seconds": f"{self.seconds:.1f}", "path": self.path,
                "error": " ".join(self.error.split())}


Job = Callable[..., None]   # job(entry, out_dir) or job(entry, out_dir, on_stage=report)
StageSink = Callable[[str, str], None]   # (subject_id, stage)


def run_one(job: Job, entry: CohortEntry, out_dir: Path,
            report: Callable[[str], None] | None = None) -> SubjectStatus:
    """Run ``job`` for one subject and turn any exception into a ``failed`` status."""
    start = time.perf_counter()
    if entry.problem:
        return SubjectStatus(entry.subject_id, "failed", 0.0, str(entry.path), entry.problem)
    try:
        if report is None:
            job(entry, out_dir)
        else:
            job(entry, out_dir, on_stage=report)
    except Exception as exc:  # one subject's failure, whatever it is, must not stop the batch
        return SubjectStatus(entry.subject_id, "failed", time.perf_counter() - start,
                             str(entry.path), failure_message(entry, exc))
    return SubjectStatus(entry.subject_id, "ok", time.perf_counter() - start, str(entry.path))


def failure_message(entry: CohortEntry, exc: Exception) -> str:
    """The status.tsv reason: the project's own message, a plain one for a full disk, else
    the exception named as unexpected (with its traceback in the log)."""
    from imaging.errors import GraftwatchError
    if isinstance(exc, GraftwatchError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"disk full while writing {entry.subject_id}'s outputs ({exc.strerror}: "
                f"{exc.filename or 'output folder'}); its outputs are not marked complete: free "
                "space on the output disk and rerun (completed subjects are skipped)")
    log.error("%s failed unexpectedly:\n%s", entry.subject_id, traceback.format_exc())
    return f"{type(exc).__name__}: {exc} (unexpected; details in the log)"


def run_cohort(entries: Sequence[CohortEntry], job: Job, out_dir: Path, *,
               is_complete: Callable[[CohortEntry, Path], bool], force: bool = False,
               workers: int = 1, scheduler: str | None = None,
               on_done: Callable[[SubjectStatus], None] | None = None,
               on_stage: StageSink | None = None,
               cost: Callable[[CohortEntry], float] | None = None,
               initializer: Callable[[], None] | None = None,
               dask_plugins: Sequence = ()) -> list[SubjectStatus]:
    """Run ``job`` over ``entries``; return one status per entry, in the entries' order.

    ``initializer`` runs once in each local worker process, ``dask_plugins`` (Dask
    WorkerPlugins) are registered on every Dask worker: where per-worker state (loaded
    models, thread counts) is made once, not per subject. ``cost`` (e.g. ``input_bytes``):
    with several workers, the subjects expected to take longest are started first, so
    that no worker is left finishing a long subject alone at the end.
    """
    done: dict[str, SubjectStatus] = {}
    todo = []
    for entry in entries:
        if not force and not entry.problem and is_complete(entry, out_dir):
            done[entry.subject_id] = SubjectStatus(entry.subject_id, "skipped", 0.0, str(entry.path))
            _notify(on_done, done[entry.subject_id])
        else:
            todo.append(entry)
    if cost is not None and (scheduler or workers > 1):
        todo.sort(key=cost, reverse=True)   # stable: equal costs keep the cohort's order
    results = (_run_dask(job, todo, out_dir, scheduler, dask_plugins, on_stage) if scheduler
               else _run_local(job, todo, out_dir, workers, initializer, on_stage))
    for status in results:
        done[status.subject_id] = status
        _notify(on_done, status)
    return [done[e.subject_id] for e in entries]


def input_bytes(entry: CohortEntry) -> float:
    """Bytes of the files under the entry's path (0 when it is missing): a subject's cost."""
    path = Path(entry.path)
    if path.is_file():
        return float(path.stat().st_size)
    return float(sum(f.stat().st_size for f in path.rglob("*") if f.is_file())) if path.is_dir() else 0.0


def _notify(on_done, status: SubjectStatus) -> None:
    if on_done is not None:
        on_done(status)


_worker_stages = None  # set only in a local worker process, by _init_worker


def _init_worker(stages, initializer) -> None:
    """Process-pool initializer: keep the stage queue (a multiprocessing queue may only
    reach a worker when it starts), then run the caller's initializer."""
    global _worker_stages
    _worker_stages = stages
    if initializer is not None:
        initializer()


def _queue_report(subject_id: str, stage: str) -> None:
    _worker_stages.put((subject_id, stage))


def _run_in_worker(job: Job, entry: CohortEntry, out_dir: Path, report_stages: bool) -> SubjectStatus:
    report = functools.partial(_queue_report, entry.subject_id) if report_stages else None
    return run_one(job, entry, out_dir, report)


def _drain(stages, on_stage: StageSink) -> None:
    while True:
        try:
            on_stage(*stages.get_nowait())
        except queue.Empty:
            return


def _run_local(job: Job, todo: Sequence[CohortEntry], out_dir: Path,
               workers: int, initializer, on_stage: StageSink | None) -> Iterable[SubjectStatus]:
    if workers <= 1:
        for entry in todo:
            report = functools.partial(on_stage, entry.subject_id) if on_stage else None
            yield run_one(job, entry, out_dir, report)
        return
    context = multiprocessing.get_context("spawn")
    stages = context.Queue() if on_stage else None
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                initargs=(stages, initializer)) as pool:
        futures = {pool.submit(_run_in_worker, job, entry, out_dir, stages is not None): entry
                   for entry in todo}
        pending = set(futures)
        while pending:
            finished, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            if stages is not None:
                _drain(stages, on_stage)
            for future in finished:
                yield _local_status(future, futures[future])
    if stages is not None:
        _drain(stages, on_stage)   # what the last workers sent before they stopped


def _local_status(future: cf.Future, entry: CohortEntry) -> SubjectStatus:
    try:
        return future.result()
    except Exception as exc:  # the worker process itself died (killed, out of memory)
        return SubjectStatus(entry.subject_id, "failed", 0.0, str(entry.path),
                             f"worker process failed: {type(exc).__name__}: {exc}")


def _run_dask(job: Job, todo: Sequence[CohortEntry], out_dir: Path, scheduler: str, plugins,
              on_stage: StageSink | None) -> Iterable[SubjectStatus]:
    from distributed import Client, as_completed
    with Client(scheduler) as client:
        for plugin in plugins:
            client.register_plugin(plugin)
        futures = [client.submit(run_one, job, entry, out_dir, key=f"graftwatch-{entry.subject_id}",
                                 pure=False) for entry in todo]
        by_key = {f.key: e for f, e in zip(futures, todo)}
        completed = as_completed(futures)
        if on_stage is None:
            for future in completed:
                yield _dask_status(future, by_key[future.key])
            return
        for entry in todo:
            on_stage(entry.subject_id, "sent to the cluster")
        placed: dict[str, str] = {}
        while not completed.is_empty():
            _report_placement(client, by_key, placed, on_stage)
            finished = completed.next_batch(block=False)
            for future in finished:
                yield _dask_status(future, by_key[future.key])
            if not finished:
                time.sleep(0.5)


def _report_placement(client, by_key: dict, placed: dict[str, str], on_stage: StageSink) -> None:
    """'on worker ADDRESS' for each subject the scheduler newly gave to a worker."""
    for worker, keys in client.processing().items():
        for key in keys:
            if key in by_key and placed.get(key) != worker:
                placed[key] = worker
                on_stage(by_key[key].subject_id, f"on worker {worker}")


def _dask_status(future, entry: CohortEntry) -> SubjectStatus:
    try:
        return future.result()
    except Exception as exc:  # the Dask worker died or lost the task
        return SubjectStatus(entry.subject_id, "failed", 0.0, str(entry.path),
                             f"dask worker failed: {type(exc).__name__}: {exc}")
