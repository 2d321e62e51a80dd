"""``graftwatch train``: train the segmenter, the cord locator and/or the graft model
(thin over models.training).

    graftwatch train --model all --out runs/v1 --seed 0 --steps 3000 --locator-steps 1000 --install

--model seg / locator / graft trains what the recipe trains next (models.training.recipes);
--model NAME (e.g. graftwatch-seg-v3) trains a shipped model again by its own recipe.

Each model's run folder (RUN_DIR/<model name>/) gets checkpoint.pt (every
--checkpoint-every steps; --resume continues from it) and the final <name>.pt + <name>.json;
--install also copies them into models/weights/ (the shipped models).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

KINDS = ("seg", "locator", "graft", "all")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graftwatch train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="run folder (cache, checkpoints, weights)")
    from models.training.recipes import NAMED_RECIPES
    parser.add_argument("--model", choices=KINDS + tuple(NAMED_RECIPES), default="seg",
                        help="a kind (the recipe's next model) or a shipped model's name")
    parser.add_argument("--steps", type=int, default=3000, help="training steps (segmenter)")
    parser.add_argument("--locator-steps", type=int, default=None,
                        help="training steps of the locator (default: --steps)")
    parser.add_argument("--graft-steps", type=int, default=None,
                        help="training steps of the graft model (default: --steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--phantom-subjects", type=int, default=24,
                        help="simulated training subjects (seeds 1000...)")
    parser.add_argument("--holdout-subjects", type=int, default=4,
                        help="simulated held-out subjects (seeds 900000...)")
    parser.add_argument("--no-real", action="store_true", help="train on phantoms only")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--validate-every", type=int, default=250, help="0 = only at the end")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR's checkpoints")
    parser.add_argument("--install", action="store_true", help="copy the final weights and card "
                        "into models/weights/")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--status", default="final",
                        help="what the card says these weights are (e.g. 'preliminary')")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(s for s in (args.steps, args.locator_steps, args.graft_steps) if s is not None) < 1:
        parser.error("--steps, --locator-steps and --graft-steps must be at least 1")
    from scripts.cli import configure_logging
    configure_logging(args.verbose)
    import torch
    from models.training.recipes import MODELS as RECIPES, NAMED_RECIPES, recipe_config
    from models.training.train import train
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "graftwatch train " + " ".join(sys.argv[2:] if argv is None else argv)
    names = RECIPES if args.model == "all" else (args.model,)
    own_steps = {"locator": args.locator_steps, "graft": args.graft_steps}
    for name in names:
        kind = NAMED_RECIPES[name][0] if name in NAMED_RECIPES else name
        steps = own_steps.get(kind) or args.steps
        config = recipe_config(name, steps=steps, seed=args.seed, batch_size=args.batch_size,
                               checkpoint_every=args.checkpoint_every,
                               validate_every=args.validate_every,
                               phantom_train_subjects=args.phantom_subjects,
                               phantom_holdout_subjects=args.holdout_subjects,
                               use_real=not args.no_real)
        result = train(config, args.out, resume=args.resume, install=args.install,
                       progress=not args.no_progress, command=command, status=args.status)
        logging.getLogger("graftwatch.train").info(
            "%s: %d steps, validation %s, weights in %s%s", result.card.name, len(result.losses),
            {k: v.get("dice_pooled") for k, v in result.card.validation.items() if isinstance(v, dict)},
            args.out / result.card.name, " (installed)" if result.installed else "")
    return 0
