"""The shipped models as training recipes: their card (before training) and settings.

* ``seg``: cord, lesion and graft in a box around the cord (4 labels);
* ``locator``: the cord region over the whole field of view at 2 mm;
* ``graft``: the graft alone (2 labels), on the segmenter's grid, box and normalisation,
  so that it runs on the very array the segmenter saw and replaces its graft channel.
  A dedicated binary network with graft-centred patches: the 4-label segmenter learnt
  cord and lesion well but never won the argmax for a graft of a few mm3. From v5 it has a
  second input channel: the subject's pre-injection baseline registered onto the scan
  (zeros when there is none), because what was there before the injection is not graft
  (DESIGN.md fact 3) and a single image cannot tell a graft from edema of the same signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imaging.errors import ModelError
from models.card import GRAFT_LABELS, LOCATE_LABELS, SEGMENT_LABELS, ModelCard
from models.training.augment import AugmentConfig

# What this recipe trains next. The registry's defaults name the models that ship now; they
# move to these names when weights trained by this recipe are installed.
SEG_NAME = "graftwatch-seg-v4"   # the default since 2026-12-08; v3: NAMED_RECIPES
LOCATOR_NAME = "graftwatch-locator-v2"
GRAFT_NAME = "graftwatch-graft-v8"   # v7 ships (4 levels), v5 (baseline channel); v4, v6: not shipped
MODELS = ("seg", "locator", "graft")

# Shipped models an earlier recipe trained, by name: their kind and what differs from that
# kind's recipe now (the git history of this file; the rest of the training code has not
# changed what it computes since). ``graftwatch train --model graftwatch-seg-v3`` trains it.
NAMED_RECIPES = {
    # commit 60d2df9's recipe: seg-v4 only halved the full-resolution channels and added a level
    "graftwatch-seg-v3": ("seg", {"channels": (16, 32, 64, 96)}),
    "graftwatch-seg-v4": ("seg", {}),
    "graftwatch-locator-v2": ("locator", {}),
    # commit 8ec74e6's recipe: v8 is v7's recipe under the next name until something changes
    "graftwatch-graft-v7": ("graft", {}),
}

# Sampling defaults that differ per model (TrainConfig's own defaults are the segmenter's).
# The graft model: most patches centred on a graft voxel, a quarter on the lesion (what a
# graft must be told from), few real scans (graft-free cords: negatives).
RECIPE_DEFAULTS = {
    "seg": {},
    # wide views of each training seed besides its own sessions (sources.wide_sessions);
    # more real scans than the segmenter (the locator-v2 trial without either lost on them)
    "locator": {"wide_views": 2, "real_fraction": 0.35},
    "graft": {"baseline_channel": True, "graft_fraction": 0.8, "focus_fraction": 0.15, "real_fraction": 0.1,
              "volume_weight": 0.5, "positive_weight": 30.0, "learning_rate": 1e-3,
              "clear_grafts_only": True,
              # the graft differs from the edema around it by ~0.1 of the normalised range:
              # intensity augmentation stays well below that
              "augment": AugmentConfig(noise_sigma_max=0.02, remap_probability=0.0,
                                       contrast_probability=0.2, gamma_range=(0.85, 1.2),
                                       bias_strength=0.15)},
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on besides the code: written into the card."""

    model: str = "seg"                 # one of MODELS
    steps: int = 2000
    seed: int = 0
    batch_size: int = 2
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 50
    checkpoint_every: int = 100
    validate_every: int = 250
    phantom_train_subjects: int = 24
    phantom_holdout_subjects: int = 4
    use_real: bool = True
    real_fraction: float = 0.25        # share of batch samples drawn from real scans
    focus_fraction: float = 0.25       # share of phantom patches centred on the lesion
    graft_fraction: float = 0.4        # share of phantom patches centred on the graft
    volume_weight: float = 0.5         # weight of the graft volume term of the loss
    positive_weight: float = 1.0       # graft model: weight of the graft voxels' cross-entropy
    clear_grafts_only: bool = False    # graft model: drop phantom cases whose graft never fills
                                       # half a voxel (ambiguous partial volume), keep graft-free
    use_negatives: bool = True         # locator: scans without a cord (brains), all background
    wide_views: int = 0                # locator: wide views per phantom seed (train and holdout)
    baseline_channel: bool = False     # graft model: 2nd input = the registered pre-injection
                                       # baseline (sources.moved_baseline), zeros when absent
    prior_dropout: float = 0.15        # with baseline_channel: share of phantom samples without it
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    patch_size: tuple[int, int, int] | None = None   # None: the card's
    channels: tuple[int, ...] | None = None          # None: the card's
    name: str | None = None                          # None: the recipe's (SEG_NAME, ...)

    def to_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "augment"}
        data["augment"] = self.augment.to_dict()
        return data


def recipe_config(model: str, **settings) -> TrainConfig:
    """The TrainConfig of ``model`` (a kind in MODELS, or a name in NAMED_RECIPES) with its
    recipe defaults, then ``settings`` on top."""
    if model in NAMED_RECIPES:
        kind, named = NAMED_RECIPES[model]
        return recipe_config(kind, **{**named, "name": model, **settings})
    if model not in MODELS:
        raise ModelError(f"model {model!r}; expected one of {MODELS} or a shipped model's "
                         f"name: {tuple(NAMED_RECIPES)}")
    return TrainConfig(model=model, **{**RECIPE_DEFAULTS[model], **settings})


SEG_SPACING_MM = (0.6, 0.6, 0.6)
# name, task, spacing, patch, labels, channels per level. The graft model shares the
# segmenter's spacing: it runs on the segmenter's own model-grid array.
_CARDS = {
    # v4: half of v3's full-resolution channels and a fifth level (v3: 16, 32, 64, 96):
    # 2.2x faster per window in bf16. The 2000-step trial at commit c206f98 lost real cord
    # Dice (0.945 against v3's 0.962, models/README.md); this recipe trains it for 4000 steps
    "seg": (SEG_NAME, "segment", SEG_SPACING_MM, (48, 48, 64), SEGMENT_LABELS, (8, 16, 32, 64, 128)),
    "locator": (LOCATOR_NAME, "locate", (2.0, 2.0, 2.0), (64, 64, 64), LOCATE_LABELS, (8, 16, 32)),
    # v7: a fourth level (the 32^3 patch down to 4^3): twice the context to tell a graft from
    # the edema around it, and more capacity (v5 underfits its own training subjects)
    "graft": (GRAFT_NAME, "graft", SEG_SPACING_MM, (32, 32, 32), GRAFT_LABELS, (16, 32, 64, 128)),
}


def _recipe_card(name: str, task: str, spacing_mm, patch_size, labels, channels,
                 in_channels: int = 1) -> ModelCard:
    return ModelCard(
        name=name, task=task, contrasts=("T2w", "T2starw"), spacing_mm=spacing_mm,
        patch_size=patch_size, labels=labels,
        architecture={"in_channels": in_channels, "out_channels": len(labels),
                      "channels": list(channels),
                      "strides": [2] * (len(channels) - 1), "norm": "instance", "dropout": 0.0},
        normalisation="percentile")


def base_card(config: TrainConfig) -> ModelCard:
    """The card of the model a config trains, before training fills in the rest."""
    if config.model not in _CARDS:
        raise ModelError(f"model {config.model!r}; expected one of {MODELS}")
    name, task, spacing_mm, patch_size, labels, channels = _CARDS[config.model]
    in_channels = 2 if config.baseline_channel and task == "graft" else 1
    return _recipe_card(config.name or name, task, spacing_mm, config.patch_size or patch_size,
                        labels, config.channels or channels, in_channels)
