"""Batch throughput: subjects per minute with 1 and 2 local workers and a local Dask cluster.

    OMP_NUM_THREADS=1 python -m scripts.benchmarks.batch_throughput [--subjects 6]

One phantom cohort, analysed from scratch in each mode (model loading included, once
per worker); the baseline is 1 local worker in the same run. Linear-scaling ratio =
(subjects per minute / baseline's) / workers; 1.0 is perfectly linear, the goal is >= 0.8.
Each worker uses one thread (set OMP_NUM_THREADS=1), so 2 workers need 2 free cores:
on a busy machine the ratio measures the machine as much as graftwatch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _run(study: Path, out: Path, workers: int, scheduler: str | None) -> float:
    from scripts.batch import run_batch
    from segmentation.pipeline import PipelineOptions
    start = time.perf_counter()
    summary = run_batch(study, out, PipelineOptions(device="cpu", write_report=False),
                        workers=workers if scheduler is None else 1, scheduler=scheduler)
    seconds = time.perf_counter() - start
    if summary.n_failed:
        raise SystemExit(f"{summary.n_failed} subjects failed in {out}: {summary.describe()}")
    return seconds


def _dask_run(study: Path, out: Path, workers: int) -> float:
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
            seconds = job(base / f"out-{name.split()[0]}-{workers}")
            rows.append((name, workers, seconds, 60.0 * args.subjects / seconds))
    baseline = rows[0][3]
    print(f"\n{args.subjects} phantom subjects x {args.sessions} sessions, CPU, one thread per "
          f"worker, {os.cpu_count()} cores on this machine (baseline: 1 local worker)")
    print(f"{'mode':<18} {'workers':>7} {'seconds':>8} {'subjects/min':>13} {'speed-up':>9} "
          f"{'linear ratio':>13}")
    for name, workers, seconds, per_minute in rows:
        speed_up = per_minute / baseline
        print(f"{name:<18} {workers:>7} {seconds:>8.1f} {per_minute:>13.2f} {speed_up:>8.2f}x "
              f"{speed_up / workers:>13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
