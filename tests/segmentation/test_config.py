"""AnalysisConfig: documented defaults, validation with clear messages, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imaging.errors import AnalysisError
from imaging.physics import DEFAULT_IRON_PG_PER_CELL
from segmentation.config import AnalysisConfig
from segmentation.records import json_safe, two_sided_z


def test_defaults_come_from_physics_and_round_trip_through_json():
    config = AnalysisConfig(injected_cells=2e6, label="spio", repeatability_cv=0.05)
    assert config.iron_pg_per_cell == DEFAULT_IRON_PG_PER_CELL
    text = json.dumps(config.to_dict(), allow_nan=False)
    assert AnalysisConfig.from_dict(json.loads(text)) == config


def test_generator_is_reproducible_from_the_seed():
    config = AnalysisConfig(seed=7)
    assert config.generator().random() == config.generator().random()
    assert AnalysisConfig(seed=8).generator().random() != config.generator().random()


@pytest.mark.parametrize("settings, message", [
    ({"label": "gadolinium"}, "label 'gadolinium' is not known"),
    ({"injected_cells": -5.0}, "injected_cells=-5.0; expected a positive number or None"),
    ({"confidence": 1.5}, "confidence=1.5; expected a fraction"),
    ({"repeatability_cv": 5.0}, r"repeatability_cv=5.0; expected a fraction .*0.05"),
    ({"iron_pg_per_cell": float("nan")}, "iron_pg_per_cell=nan is not a finite number"),
    ({"bootstrap_samples": 10}, "at least 100"),
    ({"seed": -1}, "non-negative integer"),
    ({"min_graft_volume_mm3": -1.0}, "expected zero or a positive number"),
])
def test_bad_settings_raise_with_the_value(settings, message):
    with pytest.raises(AnalysisError, match=message):
        AnalysisConfig(**settings)


def test_unknown_keys_are_an_error():
    with pytest.raises(AnalysisError, match=r"unknown analysis setting\(s\) \['injected'\]"):
        AnalysisConfig.from_dict({"injected": 5})


def test_json_safe_turns_nan_into_none_and_z_is_normal():
    assert json_safe({"a": np.float32("nan"), "b": (np.int64(3), np.inf)}) == {"a": None, "b": [3, None]}
    assert two_sided_z(0.95) == pytest.approx(1.959964, abs=1e-5)
    with pytest.raises(AnalysisError, match="between 0 and 1"):
        two_sided_z(95)
