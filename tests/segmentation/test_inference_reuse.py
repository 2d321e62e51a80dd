"""A second pass over one scan with another baseline reuses the first pass's segmenter
output (``keep_fine_pass`` / ``reuse``) and gives exactly what a full second pass gives."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.errors import ModelError
from segmentation.inference import segment


@pytest.fixture(scope="module")
def paired():
    from imaging.phantom import sample_spec, simulate_subject
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, load_model
    rng = np.random.default_rng(10001)
    spec = sample_spec(rng, label="none", control=False, resolution="clinical", n_sessions=2)
    sessions = simulate_subject(spec, rng, subject_id="sub-r").sessions
    models = {"model": load_model(DEFAULT_MODEL, "cpu"),
              "locator": load_model(DEFAULT_LOCATOR, "cpu"),
              "graft": load_model("graftwatch-graft-v5", "cpu")}
    return sessions[1].t2w, models


def test_reusing_the_segmenter_output_equals_a_full_second_pass(paired):
    scan, models = paired
    first = segment(scan, **models, keep_fine_pass=True)
    assert first.fine_pass is not None and len(first.fine_pass.segmenter_runs) == 1
    baseline = scan   # any image on the scan's grid; here the scan itself
    full = segment(scan, **models, baseline=baseline)
    reused = segment(scan, **models, baseline=baseline, reuse=first.fine_pass)
    np.testing.assert_array_equal(reused.labels.array, full.labels.array)
    np.testing.assert_array_equal(reused.probabilities.array, full.probabilities.array)
    assert reused.box == full.box
    assert "locate" not in reused.timings_s and "reused from the first pass" in reused.reason
    assert full.fine_pass is None and reused.fine_pass is None   # kept only when asked


def test_a_pass_made_otherwise_is_refused(paired):
    scan, models = paired
    first = segment(scan, **models, keep_fine_pass=True)
    with pytest.raises(ModelError, match="without test-time augmentation.*segment without reuse"):
        segment(scan, **models, tta=True, reuse=first.fine_pass)
