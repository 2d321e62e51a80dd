"""``graftwatch evaluate-survival``: the survival analysis against phantom truth.

    graftwatch evaluate-survival --subjects 4 --out survival-eval.json

Simulates held-out phantom subjects (subject i from seed SEED + i; default 700000+, apart
from the training seeds 1000+ and the validation seeds 900000+) at each resolution
(research: in-plane 0.3-0.6 mm, slices 0.8-2.5 mm; clinical: 2.5-4 mm slices), runs the
real ``analyze_subject`` on each, compares with derivatives/phantom-truth and prints the
table of issue 5: surviving-fraction error (median and worst, points), 95 % interval
coverage, graft volume, 19F and iron errors, controls, overgrowth and lingering iron.
Writes the summary and every per-timepoint record to OUT (JSON).

Interval calibration (``segmentation.interval_calibration``): the graft-volume intervals are
calibrated by the scales in the segmenter's card. Those scales come from this command on
the calibration seeds, which nothing else uses:

    graftwatch evaluate-survival --write-calibration --seed 500000 --subjects 12 --out cal.json

analyses those subjects twice. First with the model's own probabilities: each resolution's
curve from graft probability to graft fraction is fitted on their voxels against the true
fractions (``segmentation.probability_calibration``) and written into the card (of
--models-dir's segmenter, else the shipped one). Then with those fractions and the model's
own (uncalibrated) intervals: each resolution's interval scales are fitted and written.
--no-calibration evaluates with neither (the model's probabilities and own intervals).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from scripts.cli import add_model_options, add_models_dir_option
from segmentation.interval_calibration import CALIBRATION_SEED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graftwatch evaluate-survival", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="results JSON file")
    parser.add_argument("--subjects", type=int, default=4, help="subjects per resolution")
    parser.add_argument("--seed", type=int, default=700_000, help="seed of the first subject")
    parser.add_argument("--sessions", type=int, default=6, help="sessions per subject (2-6)")
    parser.add_argument("--resolutions", default="research,clinical",
                        help="comma-separated: research, clinical")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the phantom studies go, each with the analysis outputs under "
                             "derivatives/graftwatch (default: a temp folder)")
    parser.add_argument("--device", default="auto")
    add_model_options(parser)
    add_models_dir_option(parser)
    parser.add_argument("--no-calibration", action="store_true",
                        help="sum the model's own graft probabilities and keep its own "
                             "graft-volume intervals (neither calibrated)")
    parser.add_argument("--write-calibration", action="store_true",
                        help="fit the graft fraction curves, then the interval calibration, "
                             "of each resolution from this run (use the calibration seeds "
                             f"{CALIBRATION_SEED}+; the subjects are analysed twice) and write "
                             "them into the segmenter's card (in --models-dir, else the shipped "
                             "weights)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _check(parser: argparse.ArgumentParser, args) -> list[str]:
    resolutions = [r.strip() for r in args.resolutions.split(",") if r.strip()]
    if not resolutions or set(resolutions) - {"research", "clinical"}:
        parser.error(f"--resolutions {args.resolutions!r}: expected research and/or clinical")
    if args.subjects < 1 or not 2 <= args.sessions <= 6:
        parser.error("--subjects must be >= 1 and --sessions between 2 and 6")
    if args.seed + args.subjects > 1000 and args.seed < 100_000 or args.seed >= 900_000:
        parser.error(f"--seed {args.seed}: seeds 1000+ train the model and 900000+ validate it; "
                     "use held-out seeds such as 700000")
    calibrating = CALIBRATION_SEED <= args.seed < 700_000
    if args.write_calibration != calibrating:
        parser.error(f"--seed {args.seed}: seeds {CALIBRATION_SEED}-699999 calibrate the "
                     "intervals (--write-calibration) and nothing else; evaluate on others "
                     "(such as 700000)")
    return resolutions


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    resolutions = _check(parser, args)
    from imaging.errors import OutputError
    if args.out.exists() and not args.force:
        raise OutputError(f"{args.out} already exists; pass --force to overwrite it")
    from scripts.cli import configure_logging
    configure_logging(args.verbose)
    work = args.work or Path(tempfile.mkdtemp(prefix="graftwatch-survival-eval-"))
    summaries, records, failures, started = {}, {}, [], time.perf_counter()
    if args.write_calibration:   # the fraction curves first: the intervals are of their volumes
        for resolution in resolutions:
            _evaluate(work / resolution, resolution, args, fractions=False)
        _write_fraction_calibration(work, resolutions, args)
    for resolution in resolutions:
        found, failed = _evaluate(work / resolution, resolution, args,
                                  simulate=not args.write_calibration)
        records[resolution], failures = found, failures + failed
        from segmentation.survival_evaluation import summarise
        summaries[resolution] = summarise(found)
    seconds = time.perf_counter() - started
    from imaging.atomic import write_text_atomic
    from segmentation.survival_evaluation import table
    write_text_atomic(args.out, json.dumps({
        "seed": args.seed, "subjects_per_resolution": args.subjects, "sessions": args.sessions,
        "seconds": seconds, "summary": summaries, "failures": failures,
        "records": {k: [asdict(r) for r in v] for k, v in records.items()}}, indent=2) + "\n")
    print(table(summaries))
    for failure in failures:
        print(f"FAILED {failure['resolution']} {failure['subject_id']}: {failure['error']}")
    print(f"{seconds:.0f} s; phantoms in {work}/<resolution>, analysis outputs in "
          f"{work}/<resolution>/derivatives/graftwatch; results: {args.out}")
    if args.write_calibration:
        _write_calibration(records, args)
    return 0


def _write_calibration(records, args) -> None:
    """Fit each resolution's calibration from the records and store it in the card."""
    from segmentation.config import AnalysisConfig
    from segmentation.interval_calibration import CARD_KEY, card_calibrations
    from segmentation.survival_evaluation import fit_interval_calibration
    segmenter, graft, card = _card_of(args)
    source = _source(args)
    entry = {k: v.to_dict() for k, v in card_calibrations(card.validation, graft).items()}
    for resolution, found in records.items():
        calibration = fit_interval_calibration(found, resolution, AnalysisConfig().confidence,
                                               source)
        entry[resolution] = calibration.to_dict()
        print(f"calibration {segmenter} + {graft or 'no graft model'}, {resolution}: "
              f"{calibration.describe()}")
    _store(args, card, CARD_KEY, graft, entry)
    print(f"written into the card of {segmenter}")


def _card_of(args):
    """(segmenter name, graft model name or None, the segmenter's card)."""
    from models.registry import DEFAULT_MODEL, graft_model_name, load_card
    segmenter = args.model or DEFAULT_MODEL
    return segmenter, graft_model_name(args.graft, segmenter), load_card(segmenter,
                                                                          args.models_dir)


def _store(args, card, key: str, graft: str | None, entry: dict) -> None:
    """Put ``entry`` under validation[key][graft model or "none"] of the segmenter's card."""
    from models.registry import update_card_validation
    table = dict(card.validation.get(key, {}))
    table[graft or "none"] = entry
    update_card_validation(card.name, key, table, args.models_dir)


def _write_fraction_calibration(work: Path, resolutions: list[str], args) -> None:
    """Fit each resolution's graft fraction curve from the maps the analyses wrote (model
    probabilities: analysed without a curve) and store it in the segmenter's card."""
    from segmentation.probability_calibration import (CARD_KEY, card_probability_calibrations,
                                                      fit_probability_calibration)
    from segmentation.survival_evaluation import fraction_pairs
    segmenter, graft, card = _card_of(args)
    entry = {k: v.to_dict() for k, v in card_probability_calibrations(card.validation,
                                                                      graft).items()}
    for resolution in resolutions:
        pairs = fraction_pairs(work / resolution).get(resolution)
        curve = None if pairs is None else fit_probability_calibration(
            resolution, *pairs, source=_source(args))
        entry.pop(resolution, None)
        if curve is None:
            print(f"fraction calibration {segmenter} + {graft or 'no graft model'}, {resolution}: "
                  "too few graft voxels for a curve; probabilities are used as they are")
            continue
        entry[resolution] = curve.to_dict()
        print(f"fraction calibration {segmenter} + {graft or 'no graft model'}, {resolution}: "
              f"{curve.describe()}")
    _store(args, card, CARD_KEY, graft, entry)


def _source(args) -> str:
    from models.training.train import code_commit
    return (f"graftwatch evaluate-survival --write-calibration --subjects {args.subjects} "
            f"--sessions {args.sessions} --seed {args.seed} (code {code_commit()})")


def _evaluate(study: Path, resolution: str, args, *, fractions: bool = True,
              simulate: bool = True):
    """Simulate (unless already done), analyse and compare one resolution's subjects;
    failures are recorded. ``fractions``: calibrate the graft fractions by the card."""
    from imaging.errors import GraftwatchError
    from imaging.study import discover_subject
    from segmentation.pipeline import analyze_subject, config_for
    from segmentation.subject_outputs import write_subject_outputs
    from segmentation.survival_evaluation import compare, truth_of, write_cohort
    if simulate:
        write_cohort(study, args.subjects, args.seed, resolution, args.sessions)
    from scripts.cli import pipeline_models
    models = pipeline_models(args)
    records, failures = [], []
    for folder in sorted(study.glob("sub-*")):
        started = time.perf_counter()
        try:
            subject = discover_subject(folder)
            config = replace(config_for(subject), calibrated_intervals=not (
                args.no_calibration or args.write_calibration),
                calibrated_fractions=fractions and not args.no_calibration)
            result = analyze_subject(subject, config, device=args.device,
                                     model=args.model, graft=args.graft, models=models)
            write_subject_outputs(result, study / "derivatives" / "graftwatch",
                                  include_report=False)
        except GraftwatchError as exc:
            failures.append({"resolution": resolution, "subject_id": folder.name,
                             "error": str(exc)})
            continue
        truth, participant = truth_of(study, folder.name)
        found = compare(result.to_table(), [f.code for f in result.flags], folder.name,
                        truth, participant)
        records += found
        print(f"  {resolution} {folder.name} ({participant['label']}, "
              f"{participant['survival_model']}{', control' if participant['control'] == 'true' else ''})"
              f": {time.perf_counter() - started:.0f} s", flush=True)
    return records, failures
