"""``graftwatch segment``: segment one scan with a shipped model (thin over segmentation.segment).

    graftwatch segment sub-01_ses-02_T2w.nii.gz --out seg/ [--device auto] [--tta]

Writes, in OUT, <name>_dseg.nii.gz (labels 0 background, 1 cord, 2 lesion, 3 graft),
<name>_probseg.nii.gz (4-D, one probability map per label), <name>_uncertainty.nii.gz
and <name>_segmentation.json (device used, precision, volumes in mm3 from the
probabilities, timings, whether a cord was found and why). Existing files are kept
unless --force.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
SUFFIXES = ("_dseg.nii.gz", "_probseg.nii.gz", "_uncertainty.nii.gz", "_segmentation.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graftwatch segment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scan", type=Path, help="NIfTI/NRRD file, DICOM file or DICOM folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--model", default=None, help="segmentation model (default: the shipped one)")
    parser.add_argument("--locator", default=None, help="cord locator (default: the shipped one)")
    parser.add_argument("--graft", default=None, help="graft model (default: the shipped one; "
                        "'none': the segmenter's own graft channel)")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="folder of model cards and weights (default: models/weights)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto")
    parser.add_argument("--contrast", default=None, help="override the scan's contrast (e.g. T2w)")
    parser.add_argument("--force-contrast", action="store_true",
                        help="run even if the model card does not list the contrast")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (8 flips)")
    parser.add_argument("--series", default=None, help="DICOM series UID or description")
    parser.add_argument("--nonfinite", choices=("raise", "zero", "keep"), default="raise")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def output_stem(scan: Path) -> str:
    name = scan.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from scripts.cli import configure_logging
    configure_logging(args.verbose)
    from imaging.atomic import write_text_atomic
    from imaging.errors import OutputError
    from imaging.io import load, save
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, load_graft_choice, load_model
    from segmentation.device import resolve_device
    from segmentation.inference import segment

    stem = args.out / output_stem(args.scan)
    targets = [Path(f"{stem}{suffix}") for suffix in SUFFIXES]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        raise OutputError(f"{existing[0]} already exists; pass --force to overwrite or choose "
                          "another --out")
    volume = load(args.scan, series=args.series, nonfinite=args.nonfinite)
    device = resolve_device(args.device)
    model = load_model(args.model or DEFAULT_MODEL, device, args.models_dir)
    locator = load_model(args.locator or DEFAULT_LOCATOR, device, args.models_dir)
    graft = load_graft_choice(args.graft, model.card.name, device, args.models_dir)
    result = segment(volume, model, contrast=args.contrast, force_contrast=args.force_contrast,
                     tta=args.tta, precision=args.precision, locator=locator,
                     graft=graft)
    save(result.labels, targets[0])
    save(result.probabilities, targets[1])
    save(result.uncertainty, targets[2])
    summary = {"scan": str(args.scan), **result.to_dict()}
    write_text_atomic(targets[3], json.dumps(summary, indent=2) + "\n")
    volumes = ", ".join(f"{k} {v:.1f} mm3" for k, v in result.volumes_mm3().items())
    print(f"{args.scan.name}: {result.reason} on {result.device} ({result.precision}); "
          f"{volumes}; {sum(result.timings_s.values()):.2f} s -> {targets[0]}")
    return 0
