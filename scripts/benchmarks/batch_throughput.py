"""Batch throughput: subjects per minute with 1 and 2 local workers and a local Dask cluster.

    OMP_NUM_THREADS=1 python -m scripts.benchmarks.batch_throughput [--subjects 6]

One phantom cohort, analysed from scratch in each mode (worker start-up and model loading
included, once per worker; the Dask cluster's own start is not); the baseline is 1 local
worker in the same run. Linear-scaling ratio = (subjects per minute / baseline's) /
workers; 1.0 is perfectly linear, the goal is >= 0.8.

Every worker uses one torch and one ITK thread: the 1-worker baseline runs in this process,
which this script sets to one thread (SimpleITK ignores OMP_NUM_THREADS and would use every
core, making the baseline a multi-core one), local workers get ``--threads 1``, Dask workers
one thread through graftwatch's worker plugin. Set OMP_NUM_THREADS=1 for numpy's BLAS.
CPU seconds (this process and its worker processes) are printed beside the wall time:
they hardly change with other load on the machine, wall time does. 2 workers need 2 free
cores: on a busy machine the ratio measures the machine as much as graftwatch.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path


def _cpu_seconds() -> float:
    """User + system CPU of this process, its finished children and its live ones."""
    import psutil
    total = sum(getattr(resource.getrusage(who), field) for who in
                (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for field in ("ru_utime", "ru_stime"))
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += times.user + times.system
    return total


def _run(study: Path, out: Path, workers: int, scheduler: str | None) -> tuple[float, float]:
    """Wall and CPU seconds of one batch run."""
    from scripts.batch import run_batch
    from segmentation.pipeline import PipelineOptions
    cpu, start = _cpu_seconds(), time.perf_counter()
    summary = run_batch(study, out, PipelineOptions(device="cpu", write_report=False),
                        workers=workers if scheduler is None else 1, scheduler=scheduler,
                        threads=1)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    if summary.n_failed:
        raise SystemExit(f"{summary.n_failed} subjects failed in {out}: {summary.describe()}")
    return seconds, cpu


def _dask_run(study: Path, out: Path, workers: int) -> tuple[float, float]:
    from distributed import LocalCluster
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        return _run(study, out, workers, cluster.scheduler_address)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmarks.batch_throughput",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep the runs in")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from imaging.phantom import write_dataset
    from scripts.batch_workers import set_process_threads
    set_process_threads(1)   # this script's own process runs the 1-worker baseline
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: OMP_NUM_THREADS is not 1; workers may compete for threads")
    with tempfile.TemporaryDirectory(prefix="graftwatch-throughput-") as tmp:
        base = args.keep or Path(tmp)
        study = write_dataset(base / "study", n_subjects=args.subjects, seed=args.seed,
                              labels=("none",), n_sessions=args.sessions)
        modes = [("local", 1, lambda out: _run(study, out, 1, None)),
                 ("local", 2, lambda out: _run(study, out, 2, None)),
                 ("dask LocalCluster", 2, lambda out: _dask_run(study, out, 2))]
        rows = []
        for name, workers, job in modes:
            seconds, cpu = job(base / f"out-{name.split()[0]}-{workers}")
            rows.append((name, workers, seconds, cpu, 60.0 * args.subjects / seconds))
    baseline = rows[0][4]
    print(f"\n{args.subjects} phantom subjects x {args.sessions} sessions, CPU, one thread per "
          f"worker, {os.cpu_count()} cores on this machine (baseline: 1 local worker)")
    print(f"{'mode':<18} {'workers':>7} {'seconds':>8} {'cpu s':>7} {'subjects/min':>13} "
          f"{'speed-up':>9} {'linear ratio':>13}")
    for name, workers, seconds, cpu, per_minute in rows:
        speed_up = per_minute / baseline
        print(f"{name:<18} {workers:>7} {seconds:>8.1f} {cpu:>7.1f} {per_minute:>13.2f} "
              f"{speed_up:>8.2f}x {speed_up / workers:>13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
