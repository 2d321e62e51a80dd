"""Which models a subject analysis loads: segmenter, locator and the chosen graft model."""

from __future__ import annotations

import pytest

from imaging.errors import ModelError
from models import registry
from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL
from segmentation.pipeline import load_pipeline_models


def _names(**choice) -> tuple:
    return load_pipeline_models("cpu", load=lambda name, device: name, **choice)


def test_default_is_the_segmenter_with_its_paired_graft_model(monkeypatch):
    monkeypatch.setattr(registry, "DEFAULT_GRAFT", None)
    assert _names() == (DEFAULT_MODEL, DEFAULT_LOCATOR)
    monkeypatch.setattr(registry, "DEFAULT_GRAFT", "paired-graft")
    assert _names() == (DEFAULT_MODEL, DEFAULT_LOCATOR, "paired-graft")
    assert _names(graft="paired") == (DEFAULT_MODEL, DEFAULT_LOCATOR, "paired-graft")
    # another segmenter was not trained with the paired graft model
    assert _names(model="other-seg") == ("other-seg", DEFAULT_LOCATOR)


def test_a_named_graft_model_or_none(monkeypatch):
    monkeypatch.setattr(registry, "DEFAULT_GRAFT", "paired-graft")
    assert _names(graft="graftwatch-graft-v3") == (DEFAULT_MODEL, DEFAULT_LOCATOR,
                                                    "graftwatch-graft-v3")
    assert _names(graft="none") == (DEFAULT_MODEL, DEFAULT_LOCATOR)


def test_an_unknown_graft_model_is_a_clear_error():
    with pytest.raises(ModelError, match="no-such-graft"):
        load_pipeline_models("cpu", graft="no-such-graft")
