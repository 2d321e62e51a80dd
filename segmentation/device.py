"""Which torch device to compute on: the one place "auto" becomes a device.

Only the command line or the top of an API entry point (``segment``) calls
``resolve_device``; everything below takes a ``torch.device``. Nothing here
changes global torch state (threads, cudnn flags, default device).
"""

from __future__ import annotations

import re

import torch

from imaging.errors import DeviceError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """"auto" -> the first CUDA device when one is available, else the CPU.

    "cpu", "cuda" and "cuda:N" are honoured exactly; a CUDA device that is not
    there raises DeviceError (no silent fallback when the caller named one).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.match(text)
    if match is None:
        raise DeviceError(f"device {spec!r} is not understood; expected 'auto', 'cpu', 'cuda' "
                          "or 'cuda:N'")
    return _cuda_device(spec, int(match.group(1) or 0))


def _cuda_device(spec: str, index: int) -> torch.device:
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} was requested but CUDA is not available on this "
                          f"machine (torch {torch.__version__}); use device='cpu' or 'auto' "
                          "(command line: --device cpu / --device auto)")
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} was requested but only {count} CUDA device(s) exist "
                          f"(cuda:0..cuda:{count - 1}); pick one of those or use 'auto'")
    return torch.device("cuda", index)


def available_devices() -> tuple[torch.device, ...]:
    """The CPU, then every CUDA device present (for tests and benchmarks)."""
    cuda = tuple(torch.device("cuda", i) for i in range(torch.cuda.device_count())) \
        if torch.cuda.is_available() else ()
    return (torch.device("cpu"),) + cuda


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX); elsewhere
    bf16 autocast is emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
