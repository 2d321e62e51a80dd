import math

import numpy as np
import pytest
import torch

from imaging.errors import ContrastError, DeviceError, ModelError
from imaging.volume import Volume
from models.registry import LoadedModel
from segmentation.device import available_devices, cpu_has_native_bf16
from segmentation.inference import TTA_FLIPS, segment
from segmentation.locate import LocatorConfig
from segmentation.metrics import dice


def test_cord_is_found_and_segmented_with_partial_volume(cord_scan, threshold_locator,
                                                         threshold_segmenter):
    image, fraction, truth = cord_scan
    result = segment(image, threshold_segmenter, locator=threshold_locator)
    assert result.cord_found and result.reason == "cord found"
    assert result.labels.same_space(image) and result.probabilities.same_space(image)
    assert dice(result.labels.array == 1, truth.array == 1) > 0.95
    true_mm3 = fraction.sum() * image.voxel_volume_mm3
    assert result.volumes_mm3()["cord"] == pytest.approx(true_mm3, rel=0.03)
    assert result.device == "cpu"
    assert result.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert set(result.timings_s) == {"prepare", "locate", "fine", "postprocess", "assemble"}


def test_box_is_the_cord_plus_margin_and_outside_is_background(cord_scan, threshold_locator,
                                                               threshold_segmenter):
    image, _, _ = cord_scan
    margins = LocatorConfig(margin_mm=(10.0, 10.0, 0.0))
    result = segment(image, threshold_segmenter, locator=threshold_locator,
                     locator_config=margins)
    lower, upper = result.box.lower, result.box.upper
    # cord spans x 14..22 mm, y 16..24 mm (1 mm voxels); 10 mm margin; the locator's 2 mm
    # grid can add up to one coarse voxel on each side
    assert 2 <= lower[0] <= 5 and 31 <= upper[0] <= 34
    assert 4 <= lower[1] <= 7 and 33 <= upper[1] <= 36
    assert lower[2] == 0 and upper[2] == 20
    probs = result.probabilities.array
    assert np.all(probs[:lower[0], ..., 0] == 1.0)
    uncertainty = result.uncertainty.array
    assert np.all(uncertainty[:lower[0]] == 0.0) and uncertainty.max() <= 1.0
    assert uncertainty[lower[0]:upper[0]].max() > 0.0
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.labels.array, probs.argmax(-1))


def test_default_box_is_the_training_box(cord_scan, threshold_locator, threshold_segmenter):
    image, _, _ = cord_scan
    shifted = np.zeros((80, 70, 20), np.float32)
    shifted[30:70, 30:66] = image.array
    big = Volume(shifted, image.affine, image.meta)
    result = segment(big, threshold_segmenter, locator=threshold_locator)
    # cord at x 44..52, y 46..54 (1 mm voxels) + 15 mm on x and y; z: the whole field of view
    assert 27 <= result.box.lower[0] <= 30 and 67 <= result.box.upper[0] <= 70
    assert 29 <= result.box.lower[1] <= 32 and 68 <= result.box.upper[1] <= 70
    assert result.box.lower[2] == 0 and result.box.upper[2] == 20


def test_orientation_of_the_input_does_not_change_the_answer(cord_scan, threshold_locator,
                                                             random_unet):
    image, _, _ = cord_scan
    ras = segment(image, random_unet, locator=threshold_locator, postprocess=None)
    flipped_input = image.reorient("PIL")
    flipped = segment(flipped_input, random_unet, locator=threshold_locator, postprocess=None)
    assert flipped.labels.same_space(flipped_input)
    back = flipped.probabilities.reorient("RAS")
    np.testing.assert_array_equal(back.array, ras.probabilities.array)


def test_blank_scan_reports_no_cord(threshold_locator, threshold_segmenter):
    blank = Volume(np.zeros((30, 30, 12), np.float32), np.eye(4), {"contrast": "T2w"})
    result = segment(blank, threshold_segmenter, locator=threshold_locator)
    assert not result.cord_found
    assert "no cord found" in result.reason
    assert result.box is None and not result.labels.array.any()
    assert result.volumes_mm3() == {"cord": 0.0, "lesion": 0.0, "graft": 0.0}
    assert result.labels.same_space(blank)


def test_multi_echo_t2starw_gives_a_3d_result_on_the_input_grid(cord_scan, threshold_locator,
                                                               threshold_segmenter):
    image, _, truth = cord_scan
    echoes = np.stack([image.array * np.exp(-te / 30.0) for te in (5.0, 15.0, 25.0)], axis=-1)
    t2s = Volume(echoes, image.affine, {"contrast": "T2starw"})
    result = segment(t2s, threshold_segmenter, locator=threshold_locator)
    assert result.labels.shape == image.shape
    assert dice(result.labels.array == 1, truth.array == 1) > 0.95


def test_volume_smaller_than_a_patch_is_padded(threshold_locator, threshold_segmenter):
    small = np.zeros((9, 7, 5), np.float32)
    small[3:6, 2:5, :] = 100.0
    volume = Volume(small, np.diag([2.0, 2.0, 3.0, 1.0]), {"contrast": "T2w"})
    result = segment(volume, threshold_segmenter, locator=threshold_locator)
    assert result.cord_found
    assert result.labels.shape == (9, 7, 5)
    assert result.labels.array[4, 3, 2] == 1 and result.labels.array[0, 0, 0] == 0


def test_unknown_contrast_names_the_accepted_ones_and_the_override(cord_scan, threshold_locator,
                                                                  threshold_segmenter):
    image, _, _ = cord_scan
    t1 = image.with_meta(contrast="T1w")
    with pytest.raises(ContrastError, match=r"accepts \['T2w', 'T2starw'\].*force_contrast=True"):
        segment(t1, threshold_segmenter, locator=threshold_locator)
    forced = segment(t1, threshold_segmenter, locator=threshold_locator, force_contrast=True)
    assert forced.cord_found
    assert segment(t1, threshold_segmenter, locator=threshold_locator, contrast="T2w").cord_found


def test_missing_contrast_says_how_to_give_it(cord_scan, threshold_locator, threshold_segmenter):
    image, _, _ = cord_scan
    bare = Volume(image.array, image.affine)
    with pytest.raises(ContrastError, match="no contrast in its metadata.*contrast='T2w'"):
        segment(bare, threshold_segmenter, locator=threshold_locator)


def test_models_swapped_are_refused(cord_scan, threshold_locator, threshold_segmenter):
    image, _, _ = cord_scan
    with pytest.raises(ModelError, match="task 'locate'; expected a 'segment' model"):
        segment(image, threshold_locator, locator=threshold_segmenter)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_but_absent_is_a_clear_error(cord_scan, threshold_locator,
                                                   threshold_segmenter):
    image, _, _ = cord_scan
    with pytest.raises(DeviceError, match="CUDA is not available"):
        segment(image, threshold_segmenter, locator=threshold_locator, device="cuda")


def test_tta_gives_samples_whose_mean_is_the_graft_probability(cord_scan, threshold_locator,
                                                               random_unet):
    image, _, _ = cord_scan
    result = segment(image, random_unet, locator=threshold_locator, tta=True, postprocess=None)
    samples = result.graft_probability_samples
    assert samples.shape == (len(TTA_FLIPS),) + image.shape
    np.testing.assert_allclose(samples.mean(0), result.probabilities.array[..., 3], atol=1e-5)
    assert samples.std(0).max() > 0      # a real network is not flip-invariant
    assert segment(image, random_unet, locator=threshold_locator).graft_probability_samples is None


@pytest.mark.parametrize("device", available_devices(), ids=str)
def test_every_device_gives_the_same_labels(cord_scan, threshold_locator, random_unet, device):
    image, _, _ = cord_scan
    reference = segment(image, random_unet, locator=threshold_locator, precision="fp32")
    moved = LoadedModel(random_unet.network.to(device), random_unet.card, device)
    locator = LoadedModel(threshold_locator.network.to(device), threshold_locator.card, device)
    result = segment(image, moved, locator=locator, precision="fp32")
    random_unet.network.to("cpu")
    assert result.device == str(device)
    np.testing.assert_array_equal(result.labels.array, reference.labels.array)


@pytest.fixture(scope="module")
def shipped():
    """The shipped models on the CPU; skipped when their weights are absent or preliminary."""
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, load_card, load_model
    try:
        cards = [load_card(DEFAULT_MODEL), load_card(DEFAULT_LOCATOR)]
        models = [load_model(c.name, torch.device("cpu")) for c in cards]
    except ModelError as exc:
        pytest.skip(f"shipped model not installed: {exc}")
    status = {c.name: c.training.get("status", "final") for c in cards}
    if any(str(s).startswith("preliminary") for s in status.values()):
        pytest.skip(f"shipped weights are preliminary ({status}); train and install final ones")
    return models


def test_shipped_model_finds_the_cord_in_a_real_t2w_scan(shipped):
    from imaging.io import load, load_labels
    from tests.conftest import shared_path
    folder = shared_path("sct_testing_data", "t2")
    image = load(folder / "t2.nii.gz").with_meta(contrast="T2w")
    truth = load_labels(folder / "t2_seg-manual.nii.gz")
    model, locator = shipped
    result = segment(image, model, locator=locator, precision="fp32")
    assert result.cord_found and result.labels.same_space(image)
    assert dice(result.labels.array > 0, truth.array > 0) > 0.8


BRAINS = {  # brain scans the locator never saw in training (see models.training.sources)
    "dcm_qa axial EPI": ("dcm_qa", "Ref", "ax_asc_36sl_9.nii"),
    "dcm_qa_xa30 sagittal T1w": ("dcm_qa_xa30", "Ref", "5_anat-T1w_acq-tfl.nii"),
}


@pytest.mark.parametrize("name", sorted(BRAINS))
def test_shipped_model_finds_no_cord_in_a_brain(shipped, name):
    """The locator marks a cord region in both; the fine model's 'cord' there is 22 mm
    long (axial EPI) or ends 52 and 134 mm inside the view (T1w): no cord."""
    from imaging.io import load
    from tests.conftest import shared_path
    brain = load(shared_path(*BRAINS[name]))
    model, locator = shipped
    result = segment(brain, model, locator=locator, contrast="T2starw", force_contrast=True)
    assert not result.cord_found, result.reason
    assert "is the spinal cord in this field of view?" in result.reason.lower()
    assert not result.labels.array.any()


def test_segment_is_the_package_api():
    import segmentation
    assert segmentation.segment is segment


class BlindNet(torch.nn.Module):
    """A locator that never sees a cord: background logit high everywhere."""

    def forward(self, x):
        return torch.cat([torch.full_like(x, 30.0), torch.full_like(x, -30.0)], dim=1)


@pytest.fixture
def blind_locator(threshold_locator) -> LoadedModel:
    return LoadedModel(BlindNet().eval(), threshold_locator.card, threshold_locator.device)


def test_small_view_the_locator_misses_is_segmented_whole(cord_scan, blind_locator,
                                                          threshold_segmenter):
    image, _, truth = cord_scan                      # 40 x 36 x 40 mm: 57600 mm3
    result = segment(image, threshold_segmenter, locator=blind_locator)
    assert result.cord_found
    assert "whole field of view (57600 mm3" in result.reason
    assert result.box.lower == (0, 0, 0) and result.box.upper == image.spatial_shape
    assert dice(result.labels.array == 1, truth.array == 1) > 0.95


def test_large_view_the_locator_misses_is_not_segmented(cord_scan, blind_locator,
                                                        threshold_segmenter):
    image, _, _ = cord_scan
    result = segment(image, threshold_segmenter, locator=blind_locator,
                     locator_config=LocatorConfig(whole_view_max_mm3=50_000.0))
    assert not result.cord_found and result.reason.startswith("no cord found")
    assert "fine" not in result.timings_s and not result.labels.array.any()


def test_too_little_cord_in_the_box_is_no_cord(cord_scan, threshold_locator, threshold_segmenter,
                                               blind_locator):
    image, fraction, _ = cord_scan
    cord_mm3 = fraction.sum() * image.voxel_volume_mm3      # about 2000 mm3
    config = LocatorConfig(min_cord_mm3=2 * cord_mm3)
    found_box = segment(image, threshold_segmenter, locator=threshold_locator,
                        locator_config=config)
    assert not found_box.cord_found and found_box.box is None
    assert "the locator marked" in found_box.reason and "segmenter found only" in found_box.reason
    assert not found_box.labels.array.any() and found_box.volumes_mm3()["cord"] == 0.0
    blank = image.with_array(np.zeros(image.shape, np.float32))
    whole = segment(blank, threshold_segmenter, locator=blind_locator)
    assert not whole.cord_found and "whole field of view" in whole.reason
    assert "segmenter found only 0 mm3" in whole.reason


def _cord_in_a_taller_view(cord_scan, first: int, last: int, slices: int = 60) -> Volume:
    """The cord_scan's cylinder only in slices first..last-1 of a view ``slices`` tall."""
    image, _, _ = cord_scan
    array = np.zeros(image.spatial_shape[:2] + (slices,), np.float32)
    array[..., first:last] = image.array[..., :1]
    return Volume(array, image.affine, image.meta)


def test_box_grows_to_follow_a_cord_that_runs_out_of_it(cord_scan, threshold_locator,
                                                        threshold_segmenter, monkeypatch):
    import segmentation.locate as locate
    monkeypatch.setattr(locate, "CORD_RADIUS_MM", 0.0)   # the box: the marked cord only
    image, fraction, _ = cord_scan
    true_mm3 = fraction.sum() * image.voxel_volume_mm3
    tight = dict(margin_mm=(0.0, 0.0, math.inf))
    kept = segment(image, threshold_segmenter, locator=threshold_locator,
                   locator_config=LocatorConfig(max_box_growth=0, **tight))
    followed = segment(image, threshold_segmenter, locator=threshold_locator,
                       locator_config=LocatorConfig(**tight))
    assert kept.volumes_mm3()["cord"] < 0.96 * true_mm3          # the box cuts the cord's edge
    assert "grew" not in kept.reason and "the box grew" in followed.reason
    assert all(a <= b for a, b in zip(followed.box.lower, kept.box.lower))
    assert followed.volumes_mm3()["cord"] == pytest.approx(true_mm3, rel=0.03)


def test_cord_ending_inside_the_view_at_both_ends_is_no_cord(cord_scan, threshold_locator,
                                                             threshold_segmenter):
    floating = _cord_in_a_taller_view(cord_scan, 20, 40)       # 40 mm from both edges
    result = segment(floating, threshold_segmenter, locator=threshold_locator)
    assert not result.cord_found and result.box is None and not result.labels.array.any()
    assert "ends 40 mm above the inferior and 40 mm below the superior edge" in result.reason
    leaving = _cord_in_a_taller_view(cord_scan, 0, 24)           # leaves through the bottom
    assert segment(leaving, threshold_segmenter, locator=threshold_locator).cord_found
    relaxed = LocatorConfig(max_end_gap_mm=math.inf, min_cord_length_mm=0.0)
    assert segment(floating, threshold_segmenter, locator=threshold_locator,
                   locator_config=relaxed).cord_found


def test_short_cord_is_no_cord(cord_scan, threshold_locator, threshold_segmenter):
    stub = _cord_in_a_taller_view(cord_scan, 0, 5)               # 10 mm of a 120 mm view
    result = segment(stub, threshold_segmenter, locator=threshold_locator)
    assert not result.cord_found
    assert "is 10 mm long from top to bottom" in result.reason
    assert "at least 40 mm of it here" in result.reason


def test_shipped_model_finds_the_cord_in_a_small_research_view(shipped):
    """A research phantom (25 x 55 x 66 mm, 0.41 mm in-plane): locator-v1 missed its cord
    at 2 mm and the whole view was segmented instead (that rule: the blind-locator tests
    above); locator-v2, trained with wide and small views, finds it."""
    from imaging.phantom import sample_spec, simulate_subject
    rng = np.random.default_rng(10000)
    spec = sample_spec(rng, label="none", control=False, resolution="research", n_sessions=2)
    session = simulate_subject(spec, rng, subject_id="sub-r").sessions[1]
    model, locator = shipped
    result = segment(session.t2w, model, locator=locator, graft=None)
    assert result.cord_found, result.reason
    assert dice(result.labels.array > 0, session.dseg.array > 0) > 0.9

