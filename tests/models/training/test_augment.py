import numpy as np

from models.training.augment import AugmentConfig, augment, bias_field, thick_slices


def _patch(rng):
    image = rng.random((16, 16, 20)).astype(np.float32)
    labels = rng.integers(0, 4, size=(16, 16, 20))
    target = np.stack([(labels == k) for k in range(4)]).astype(np.float32)
    return image, target


def test_no_augmentation_is_identity(rng):
    image, target = _patch(rng)
    out_image, out_target = augment(image, target, "full", rng, AugmentConfig.none())
    np.testing.assert_allclose(out_image, image)
    np.testing.assert_allclose(out_target, target)


def test_full_augmentation_keeps_targets_fractions_and_is_seeded(rng):
    image, target = _patch(rng)
    a = augment(image, target, "cord", np.random.default_rng(7), AugmentConfig())
    b = augment(image, target, "cord", np.random.default_rng(7), AugmentConfig())
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == image.shape and a[1].shape == target.shape
    np.testing.assert_allclose(a[1].sum(0), 1.0, atol=1e-5)
    assert a[1].min() >= -1e-6


def test_thick_slices_blur_one_axis_only(rng):
    image = rng.random((12, 12, 12)).astype(np.float32)
    out = thick_slices(image, np.random.default_rng(3))
    assert out.shape == image.shape
    changed = [not np.allclose(np.diff(out, axis=a), np.diff(image, axis=a)) for a in range(3)]
    assert any(changed)
    assert out.std() < image.std()


def test_bias_field_is_smooth_and_bounded(rng):
    field = bias_field((10, 12, 14), rng, 0.4)
    assert field.min() >= 1 / 1.4 - 1e-6 and field.max() <= 1.4 + 1e-6
    assert np.abs(np.diff(field, axis=0)).max() < 0.2


def test_the_baseline_channel_moves_with_the_image_but_gets_its_own_intensity_draws(rng):
    image, target = _patch(rng)
    spatial_only = AugmentConfig(spatial_probability=1.0, thick_slice_probability=0.0,
                                 bias_strength=0.0, contrast_probability=0.0,
                                 remap_probability=0.0, noise_sigma_max=0.0)
    both, moved = augment(image, target, "full", np.random.default_rng(3), spatial_only,
                          prior=image.copy())
    assert both.shape == (2, *image.shape) and moved.shape == target.shape
    np.testing.assert_allclose(both[0], both[1], atol=1e-6)     # one spatial draw for both
    assert not np.allclose(both[0], image)
    noisy, _ = augment(image, target, "full", np.random.default_rng(3),
                       AugmentConfig(noise_sigma_max=0.1, spatial_probability=0.0), prior=image.copy())
    assert not np.allclose(noisy[0], noisy[1])                  # noise drawn per channel
