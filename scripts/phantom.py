"""``graftwatch phantom OUT --subjects N --seed S``: write a simulated BIDS study with known truth."""

from __future__ import annotations

import argparse
from pathlib import Path

CONTRASTS = ("none", "spio", "19f")


def _contrasts(text: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    bad = [n for n in names if n not in CONTRASTS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a comma-separated list of {', '.join(CONTRASTS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graftwatch phantom",
        description="Write a simulated longitudinal BIDS study of spinal cord grafts with "
                    "known truth (derivatives/phantom-truth). Same seed, same bytes.")
    parser.add_argument("out", type=Path, help="output folder (BIDS root)")
    parser.add_argument("--subjects", type=int, default=3, help="number of subjects (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--contrast", type=_contrasts, default=CONTRASTS,
                        help="graft labels to cycle through: none,spio,19f (default all)")
    parser.add_argument("--resolution", choices=("clinical", "research"), default="clinical")
    parser.add_argument("--plane", choices=("sagittal", "axial"), default=None,
                        help="acquisition plane of every session (default: random per session)")
    parser.add_argument("--sessions", type=int, default=6, help="sessions per subject (1-6)")
    parser.add_argument("--dicom", action="store_true",
                        help="also write every session as DICOM series under "
                             "OUT/sourcedata/sub-X/ses-Y/ (study dates = participants.tsv "
                             "transplant_date + days_post_transplant)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty OUT")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.subjects < 1:
        parser.error(f"--subjects {args.subjects}: expected at least 1")
    if not 1 <= args.sessions <= 6:
        parser.error(f"--sessions {args.sessions}: expected 1 to 6")
    from imaging.errors import OutputError
    from scripts.cli import configure_logging
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file; expected a folder for the BIDS dataset")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise OutputError(f"{out} is not empty; choose an empty folder or pass --force to "
                          "write over it")
    configure_logging(args.verbose)
    from imaging.phantom import write_dataset
    write_dataset(out, n_subjects=args.subjects, seed=args.seed, labels=args.contrast,
                  resolution=args.resolution, dicom=args.dicom, plane=args.plane,
                  n_sessions=args.sessions)
    print(f"wrote {args.subjects} simulated subject(s) to {out}")
    return 0
