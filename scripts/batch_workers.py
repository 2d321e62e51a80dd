"""How batch worker processes are set up: threads per worker, and malloc on Dask workers.

Everything here changes only worker processes, never the calling process.

Threads: the machine's cores shared out.

Without this, every worker process would use all the cores for ITK (SimpleITK's default is
the number of cores, whatever OMP_NUM_THREADS says) and torch's default: with N workers
on C cores that is N x C threads, and the workers slow each other down (ITK's threads wait
at barriers for threads that are not running). So:

- a local worker process (``start_local_worker``, the pool initializer) sets torch and
  SimpleITK to ``threads_per_worker(workers)`` = cores // workers (at least 1) threads;
- a Dask worker (``WorkerSetupPlugin``) sets them to 1: Dask runs one subject per worker
  thread, so its parallelism is ``--nthreads`` / processes, one core per subject;
- the calling process is never changed (``--workers 1`` runs in it with the libraries'
  defaults, and a Dask worker inside the caller's process, ``LocalCluster(processes=False)``,
  is left alone).

Numpy's BLAS threads are fixed when a process starts: they follow OMP_NUM_THREADS /
OPENBLAS_NUM_THREADS from the environment (Dask's nanny sets them to 1 in its workers).

Malloc: Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (its
``distributed.nanny.pre-spawn-environ``), which also switches off glibc's dynamic mmap
threshold: every array above 128 KiB is then a fresh mmap, zeroed by the kernel, and
unmapped when freed. A subject allocates thousands of such arrays; measured on 4 phantom
subjects x 2 sessions, the Dask workers spent 6.1 s in the kernel against 2.1 s without
that variable (user time equal). ``WorkerSetupPlugin`` therefore sets, in each Dask
worker process on glibc, the thresholds glibc's dynamic rule would reach (mmap 32 MiB,
trim 64 MiB).
"""

from __future__ import annotations

import logging
import os

from distributed import WorkerPlugin

log = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    return max(1, (cores or available_cores()) // max(1, workers))


def set_process_threads(threads: int) -> None:
    """torch intra-op and SimpleITK threads of THIS process (call in worker processes only)."""
    import SimpleITK as sitk
    import torch
    torch.set_num_threads(threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    log.debug("worker %d: %d torch / ITK thread(s)", os.getpid(), threads)


def start_local_worker(threads: int) -> None:
    """Local process-pool initializer: this worker's threads, then its model cache."""
    from scripts.batch_models import init_worker
    set_process_threads(threads)
    init_worker()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc mallopt parameters (malloc.h)
MMAP_THRESHOLD_BYTES = 32 * 2**20   # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit


def restore_malloc_thresholds() -> bool:
    """mmap / trim thresholds of glibc's dynamic rule, in THIS process; False when not glibc."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        done = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                and libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_BYTES) == 1)
    except (OSError, AttributeError, TypeError):  # no C library found, or not glibc (no mallopt)
        return False
    return done


class WorkerSetupPlugin(WorkerPlugin):
    """Dask worker plugin: one torch / ITK thread and glibc's usual malloc thresholds per
    worker process (nothing in a worker running inside the caller's process)."""

    name = "graftwatch-worker-setup"

    def __init__(self) -> None:
        self.caller_pid = os.getpid()

    def setup(self, worker) -> None:
        if os.getpid() == self.caller_pid:
            return
        set_process_threads(1)
        if "MALLOC_TRIM_THRESHOLD_" in os.environ and not restore_malloc_thresholds():
            log.info("worker %d: MALLOC_TRIM_THRESHOLD_ is set and mallopt is not available: "
                     "large arrays are mmapped afresh each time (slower)", os.getpid())
