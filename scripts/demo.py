"""``graftwatch demo``: generate a small phantom cohort, analyse it, say where the report is."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graftwatch demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("graftwatch-demo"),
                        help="folder for the demo study and results (default graftwatch-demo)")
    parser.add_argument("--subjects", type=int, default=3, help="phantom subjects (default 3)")
    parser.add_argument("--seed", type=int, default=2026, help="phantom seed (default 2026)")
    parser.add_argument("--device", default="auto")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from scripts.cli import configure_logging
    configure_logging()
    from imaging.phantom import write_dataset
    from scripts.batch import run_batch
    from segmentation.pipeline import PipelineOptions
    study = args.out / "study"
    if not (study / "participants.tsv").exists():
        print(f"generating {args.subjects} phantom subjects in {study} ...")
        write_dataset(study, n_subjects=args.subjects, seed=args.seed, labels=("none",))
    summary = run_batch(study, args.out / "results", PipelineOptions(device=args.device))
    print(summary.describe())
    return 0 if summary.n_failed == 0 else 1
