"""``graftwatch batch ROOT --out DIR``: analyse every subject of a cohort.

Writes DIR/status.tsv (one row per subject: ok / failed / skipped, seconds, error),
DIR/cohort.tsv (one row per subject and timepoint), per-subject outputs and reports,
and DIR/index.html. Exits non-zero when any subject failed.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from scripts.cli import add_model_options, add_models_dir_option

log = logging.getLogger("graftwatch.batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graftwatch batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path,
                        help="a BIDS root, a folder of DICOM subject trees, or a CSV manifest "
                             "(subject_id,path,transplant_date,injected_cells,label)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--workers", type=int, default=1,
                        help="subjects analysed in parallel on this machine (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch / ITK threads per local worker process (default: cores / "
                             "workers; Dask workers use 1)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask distributed scheduler (tcp://host:8786); "
                             "subjects are sent there instead of local workers")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    parser.add_argument("--transplant-date", default=None,
                        help="YYYY-MM-DD, for DICOM subjects whose manifest row gives none")
    parser.add_argument("--force", action="store_true",
                        help="re-analyse subjects whose outputs are already complete")
    parser.add_argument("--include-phi", action="store_true",
                        help="show patient name/ID/birth date in reports (off by default)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML reports")
    add_model_options(parser)
    add_models_dir_option(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.scheduler and args.workers != 1:
        parser.error("--workers and --scheduler exclude each other (Dask decides the workers)")
    from scripts.cli import about, configure_logging
    configure_logging(args.verbose)
    from segmentation.pipeline import PipelineOptions
    options = PipelineOptions(device=args.device, model=args.model, graft=args.graft,
                              models_dir=args.models_dir, include_phi=args.include_phi,
                              write_report=not args.no_report,
                              transplant_date=args.transplant_date)
    if args.threads and args.workers == 1 and not args.scheduler:
        from scripts.batch_workers import set_process_threads
        set_process_threads(args.threads)   # subjects run in this, the command's own process
    with about(f"cohort {args.root}, output {args.out}"):   # a subject's own failure is its status row
        summary = run_batch(args.root, args.out, options, workers=args.workers,
                            scheduler=args.scheduler, force=args.force, threads=args.threads)
    print(summary.describe())
    return 0 if summary.n_failed == 0 else 1


def run_batch(root: Path, out_dir: Path, options, *, workers: int = 1,
              scheduler: str | None = None, force: bool = False, threads: int | None = None):
    """Run the cohort under ``root`` into ``out_dir``; return the BatchSummary.

    ``threads``: torch / ITK threads of each local worker process (default: cores /
    workers); with ``workers=1`` the subjects run in this process, whose threads are left
    as they are (``scripts.batch_workers``)."""
    from imaging.cohort import find_cohort
    from scripts.batch_lock import output_lock
    from scripts.batch_models import ModelCachePlugin, SubjectJob
    from scripts.batch_progress import Progress
    from scripts.batch_runner import input_bytes, run_cohort
    from scripts.batch_workers import WorkerSetupPlugin, start_local_worker, threads_per_worker
    from segmentation.cohort_outputs import write_cohort_outputs
    from segmentation.outputs import remove_stale_temporaries
    from segmentation.pipeline import subject_outputs_complete

    entries = find_cohort(root)
    with output_lock(out_dir):
        for stale in remove_stale_temporaries(out_dir):
            log.info("removed %s (left by an interrupted run)", stale)
        with Progress(len(entries), stream=sys.stderr) as progress:
            statuses = run_cohort(entries, SubjectJob(options), out_dir,
                                  is_complete=subject_outputs_complete, force=force,
                                  workers=workers, scheduler=scheduler, on_done=progress.update,
                                  on_stage=progress.stage, cost=input_bytes,
                                  initializer=functools.partial(
                                      start_local_worker, threads or threads_per_worker(workers)),
                                  dask_plugins=(ModelCachePlugin(), WorkerSetupPlugin()))
        return write_cohort_outputs(out_dir, entries, statuses, include_report=options.write_report)
