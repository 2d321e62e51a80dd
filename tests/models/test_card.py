import pytest

from imaging.errors import ModelError
from models.card import SEGMENT_LABELS, ModelCard


def make_card(**changes) -> ModelCard:
    fields = dict(name="test-seg", task="segment", contrasts=("T2w", "T2starw"),
                  spacing_mm=(0.6, 0.6, 0.6), patch_size=(48, 48, 64), labels=SEGMENT_LABELS,
                  architecture={"channels": [4, 8], "strides": [2], "out_channels": 4},
                  normalisation="percentile", training={"seed": 3, "steps": 10},
                  validation={"dice": {"cord": 0.9}})
    fields.update(changes)
    return ModelCard(**fields)


def test_json_round_trip_is_equal():
    card = make_card()
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert again.labels[3] == "graft" and again.spacing_mm == (0.6, 0.6, 0.6)


def test_unknown_task_is_refused():
    with pytest.raises(ModelError, match="task 'detect'"):
        make_card(task="detect")


def test_missing_key_is_named():
    data = make_card().to_dict()
    del data["patch_size"]
    with pytest.raises(ModelError, match=r"missing \['patch_size'\]"):
        ModelCard.from_dict(data)


def test_bad_spacing_and_labels_are_refused():
    with pytest.raises(ModelError, match="spacing_mm"):
        make_card(spacing_mm=(0.6, 0.6))
    with pytest.raises(ModelError, match="labels"):
        make_card(labels={0: "background", 2: "lesion"})
