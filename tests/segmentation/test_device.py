import pytest
import torch

from imaging.errors import DeviceError
from segmentation.device import available_devices, resolve_device


def test_auto_picks_cuda_when_available_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_cpu_is_cpu_and_spelling_is_forgiving():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_requested_but_absent_names_the_fix(spec):
    with pytest.raises(DeviceError, match=r"CUDA is not available.*device='cpu' or 'auto'"):
        resolve_device(spec)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_index_out_of_range():
    with pytest.raises(DeviceError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("spec", ["gpu", "mps:0", "cuda:x", ""])
def test_unknown_device_text(spec):
    with pytest.raises(DeviceError, match="not understood"):
        resolve_device(spec)


def test_resolving_sets_no_global_state():
    threads = torch.get_num_threads()
    default = torch.get_default_dtype()
    resolve_device("auto")
    assert torch.get_num_threads() == threads
    assert torch.get_default_dtype() == default


def test_available_devices_start_with_cpu():
    devices = available_devices()
    assert devices[0] == torch.device("cpu")
    assert len(devices) == 1 + (torch.cuda.device_count() if torch.cuda.is_available() else 0)
