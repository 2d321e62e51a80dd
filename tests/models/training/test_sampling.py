import numpy as np

from models.training.augment import AugmentConfig
from models.training.dataset import TrainingCase
from models.training.sampling import crop_patch, draw_batch


def _case(annotation="full") -> TrainingCase:
    target = np.zeros((4, 20, 20, 30), np.uint8)
    target[0] = 255
    target[:, 5:15, 5:15, :] = 0
    target[1, 5:15, 5:15, :] = 255
    target[1, 9:11, 9:11, 25:27] = 0
    target[3, 9:11, 9:11, 25:27] = 255       # a tiny graft near one end
    image = np.linspace(0, 1, 20 * 20 * 30, dtype=np.float16).reshape(20, 20, 30)
    return TrainingCase("c", image, target, annotation)


def test_patch_outside_the_case_is_padded_as_background():
    image, target, _ = crop_patch(_case(), (0, 0, 0), (8, 8, 8))
    assert image.shape == (8, 8, 8) and target.shape == (4, 8, 8, 8)
    assert (image[:4, :4, :4] == 0).all() and (target[0, :4, :4, :4] == 255).all()


def test_focused_batches_find_the_tiny_graft_and_are_seeded():
    case = _case()
    batches = [draw_batch([case], [], 8, (8, 8, 8), np.random.default_rng(s), AugmentConfig.none(),
                          0.0, 0.0, 1.0) for s in (1, 1, 2)]
    np.testing.assert_array_equal(batches[0].image, batches[1].image)
    with_graft = (batches[0].target[:, 3].flatten(1).max(1).values > 0.5).float().mean()
    assert with_graft >= 0.5
    assert batches[0].annotations == ("full",) * 8


def test_graft_focus_finds_a_graft_that_fills_less_than_half_a_voxel():
    case = _case()
    target = case.target.copy()
    target[3] = np.where(target[3] > 0, 60, 0)          # about a quarter of each voxel
    faint = TrainingCase("faint", case.image, target, "full")
    batch = draw_batch([faint], [], 8, (8, 8, 8), np.random.default_rng(3), AugmentConfig.none(),
                       0.0, 0.0, 1.0)
    assert (batch.target[:, 3].flatten(1).max(1).values > 0.2).float().mean() >= 0.5


def test_lesion_focus_never_centres_on_a_graft_free_case_by_mistake():
    batch = draw_batch([_case()], [], 8, (8, 8, 8), np.random.default_rng(4), AugmentConfig.none(),
                       0.0, 1.0, 0.0)
    # no lesion in the case: the centres fall back to the cord region, the graft is rarely seen
    assert (batch.target[:, 1].flatten(1).max(1).values > 0.5).float().mean() >= 0.5


def test_baseline_batches_have_two_channels_and_zeros_when_it_is_absent():
    case = _case()
    paired = TrainingCase("p", case.image, case.target, "full", prior=(case.image * 0.5))
    draw = lambda cases, dropout: draw_batch(cases, [], 6, (8, 8, 8), np.random.default_rng(5),  # noqa: E731
                                             AugmentConfig.none(), 0.0, 0.0, 0.5,
                                             baseline=True, prior_dropout=dropout)
    kept = draw([paired], 0.0)
    assert kept.image.shape == (6, 2, 8, 8, 8)
    np.testing.assert_allclose(kept.image[:, 1], kept.image[:, 0] * 0.5, atol=1e-3)
    assert not draw([paired], 1.0).image[:, 1].any()            # dropped: exact zeros
    # no prior (a real scan): its own image (a rescan) or zeros, never anything else
    for sample in draw([case], 0.0).image:
        assert not sample[1].any() or np.allclose(sample[1], sample[0])
    assert draw([case], 0.0).image.shape[1] == 2
    assert draw_batch([case], [], 2, (8, 8, 8), np.random.default_rng(5), AugmentConfig.none(),
                      0.0, 0.0).image.shape == (2, 1, 8, 8, 8)
