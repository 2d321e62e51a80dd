"""The repeatability benchmark on one real gm-challenge pair (skipped without ../shared/data)."""

from __future__ import annotations

import pytest
import torch

from scripts.benchmarks.repeatability import gm_challenge_pairs, main, measure_pair
from tests.conftest import shared_path
from tests.segmentation.conftest import one_torch_thread  # noqa: F401 (autouse fixture)

PAIR = "sub-9709 ses-1/ses-2 run-1"
SCAN_RESCAN = "sub-9709Ses1 run-1/run-2"


@pytest.mark.slow
def test_one_real_pair_is_repeatable_over_its_common_extent():
    """sub-9709 on two days: manual masks on both scans give the baseline on the same slices."""
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, load_model
    pairs = {p.name: p for p in gm_challenge_pairs(shared_path("gm-challenge-data").parent)}
    cpu = torch.device("cpu")
    result = measure_pair(pairs[PAIR], (load_model(DEFAULT_MODEL, cpu),
                                        load_model(DEFAULT_LOCATOR, cpu)), cpu)
    assert 0.3 < result.motion_mm < 5.0          # the sessions differ in position
    for paired in (result.model, result.model_hard, result.manual):
        assert (paired.first_slice, paired.last_slice) == (result.model.first_slice,
                                                           result.model.last_slice)
        assert paired.last_slice - paired.first_slice + 1 >= 15   # of 20 slices
        assert 2000.0 < paired.scan_mm3 < 8000.0 and 2000.0 < paired.rescan_mm3 < 8000.0
    assert result.dice_vs_manual > 0.7
    # two days apart, repositioned: no worse than the manual masks on the same slices
    assert 0.0 < result.manual.cv < 0.1
    assert result.model.cv <= result.manual.cv
    rescan = measure_pair(pairs[SCAN_RESCAN], (load_model(DEFAULT_MODEL, cpu),
                                               load_model(DEFAULT_LOCATOR, cpu)), cpu)
    assert rescan.model.cv <= 0.02               # the goal (scan-rescan, one visit)


def test_without_the_data_the_benchmark_says_so(tmp_path, capsys):
    assert main(["--data", str(tmp_path)]) == 1
    assert "no gm-challenge scan-rescan pairs" in capsys.readouterr().out
