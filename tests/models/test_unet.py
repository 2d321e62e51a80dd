import pytest
import torch

from imaging.errors import ModelError
from models.unet import UNet3D, parameter_count


@pytest.mark.parametrize("size", [(16, 16, 16), (8, 24, 32), (32, 8, 16)])
def test_output_has_input_size_and_label_channels(size):
    net = UNet3D(in_channels=1, out_channels=4, channels=(4, 8, 16, 32)).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 1, *size))
    assert out.shape == (2, 4, *size)


def test_anisotropic_strides_set_the_size_multiple():
    net = UNet3D(out_channels=2, channels=(4, 8, 16), strides=((2, 2, 1), 2)).eval()
    assert net.size_multiple == (4, 4, 2)
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 8, 12, 6)).shape == (1, 2, 8, 12, 6)


def test_default_parameter_counts_are_compact():
    assert 1.0e6 < parameter_count(UNet3D(channels=(16, 32, 64, 96))) < 1.6e6
    assert parameter_count(UNet3D(out_channels=2, channels=(8, 16, 32), strides=(2, 2))) < 2e5


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": (16,)}, "at least two"),
    ({"strides": (2, 2)}, "expected 3"),
    ({"norm": "layer"}, "norm = 'layer'"),
    ({"dropout": 1.5}, "dropout"),
    ({"out_channels": 0}, "out_channels"),
    ({"strides": (2, 0, 2)}, r"strides\[1\]"),
])
def test_bad_hyperparameters_raise_model_error(kwargs, message):
    with pytest.raises(ModelError, match=message):
        UNet3D(**kwargs)


def test_indivisible_input_is_refused_with_the_multiple():
    net = UNet3D(channels=(4, 8, 16, 32))
    with pytest.raises(ModelError, match=r"not divisible by \(8, 8, 8\)"):
        net(torch.zeros(1, 1, 12, 16, 16))
