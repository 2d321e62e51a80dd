"""``graftwatch analyze SUBJECT_DIR --out DIR``: one subject, every timepoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from scripts.cli import add_model_options, add_models_dir_option


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graftwatch analyze", description=__doc__)
    parser.add_argument("subject", type=Path, help="a BIDS subject folder (sub-X) or a DICOM tree")
    parser.add_argument("--out", type=Path, required=True, help="output folder (derivatives root)")
    parser.add_argument("--transplant-date", help="YYYY-MM-DD (needed for DICOM trees)")
    parser.add_argument("--injected-cells", type=float, help="cells injected (else participants.tsv)")
    parser.add_argument("--label", choices=("none", "spio", "19f"), help="cell label type")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (slower)")
    add_model_options(parser)
    add_models_dir_option(parser)
    parser.add_argument("--include-phi", action="store_true", help="patient identifiers in the report")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from scripts.cli import about, configure_logging, pipeline_models
    configure_logging(args.verbose)
    from imaging.study import discover_subject
    from segmentation.pipeline import analyze_subject, config_for
    from segmentation.subject_outputs import write_subject_outputs
    with about(f"subject {args.subject}"):
        subject = discover_subject(args.subject, transplant_date=args.transplant_date)
        config = config_for(subject, args.injected_cells, args.label)
        result = analyze_subject(subject, config, device=args.device, tta=args.tta,
                                 model=args.model, graft=args.graft,
                                 models=pipeline_models(args))
        write_subject_outputs(result, args.out, include_phi=args.include_phi, subject=subject)
    for row in result.to_table():
        fraction = row["surviving_fraction"]
        print(f"{row['session_id']}  day {row['days_post_transplant']:>6g}  graft "
              f"{row['graft_volume_mm3']:7.2f} mm3  fraction "
              f"{'n/a' if fraction is None else format(fraction, '.2f')}  {row['flags']}")
    print(f"outputs: {args.out / result.subject_id}")
    return 0
