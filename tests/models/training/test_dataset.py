import numpy as np
import pytest

from tests.conftest import shared_path
from models.input import block_average
from models.training.dataset import (build_case, load_cached_case, save_case,
                                     soft_targets_from_fractions)
from models.training.recipes import TrainConfig, base_card
from models.training.sources import REAL_TRAIN, real_cases
from tests.models.training.synthetic import synthetic_scan

SEG_CARD = base_card(TrainConfig(model="seg"))
LOCATOR_CARD = base_card(TrainConfig(model="locator"))


def test_soft_targets_sum_to_one_and_keep_the_region(rng):
    region = rng.random((5, 5, 5))
    lesion = rng.random((5, 5, 5)) * 0.5
    graft = rng.random((5, 5, 5)) * 0.5
    targets = soft_targets_from_fractions(region, lesion, graft)
    np.testing.assert_allclose(targets.sum(0), 1.0, atol=1e-6)
    assert targets.min() >= 0
    np.testing.assert_allclose(targets[1:].sum(0), np.maximum(region, np.minimum(lesion, 1 - graft) + graft),
                               atol=1e-6)


def test_validation_case_block_averages_back_to_the_input_targets(rng):
    image, targets = synthetic_scan(rng)
    case = build_case("synthetic", image, targets, "full", SEG_CARD, validation=True)
    assert case.factors == (1, 3, 1)   # RAS y is the 2 mm axis, 0.6 mm model spacing
    coarse = block_average(case.target_fractions(), case.factors)
    # every cord voxel of the input lies in the box, with its fractions (uint8-quantised)
    ras_region = targets[1:].sum(0).transpose(2, 0, 1)[:, ::-1, ::-1]  # PSR -> RAS
    assert coarse[1:].sum() == pytest.approx(ras_region.sum(), rel=0.01)
    assert case.image.dtype == np.float16 and case.image.shape == case.target.shape[1:]


def test_training_case_is_refined_linearly_and_normalised(rng):
    image, targets = synthetic_scan(rng)
    case = build_case("synthetic", image, targets, "full", SEG_CARD)
    fractions = case.target_fractions()
    np.testing.assert_allclose(fractions.sum(0), 1.0, atol=4 / 255)
    assert 0.0 <= np.percentile(case.image.astype(np.float32), 50) <= 1.0
    assert (fractions[3] > 0.5).any() and (fractions[2] > 0.5).any()


def test_locator_case_is_coarse_whole_field_of_view(rng):
    image, targets = synthetic_scan(rng)
    case = build_case("synthetic", image, targets, "full", LOCATOR_CARD)
    assert case.target.shape[0] == 2 and case.annotation == "cord"
    assert case.image.shape == (9, 10, 12)   # 18 x 20 x 24 mm at 2 mm


def test_cache_round_trip(tmp_path, rng):
    image, targets = synthetic_scan(rng)
    case = build_case("synthetic", image, targets, "full", SEG_CARD)
    save_case(case, tmp_path, SEG_CARD)
    again = load_cached_case("synthetic", tmp_path, SEG_CARD)
    assert again.factors == case.factors and again.annotation == "full"
    np.testing.assert_array_equal(again.target, case.target)
    assert load_cached_case("synthetic", tmp_path, SEG_CARD, validation=True) is None


def test_real_scan_case_keeps_the_manual_cord_mask():
    root = shared_path().parent / "data"
    scan = REAL_TRAIN[0]   # sct_testing_data t2, PSR, 1 mm
    shared_path(scan.cord_mask)
    (case,) = real_cases([scan], SEG_CARD, root, validation=True)
    import nibabel as nib
    mask = np.asarray(nib.load(str(root / scan.cord_mask)).dataobj) > 0.5
    coarse = block_average(case.target_fractions(), case.factors)
    assert case.annotation == "healthy" and case.factors == (2, 2, 2)
    assert int((coarse[0] < 0.5).sum()) == int(mask.sum())
    assert float(case.target_fractions()[2:].max()) == 0.0   # lesion and graft: known absent
