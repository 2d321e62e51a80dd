"""The graft model's stage: its P(graft) replaces the segmenter's, on the same grid."""

import numpy as np
import pytest
import torch
from torch import nn

from imaging.errors import ModelError
from imaging.volume import Volume
from models.card import GRAFT_LABELS, ModelCard
from models.registry import DEFAULT_GRAFT, DEFAULT_MODEL, LoadedModel, graft_model_name
from segmentation.graft_refine import check_graft_model, merge_graft, search_box
from segmentation.inference import segment

from .conftest import CPU, card


class BrightSpotNet(nn.Module):
    """Two logits: graft where the normalised intensity exceeds ``level``."""

    def __init__(self, level: float = 1.5):
        super().__init__()
        self.level = level

    def forward(self, x):
        score = 40.0 * (x - self.level)
        return torch.cat([-score / 2, score / 2], dim=1)


def graft_card(spacing_mm=(0.5, 0.5, 0.5), normalisation="percentile") -> ModelCard:
    return ModelCard(name="test-graft", task="graft", contrasts=("T2w", "T2starw"),
                     spacing_mm=spacing_mm, patch_size=(16, 16, 16), labels=GRAFT_LABELS,
                     architecture={}, normalisation=normalisation)


@pytest.fixture
def spot_graft() -> LoadedModel:
    return LoadedModel(BrightSpotNet().eval(), graft_card(), CPU)


@pytest.fixture
def cord_with_spot(cord_scan):
    """The test cord (intensity 100) with a 2 x 2 x 2 mm spot of 200 inside it."""
    image, _, _ = cord_scan
    array = image.array.copy()
    array[17:19, 19:21, 9:10] = 200.0            # 1 x 1 x 2 mm voxels
    return Volume(array, image.affine, image.meta)


def test_merge_replaces_graft_and_keeps_the_other_proportions():
    probs = np.zeros((4, 2, 1, 1), np.float32)
    probs[:, 0, 0, 0] = (0.2, 0.6, 0.2, 0.0)     # the segmenter saw no graft here
    probs[:, 1, 0, 0] = (0.0, 0.0, 0.0, 1.0)     # ... and only graft here
    merged = merge_graft(probs, np.array([0.5, 0.0], np.float32).reshape(2, 1, 1))
    np.testing.assert_allclose(merged.sum(axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(merged[:, 0, 0, 0], (0.1, 0.3, 0.1, 0.5), atol=1e-6)
    # the graft model says "no graft" where the segmenter said only graft: lesion
    np.testing.assert_allclose(merged[:, 1, 0, 0], (0.0, 0.0, 1.0, 0.0), atol=1e-6)


def test_search_box_is_the_cord_region_plus_margin_and_none_without_cord():
    probs = np.zeros((4, 40, 40, 10), np.float32)
    probs[0] = 1.0
    assert search_box(probs, (1.0, 1.0, 1.0)) is None
    probs[0, 20:24, 18:20, 3:5], probs[1, 20:24, 18:20, 3:5] = 0.0, 1.0
    box = search_box(probs, (1.0, 1.0, 2.0), margin_mm=5.0)
    assert box == (slice(15, 29), slice(13, 25), slice(0, 8))


def test_graft_model_must_share_the_segmenters_grid(spot_graft):
    segmenter = card("segment", spacing_mm=(0.5, 0.5, 0.5))
    check_graft_model(spot_graft.card, segmenter)            # matching pair: no error
    with pytest.raises(ModelError, match="not trained on the grid"):
        check_graft_model(graft_card(spacing_mm=(0.6, 0.6, 0.6)), segmenter)
    with pytest.raises(ModelError, match="task 'segment'"):
        check_graft_model(segmenter, segmenter)


def test_segment_takes_the_graft_from_the_graft_model(cord_with_spot, threshold_locator,
                                                      threshold_segmenter, spot_graft):
    without = segment(cord_with_spot, threshold_segmenter, locator=threshold_locator, graft=None)
    assert not (without.labels.array == 3).any() and without.graft_model is None
    result = segment(cord_with_spot, threshold_segmenter, locator=threshold_locator,
                     graft=spot_graft)
    graft = result.labels.array == 3
    assert graft[17:19, 19:21, 9].all() and graft.sum() == 4
    # a 8 mm3 spot, linearly refined onto the 0.5 mm grid and thresholded there
    assert 3.0 < result.volumes_mm3()["graft"] < 12.0
    assert result.graft_model == "test-graft" and result.to_dict()["graft_model"] == "test-graft"
    np.testing.assert_allclose(result.probabilities.array.sum(-1), 1.0, atol=1e-5)
    # the cord region is unchanged: the spot moved from cord to graft
    region = lambda r: (r.labels.array > 0).sum()
    assert region(result) == region(without)


def test_paired_graft_model_only_with_the_default_segmenter():
    assert graft_model_name(None, DEFAULT_MODEL) == DEFAULT_GRAFT
    assert graft_model_name("paired", "some-other-segmenter") is None
    assert graft_model_name("none", DEFAULT_MODEL) is None
    assert graft_model_name("my-graft", "some-other-segmenter") == "my-graft"


def test_shipped_graft_model_fits_the_shipped_segmenters_grid():
    from models.registry import load_card
    for name in ("graftwatch-graft-v3", "graftwatch-graft-v5"):
        graft = load_card(name)
        check_graft_model(graft, load_card(DEFAULT_MODEL))
        assert graft.task == "graft" and graft.labels == {0: "background", 1: "graft"}
    assert load_card("graftwatch-graft-v5").takes_baseline
    assert not load_card("graftwatch-graft-v3").takes_baseline


class NewSpotNet(nn.Module):
    """Two logits from (image, baseline): graft where the image is brighter than the
    baseline by more than ``level`` (normalised units)."""

    def __init__(self, level: float = 0.5):
        super().__init__()
        self.level = level

    def forward(self, x):
        score = 40.0 * (x[:, :1] - x[:, 1:2] - self.level)
        return torch.cat([-score / 2, score / 2], dim=1)


@pytest.fixture
def new_spot_graft() -> LoadedModel:
    paired = ModelCard(name="test-graft-paired", task="graft", contrasts=("T2w",),
                       spacing_mm=(0.5, 0.5, 0.5), patch_size=(16, 16, 16), labels=GRAFT_LABELS,
                       architecture={"in_channels": 2}, normalisation="percentile")
    return LoadedModel(NewSpotNet().eval(), paired, CPU)


def test_a_graft_model_that_takes_the_baseline_sees_what_is_new(
        cord_scan, cord_with_spot, threshold_locator, threshold_segmenter, new_spot_graft):
    assert new_spot_graft.card.takes_baseline and not graft_card().takes_baseline
    run = lambda baseline: segment(cord_with_spot, threshold_segmenter, locator=threshold_locator,  # noqa: E731
                                   graft=new_spot_graft, baseline=baseline)
    graft = run(cord_scan[0]).labels.array == 3          # the spot was not there before
    assert graft[17:19, 19:21, 9].all() and graft.sum() == 4
    assert not (run(cord_with_spot).labels.array == 3).any()   # it was: not graft
    run(None)   # no baseline: the second channel is zeros (graft_input), no error
    shifted = Volume(cord_scan[0].array, cord_scan[0].affine @ np.diag([1, 1, 1.5, 1]))
    with pytest.raises(ModelError, match="not on the grid"):
        run(shifted)


def test_graft_input_stacks_the_baseline_or_zeros():
    from segmentation.graft_refine import graft_input
    image = np.ones((3, 4, 5), np.float32)
    assert graft_input(image, None, False) is image
    stacked = graft_input(image, None, True)
    assert stacked.shape == (2, 3, 4, 5) and not stacked[1].any()
    with pytest.raises(ModelError, match="same model-grid shape"):
        graft_input(image, np.ones((3, 4, 4), np.float32), True)
