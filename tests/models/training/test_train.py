import json

import numpy as np
import pytest
import torch

from imaging.errors import ModelError
from models.registry import load_model
from models.training.augment import AugmentConfig
from models.training.dataset import build_case
from models.training.recipes import TrainConfig, base_card
from models.training.train import TrainingData, train
from tests.models.training.synthetic import synthetic_scan


def tiny_config(steps: int, **changes) -> TrainConfig:
    fields = dict(model="seg", steps=steps, seed=5, batch_size=1, checkpoint_every=1,
                  validate_every=0, channels=(4, 8), patch_size=(16, 16, 16), warmup_steps=1,
                  augment=AugmentConfig(rotation_degrees=5.0))
    fields.update(changes)
    return TrainConfig(**fields)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions run faster on one thread (and much faster on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_data() -> TrainingData:
    card = base_card(tiny_config(1))
    rng = np.random.default_rng(0)
    image, targets = synthetic_scan(rng)
    train_case = build_case("synthetic train", image, targets, "full", card)
    real_case = build_case("synthetic real", image, targets, "cord", card)
    holdout = build_case("synthetic holdout", *synthetic_scan(rng), "full", card, validation=True)
    return TrainingData([train_case], [real_case], [holdout], [], {"phantom_train_seeds": []})


def test_two_steps_checkpoint_and_resume_give_the_same_losses(tmp_path, tiny_data):
    straight = train(tiny_config(2), tmp_path / "a", tiny_data, progress=False, command="test")
    interrupted = train(tiny_config(2), tmp_path / "b", tiny_data, progress=False, stop_at=1)
    assert not interrupted.finished and len(interrupted.losses) == 1
    assert (tmp_path / "b" / straight.card.name / "checkpoint.pt").is_file()
    assert not (tmp_path / "b" / straight.card.name / f"{straight.card.name}.pt").exists()
    resumed = train(tiny_config(2), tmp_path / "b", tiny_data, resume=True, progress=False,
                    command="test")
    assert len(resumed.losses) == 2
    assert resumed.losses == pytest.approx(straight.losses, abs=1e-6)
    a = load_model(straight.card.name, "cpu", tmp_path / "a" / straight.card.name).network
    b = load_model(resumed.card.name, "cpu", tmp_path / "b" / resumed.card.name).network
    for (_, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(pa, pb)


def test_final_card_records_training_and_validation(tmp_path, tiny_data):
    result = train(tiny_config(2), tmp_path, tiny_data, progress=False, command="graftwatch train x",
                   install=True, weights_dir=tmp_path / "weights", status="test run")
    card = json.loads((tmp_path / "weights" / f"{result.card.name}.json").read_text())
    assert card["training"]["steps"] == 2 and card["training"]["seed"] == 5
    assert card["training"]["command"] == "graftwatch train x"
    assert card["training"]["status"] == "test run"
    assert card["training"]["code_commit"]
    dice = card["validation"]["phantom_holdout"]["dice_pooled"]
    assert set(dice) == {"cord", "lesion", "graft", "cord region"}
    assert all(v is None or 0.0 <= v <= 1.0 for v in dice.values())


def test_existing_run_needs_resume_and_same_settings(tmp_path, tiny_data):
    train(tiny_config(1), tmp_path, tiny_data, progress=False)
    with pytest.raises(ModelError, match="--resume"):
        train(tiny_config(1), tmp_path, tiny_data, progress=False)
    with pytest.raises(ModelError, match="same settings"):
        train(tiny_config(2, seed=6), tmp_path, tiny_data, resume=True, progress=False)


def test_train_command_rejects_zero_steps(capsys):
    from scripts.train import main
    with pytest.raises(SystemExit):
        main(["--out", "x", "--steps", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_graft_model_trains_on_the_segmenters_cases_and_reports_graft_scores(tmp_path, tiny_data):
    """The seg cases (4-label targets) train the 2-label graft model; its card keeps the
    segmenter's grid and normalisation, and validation reports graft Dice and volume."""
    config = tiny_config(2, model="graft")
    result = train(config, tmp_path, tiny_data, progress=False, command="test")
    seg_card = base_card(tiny_config(1))
    assert result.card.task == "graft" and result.card.labels == {0: "background", 1: "graft"}
    assert result.card.spacing_mm == seg_card.spacing_mm
    assert result.card.normalisation == seg_card.normalisation
    scores = result.card.validation["phantom_holdout"]
    assert set(scores["dice_pooled"]) == {"graft"}
    assert "median_abs_error_pct" in scores["graft_volume"]
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))


def test_graft_recipe_centres_most_patches_on_the_graft():
    from models.training.recipes import recipe_config
    graft, seg = recipe_config("graft", steps=10), recipe_config("seg", steps=10)
    assert graft.graft_fraction > seg.graft_fraction and graft.steps == 10
    with pytest.raises(ModelError, match="expected one of"):
        recipe_config("bones")
