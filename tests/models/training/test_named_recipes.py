"""A shipped model trains again from its name: the recipe gives the configuration and the
network its card recorded when it was trained (``graftwatch train --model NAME``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imaging.errors import ModelError
from models.training.recipes import NAMED_RECIPES, base_card, recipe_config

WEIGHTS = Path(__file__).resolve().parents[3] / "models" / "weights"
# what the command line sets (scripts/train.py), not the recipe
COMMAND_SETTINGS = ("steps", "seed", "batch_size", "checkpoint_every", "validate_every",
                    "phantom_train_subjects", "phantom_holdout_subjects", "use_real")
CARD_FIELDS = ("task", "spacing_mm", "patch_size", "labels", "architecture", "normalisation")


@pytest.mark.parametrize("name", sorted(NAMED_RECIPES))
def test_the_named_recipe_is_what_the_shipped_card_recorded(name):
    shipped = json.loads((WEIGHTS / f"{name}.json").read_text())
    recorded = shipped["training"]["config"]
    config = recipe_config(name, **{k: recorded[k] for k in COMMAND_SETTINGS})
    now = json.loads(json.dumps(config.to_dict()))   # tuples as lists, as in the card
    differ = {k: (now[k], v) for k, v in recorded.items()
              if k not in ("channels", "name") and now[k] != v}
    assert not differ, f"{name}: the recipe now differs from the card in {differ}"
    card = base_card(config).to_dict()
    assert card["name"] == name
    for key in CARD_FIELDS:
        assert json.loads(json.dumps(card[key])) == shipped[key], key


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ModelError, match="graftwatch-seg-v3"):
        recipe_config("graftwatch-seg-v1")
