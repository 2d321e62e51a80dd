"""``graftwatch evaluate``: score a model and the classical baseline on held-out data.

    graftwatch evaluate --phantoms 6 --seed 10000 --real --out results.json

Phantom subjects are simulated from seeds SEED.. (never the model's training seeds; every
third one is a graft-free control); --real adds the public scans the model card lists
as held out. Prints a table (model vs baseline: Dice, HD95, volume error per label and
the false-graft rate) and writes every per-scan score and the summary to OUT (JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graftwatch evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="results JSON file")
    parser.add_argument("--phantoms", type=int, default=6, help="simulated subjects (0: none)")
    parser.add_argument("--seed", type=int, default=10_000, help="first phantom seed")
    parser.add_argument("--sessions", type=int, default=None,
                        help="sessions per phantom subject (default: all)")
    parser.add_argument("--real", action="store_true", help="also the held-out real scans")
    parser.add_argument("--model", default=None, help="segmentation model (default: shipped)")
    parser.add_argument("--locator", default=None, help="cord locator (default: shipped)")
    parser.add_argument("--resolution", choices=("clinical", "research", "both"),
                        default="clinical", help="phantom acquisitions: clinical (3-4 mm slices), "
                        "research (0.3-0.6 mm in-plane, thin slices) or both")
    parser.add_argument("--graft", default=None,
                        help="graft model (default: shipped; 'none': the segmenter's own graft)")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation for the model")
    parser.add_argument("--force", action="store_true", help="overwrite OUT")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.phantoms < 0 or (args.phantoms == 0 and not args.real):
        parser.error("nothing to evaluate: give --phantoms N (N >= 1) and/or --real")
    if args.sessions is not None and args.sessions < 1:
        parser.error("--sessions must be at least 1")
    from imaging.errors import OutputError
    if args.out.exists() and not args.force:
        raise OutputError(f"{args.out} already exists; pass --force to overwrite it")
    from scripts.cli import configure_logging
    configure_logging(args.verbose)
    from imaging.atomic import write_text_atomic
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, load_graft_choice, load_model
    from segmentation.device import resolve_device
    from segmentation.evaluation import evaluate

    device = resolve_device(args.device)
    model = load_model(args.model or DEFAULT_MODEL, device, args.models_dir)
    locator = load_model(args.locator or DEFAULT_LOCATOR, device, args.models_dir)
    graft = load_graft_choice(args.graft, model.card.name, device, args.models_dir)

    def progress(score) -> None:
        graft = score.scores.get("graft")
        print(f"  {score.method:<8} {score.case}: cord Dice {score.scores['cord'].dice:.3f}"
              + (f", graft Dice {graft.dice:.3f}" if graft is not None and graft.present else "")
              + (" FALSE GRAFT" if score.graft_free and score.any_graft else "")
              + f" ({score.seconds:.1f} s)", flush=True)

    report = evaluate(model, locator, graft=graft, n_phantoms=args.phantoms, seed=args.seed,
                      sessions=args.sessions, real=args.real, tta=args.tta, progress=progress,
                      resolutions=("clinical", "research") if args.resolution == "both"
                      else (args.resolution,))
    write_text_atomic(args.out, json.dumps(report.to_dict(), indent=2) + "\n")
    print(report.table())
    print(f"results: {args.out}")
    return 0
