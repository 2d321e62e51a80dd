import numpy as np
import pytest
import torch
from torch import nn

from imaging.errors import DeviceError, ModelError
from segmentation.device import available_devices
from segmentation.sliding_window import (autocast_context, gaussian_weights, plan_windows,
                                         sliding_window_probabilities)


class PointwiseNet(nn.Module):
    """A per-voxel network: windows cannot change its answer, so blending must be exact."""

    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=generator))
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return self.conv(x)


@pytest.fixture
def net():
    return PointwiseNet(torch.Generator().manual_seed(3)).eval()


def whole_image_softmax(net, image):
    with torch.no_grad():
        return torch.softmax(net.conv(torch.from_numpy(image)[None, None]), 1)[0].numpy()


def test_plan_covers_every_voxel_with_windows_inside_the_padded_image():
    plan = plan_windows((70, 33, 9), (32, 32, 16), 8, overlap=0.5)
    covered = np.zeros(plan.padded_shape, int)
    for start in plan.starts:
        box = tuple(slice(s, s + w) for s, w in zip(start, plan.window))
        assert all(s + w <= p for s, w, p in zip(start, plan.window, plan.padded_shape))
        covered[box] += 1
    assert covered.min() >= 1
    assert plan.window == (32, 32, 16)
    assert plan.padded_shape == (70, 33, 16)


def test_window_shrinks_to_small_images_rounded_to_the_divisor():
    plan = plan_windows((10, 50, 3), (32, 32, 32), 8)
    assert plan.window == (16, 32, 8)
    assert plan.padded_shape == (16, 50, 8)


def test_patch_not_multiple_of_divisor_is_refused():
    with pytest.raises(ModelError, match="not a multiple"):
        plan_windows((40, 40, 40), (30, 32, 32), 8)


def test_gaussian_weights_peak_at_centre_and_stay_positive():
    w = gaussian_weights((16, 8, 4))
    assert w.max() == pytest.approx(1.0)
    assert w.min() > 0
    assert w[8, 4, 2] > w[0, 0, 0]


@pytest.mark.parametrize("shape", [(40, 37, 21), (5, 6, 7)])
def test_blending_a_pointwise_network_reproduces_it_exactly(net, rng, shape):
    image = rng.normal(size=shape).astype(np.float32)
    probs = sliding_window_probabilities(net, image, (16, 16, 16), 4, torch.device("cpu"),
                                         overlap=0.5, batch_size=3)
    assert probs.shape == (4,) + shape
    np.testing.assert_allclose(probs, whole_image_softmax(net, image), atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)


def test_windows_are_batched(net, rng):
    image = rng.normal(size=(40, 40, 16)).astype(np.float32)
    sliding_window_probabilities(net, image, (16, 16, 16), 4, torch.device("cpu"),
                                 overlap=0.25, batch_size=4)
    assert net.calls[0][0] == 4
    assert sum(c[0] for c in net.calls) == 9


def test_batch_size_does_not_change_the_result(rng):
    conv = nn.Sequential(nn.Conv3d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv3d(3, 2, 3, padding=1))
    conv.eval()
    image = rng.normal(size=(30, 20, 20)).astype(np.float32)
    runs = [sliding_window_probabilities(conv, image, (16, 16, 16), 4, torch.device("cpu"),
                                         batch_size=b) for b in (1, 5)]
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)


def test_bf16_autocast_stays_close_to_fp32(net, rng):
    image = rng.normal(size=(20, 20, 20)).astype(np.float32)
    fp32 = sliding_window_probabilities(net, image, (16, 16, 16), 4, torch.device("cpu"))
    bf16 = sliding_window_probabilities(net, image, (16, 16, 16), 4, torch.device("cpu"),
                                        precision="bf16")
    assert bf16.dtype == np.float32
    assert np.abs(bf16 - fp32).max() < 0.05
    assert (bf16.argmax(0) == fp32.argmax(0)).mean() > 0.95


def test_fp16_on_cpu_is_refused_with_a_hint():
    with pytest.raises(DeviceError, match="needs a CUDA device.*bf16"):
        autocast_context(torch.device("cpu"), "fp16")


def test_unknown_precision_is_refused():
    with pytest.raises(ModelError, match="precision 'half'"):
        autocast_context(torch.device("cpu"), "half")


@pytest.mark.parametrize("device", available_devices(), ids=str)
def test_same_answer_on_every_device(net, rng, device):
    image = rng.normal(size=(24, 20, 18)).astype(np.float32)
    probs = sliding_window_probabilities(net.to(device), image, (16, 16, 16), 4, device)
    np.testing.assert_allclose(probs, whole_image_softmax(net.cpu(), image), atol=1e-4)
