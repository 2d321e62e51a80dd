"""The training loop: deterministic from a seed, checkpointed, resumable, honest card.

``train(config, run_dir)`` builds (or reads from ``run_dir/cache``) the training and
held-out cases, trains with AdamW (linear warm-up, cosine decay) under bfloat16
autocast on CPU, writes ``run_dir/<model>/checkpoint.pt`` every ``checkpoint_every``
steps (model, optimiser, schedule, numpy Generator state, loss history), and at the end
``run_dir/<model>/<model>.pt`` + ``.json``: the card with the training data list, seeds,
steps, command, code commit and the validation metrics measured on held-out phantom
seeds and held-out real scans. A resumed run continues from the checkpoint and gives the
same losses as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from imaging.atomic import atomic_path
from imaging.errors import ModelError
from models.card import ModelCard
from models.registry import WEIGHTS_DIR, build_network, install_model
from models.training import dataset, sources
from models.training.dataset import TrainingCase
from models.training.loss import graft_loss, masked_loss
from models.training.recipes import TrainConfig, base_card
from models.training.sampling import draw_batch
from models.training.validate import score_cases, score_graft_cases

log = logging.getLogger(__name__)
QUICK_PHANTOM_CASES = 6


@dataclass(frozen=True)
class TrainingData:
    phantom_train: Sequence[TrainingCase]
    real_train: Sequence[TrainingCase]
    phantom_holdout: Sequence[TrainingCase]
    real_holdout: Sequence[TrainingCase]
    description: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    card: ModelCard
    losses: tuple[float, ...]
    run_dir: Path
    installed: bool
    finished: bool = True


def initialise(network: nn.Module, generator: torch.Generator) -> None:
    """Kaiming-normal convolutions, zero biases, from the given generator (no global seed)."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(module.weight, a=0.01, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()


def _clear_or_graft_free(case: TrainingCase) -> bool:
    """No graft at all, or a graft filling at least half of some voxel (targets x 255)."""
    most = int(case.target[-1].max())
    return most == 0 or most >= dataset.TARGET_SCALE / 2


def load_data(config: TrainConfig, card: ModelCard, cache: Path,
              data_root: Path = sources.SHARED_DATA) -> TrainingData:
    """Phantom seeds and real scans of this config, built once and cached under ``cache``."""
    train_seeds = [sources.PHANTOM_TRAIN_BASE + i for i in range(config.phantom_train_subjects)]
    holdout_seeds = [sources.PHANTOM_HOLDOUT_BASE + i for i in range(config.phantom_holdout_subjects)]
    log.info("building phantom cases for %d training and %d held-out seeds",
             len(train_seeds), len(holdout_seeds))
    paired = card.takes_baseline
    phantom_train = sources.phantom_cases(train_seeds, card, cache, with_baseline=paired)
    if config.clear_grafts_only:
        phantom_train = [c for c in phantom_train if _clear_or_graft_free(c)]
    phantom_holdout = sources.phantom_cases(holdout_seeds, card, cache, validation=True,
                                            with_baseline=paired)
    if config.wide_views and card.task == "locate":
        phantom_train += sources.phantom_cases(train_seeds, card, cache,
                                               wide_views=config.wide_views)
        phantom_holdout += sources.phantom_cases(holdout_seeds, card, cache, validation=True,
                                                 wide_views=config.wide_views)
    real_train, real_holdout = [], []
    if config.use_real:
        if not data_root.is_dir():
            log.warning("%s not found: training without real scans", data_root)
        real_train = sources.real_cases(sources.REAL_TRAIN, card, data_root, cache)
        real_holdout = sources.real_cases(sources.REAL_HOLDOUT, card, data_root, cache, validation=True)
    if config.use_negatives:
        real_train = real_train + sources.negative_cases(sources.NEGATIVE_TRAIN, card, data_root, cache)
    description = {
        "phantom_train_seeds": train_seeds, "phantom_holdout_seeds": holdout_seeds,
        "phantom_train_cases": len(phantom_train), "phantom_holdout_cases": len(phantom_holdout),
        "real_train": [c.name for c in real_train], "real_holdout": [c.name for c in real_holdout]}
    return TrainingData(phantom_train, real_train, phantom_holdout, real_holdout, description)


def _schedule(config: TrainConfig):
    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
        return warm * 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / max(1, config.steps)))
    return factor


def code_commit() -> str:
    """HEAD of the repository this code runs from, "+uncommitted-changes" when its code
    (imaging, models, segmentation, scripts; not the installed weights and cards) differs
    from HEAD; "unknown" outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "imaging", "models",
                                "segmentation", "scripts", ":(exclude)models/weights"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted-changes" if dirty else "")


@dataclass
class _State:
    network: nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    rng: np.random.Generator
    step: int = 0
    losses: list = field(default_factory=list)
    validations: list = field(default_factory=list)


def _new_state(config: TrainConfig, card: ModelCard) -> _State:
    network = build_network(card)
    initialise(network, torch.Generator().manual_seed(config.seed))
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(config))
    return _State(network, optimiser, scheduler, np.random.default_rng(config.seed))


def save_checkpoint(state: _State, path: Path, config: TrainConfig) -> None:
    payload = {"step": state.step, "network": state.network.state_dict(),
               "optimiser": state.optimiser.state_dict(), "scheduler": state.scheduler.state_dict(),
               "rng": state.rng.bit_generator.state, "losses": state.losses,
               "validations": state.validations, "config": config.to_dict()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(state: _State, path: Path, config: TrainConfig) -> None:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload["config"] != config.to_dict():
        raise ModelError(f"{path} was written by a run with settings {payload['config']}; "
                         f"this run has {config.to_dict()}. Resume with the same settings or "
                         "use a new --out folder")
    state.network.load_state_dict(payload["network"])
    state.optimiser.load_state_dict(payload["optimiser"])
    state.scheduler.load_state_dict(payload["scheduler"])
    state.rng.bit_generator.state = payload["rng"]
    state.step, state.losses = int(payload["step"]), list(payload["losses"])
    state.validations = list(payload["validations"])


def train_step(state: _State, data: TrainingData, config: TrainConfig, card: ModelCard) -> float:
    batch = draw_batch(data.phantom_train, data.real_train, config.batch_size, card.patch_size,
                       state.rng, config.augment, config.real_fraction, config.focus_fraction,
                       config.graft_fraction, card.takes_baseline, config.prior_dropout)
    state.network.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = state.network(batch.image)
    if card.task == "graft":
        loss = graft_loss(logits.float(), batch.target, config.volume_weight, config.positive_weight)
    else:
        loss = masked_loss(logits.float(), batch.target, batch.annotations, config.volume_weight)
    state.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    state.optimiser.step()
    state.scheduler.step()
    state.step += 1
    value = float(loss.detach())
    state.losses.append(round(value, 6))
    return value


def validate(network: nn.Module, data: TrainingData, card: ModelCard, quick: bool) -> dict:
    phantom = data.phantom_holdout[:QUICK_PHANTOM_CASES] if quick else data.phantom_holdout
    device = torch.device("cpu")
    result = {}
    if card.task == "graft":
        # real held-out scans have no graft: their false graft is what they can show
        paired = card.takes_baseline
        return {"phantom_holdout": score_graft_cases(network, phantom, card.patch_size, device,
                                                     paired),
                "real_holdout": score_graft_cases(network, data.real_holdout, card.patch_size,
                                                  device, paired)}
    if phantom:
        result["phantom_holdout"] = score_cases(network, phantom, card.patch_size, card.labels, device)
    if data.real_holdout:
        result["real_holdout"] = score_cases(network, data.real_holdout, card.patch_size,
                                             card.labels, device)
    return result


def _validation_notes(card: ModelCard) -> dict:
    if card.task == "locate":
        return {"grid": f"the locator's own {card.spacing_mm} mm grid over the whole field of view"}
    if card.task == "graft":
        notes = {"grid": "input grid (block-averaged P(graft) >= 0.5 against graft fraction >= 0.5)",
                 "box": "true cord box + margin, normalised as for the segmenter"}
        if card.takes_baseline:
            notes["baseline"] = ("phantoms: the subject's own baseline moved by the known poses "
                                 "with up to 0.5 mm / 1 degree of misalignment; real scans: none "
                                 "(zeros)")
        return notes
    return {"grid": "input grid (block-averaged probabilities, argmax)",
            "box": "true cord box + margin (the locator is not used here)"}


def _headline(metrics: dict) -> str:
    parts = []
    for source, score in metrics.items():
        for name, value in score["dice_pooled"].items():
            if value is not None:
                parts.append(f"{source.split('_')[0]}:{name[:5]}={value:.2f}")
    return " ".join(parts)


def _loop(state: _State, data: TrainingData, config: TrainConfig, card: ModelCard,
          checkpoint: Path, progress: bool, stop_at: int) -> None:
    from tqdm import tqdm
    bar = tqdm(total=config.steps, initial=state.step, disable=not progress, desc=card.name,
               dynamic_ncols=True)
    headline = ""
    while state.step < stop_at:
        loss = train_step(state, data, config, card)
        if config.validate_every and state.step % config.validate_every == 0 and state.step < config.steps:
            metrics = validate(state.network, data, card, quick=True)
            state.validations.append({"step": state.step, **metrics})
            headline = _headline(metrics)
            log.info("step %d: loss %.4f, validation %s", state.step, loss, headline)
        if state.step % config.checkpoint_every == 0 or state.step in (config.steps, stop_at):
            save_checkpoint(state, checkpoint, config)
        bar.set_postfix_str(f"loss={np.mean(state.losses[-20:]):.3f} {headline}")
        bar.update(1)
    bar.close()


def train(config: TrainConfig, run_dir: Path, data: TrainingData | None = None,
          resume: bool = False, install: bool = False, progress: bool = True,
          weights_dir: Path | None = None, command: str | None = None,
          data_root: Path = sources.SHARED_DATA, status: str = "final",
          stop_at: int | None = None) -> TrainResult:
    """Train one model of ``config`` under ``run_dir``; see the module docstring.

    ``stop_at`` ends this session at that step (checkpoint written, no final weights),
    to be continued later with ``resume=True``.
    """
    card = base_card(config)
    commit = code_commit()
    out = Path(run_dir) / card.name
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not resume:
        raise ModelError(f"{checkpoint} exists; pass --resume to continue that run or choose a new "
                         "--out folder")
    if data is None:
        data = load_data(config, card, Path(run_dir) / "cache", data_root)
    if not data.phantom_train and not data.real_train:
        raise ModelError("no training cases; expected phantom seeds or real scans")
    state = _new_state(config, card)
    if resume and checkpoint.exists():
        load_checkpoint(state, checkpoint, config)
        log.info("resumed %s at step %d", card.name, state.step)
    stop = config.steps if stop_at is None else min(stop_at, config.steps)
    _loop(state, data, config, card, checkpoint, progress, stop)
    if state.step < config.steps:
        return TrainResult(card, tuple(state.losses), Path(run_dir), False, finished=False)
    metrics = validate(state.network, data, card, quick=False)
    final = replace(card, training={
        "status": status, **data.description, "config": config.to_dict(), "steps": state.step, "seed": config.seed,
        "final_loss_mean_last_50": round(float(np.mean(state.losses[-50:])), 4),
        "command": command or " ".join(sys.argv), "code_commit": commit,
        "torch": torch.__version__, "box_margin_mm": dataset.BOX_MARGIN_MM,
        "validation_history": state.validations},
        validation={**metrics, **_validation_notes(card)})
    final = install_model(final, state.network.state_dict(), out)
    if install:
        final = install_model(final, state.network.state_dict(), weights_dir or WEIGHTS_DIR)
    return TrainResult(final, tuple(state.losses), Path(run_dir), install)
