"""Run one job per subject: locally in worker processes, or on a Dask cluster.

One failure never stops the others: every subject ends as ``ok``, ``failed`` (with the
error message) or ``skipped`` (outputs already complete and valid). The caller gives the
job and the completeness check, so this module knows nothing about MRI.
"""

from __future__ import annotations

import concurrent.futures as cf
import errno
import logging
import multiprocessing
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


Job = Callable[[CohortEntry, Path], None]


def run_one(job: Job, entry: CohortEntry, out_dir: Path) -> SubjectStatus:
    """Run ``job`` for one subject and turn any exception into a ``failed`` status."""
    start = time.perf_counter()
    if entry.problem:
        return SubjectStatus(entry.subject_id, "failed", 0.0, str(entry.path), entry.problem)
    try:
        job(entry, out_dir)
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
               initializer: Callable[[], None] | None = None,
               dask_plugin=None) -> list[SubjectStatus]:
    """Run ``job`` over ``entries``; return one status per entry, in the entries' order.

    ``initializer`` runs once in each local worker process, ``dask_plugin`` (a Dask
    WorkerPlugin) is registered on every Dask worker: where per-worker state (loaded
    models) is made once, not per subject.
    """
    done: dict[str, SubjectStatus] = {}
    todo = []
    for entry in entries:
        if not force and not entry.problem and is_complete(entry, out_dir):
            done[entry.subject_id] = SubjectStatus(entry.subject_id, "skipped", 0.0, str(entry.path))
            _notify(on_done, done[entry.subject_id])
        else:
            todo.append(entry)
    results = (_run_dask(job, todo, out_dir, scheduler, dask_plugin) if scheduler
               else _run_local(job, todo, out_dir, workers, initializer))
    for status in results:
        done[status.subject_id] = status
        _notify(on_done, status)
    return [done[e.subject_id] for e in entries]


def _notify(on_done, status: SubjectStatus) -> None:
    if on_done is not None:
        on_done(status)


def _run_local(job: Job, todo: Sequence[CohortEntry], out_dir: Path,
               workers: int, initializer) -> Iterable[SubjectStatus]:
    if workers <= 1:
        for entry in todo:
            yield run_one(job, entry, out_dir)
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                initializer=initializer) as pool:
        futures = {pool.submit(run_one, job, entry, out_dir): entry for entry in todo}
        for future in cf.as_completed(futures):
            entry = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # the worker process itself died (killed, out of memory)
                yield SubjectStatus(entry.subject_id, "failed", 0.0, str(entry.path),
                                    f"worker process failed: {type(exc).__name__}: {exc}")


def _run_dask(job: Job, todo: Sequence[CohortEntry], out_dir: Path,
              scheduler: str, plugin) -> Iterable[SubjectStatus]:
    from distributed import Client, as_completed
    with Client(scheduler) as client:
        if plugin is not None:
            client.register_plugin(plugin)
        futures = [client.submit(run_one, job, entry, out_dir, key=f"graftwatch-{entry.subject_id}",
                                 pure=False) for entry in todo]
        by_key = {f.key: e for f, e in zip(futures, todo)}
        for future in as_completed(futures):
            entry = by_key[future.key]
            try:
                yield future.result()
            except Exception as exc:  # the Dask worker died or lost the task
                yield SubjectStatus(entry.subject_id, "failed", 0.0, str(entry.path),
                                    f"dask worker failed: {type(exc).__name__}: {exc}")
