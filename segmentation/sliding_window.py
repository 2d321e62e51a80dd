"""Sliding-window inference with Gaussian blending, windows run in batches.

The image (channels, x, y, z) is covered by windows of the model's patch size
(or smaller, when the image is smaller than a patch: the window shrinks to the
image rounded up to what the network can take, and the image is zero-padded to
it, never cropped or crashed). Windows overlap by ``overlap`` (a fraction of the
window) and are evaluated ``batch_size`` at a time (one window per call falls
onto a slow convolution path on the CPU). The softmax probabilities of each
window are weighted by a Gaussian centred on the window (sigma = 1/8 of its
size, as nnU-Net does), so the centre of a window, where the network sees the
most context, counts most; the blended probabilities still sum to 1 per voxel.

Precision: "fp32", "bf16" (torch.autocast bfloat16, CPU or CUDA) or "fp16"
(autocast float16, CUDA only). The accumulation is always float32.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import product
from typing import Sequence

import numpy as np
import torch
from torch import nn

from imaging.errors import DeviceError, ModelError

PRECISIONS = ("fp32", "bf16", "fp16")
GAUSSIAN_SIGMA_FRACTION = 0.125


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows go over an image of ``shape`` (padded to ``padded_shape``)."""

    shape: tuple[int, int, int]
    padded_shape: tuple[int, int, int]
    window: tuple[int, int, int]
    starts: tuple[tuple[int, int, int], ...]

    @property
    def n_windows(self) -> int:
        return len(self.starts)


def _axis_starts(length: int, window: int, overlap: float) -> list[int]:
    if length <= window:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    count = math.ceil((length - window) / step) + 1
    return sorted({int(round(v)) for v in np.linspace(0, length - window, count)})


def plan_windows(shape: Sequence[int], patch_size: Sequence[int], divisor: int | Sequence[int],
                 overlap: float = 0.25) -> WindowPlan:
    """Windows of at most ``patch_size``, each side a multiple of ``divisor``, covering ``shape``."""
    if not 0.0 <= overlap < 1.0:
        raise ModelError(f"overlap {overlap}: expected a fraction in [0, 1)")
    shape3 = tuple(int(s) for s in shape)
    divs = (int(divisor),) * 3 if np.isscalar(divisor) else tuple(int(d) for d in divisor)
    window = []
    for length, patch, div in zip(shape3, patch_size, divs):
        if int(patch) % div:
            raise ModelError(f"patch size {tuple(patch_size)} is not a multiple of the network's "
                             f"downsampling factor {div}; fix the model card's patch_size")
        window.append(min(int(patch), div * math.ceil(length / div)))
    padded = tuple(max(length, w) for length, w in zip(shape3, window))
    per_axis = [_axis_starts(n, w, overlap) for n, w in zip(padded, window)]
    return WindowPlan(shape3, padded, tuple(window), tuple(product(*per_axis)))


def gaussian_weights(window: Sequence[int]) -> np.ndarray:
    """Separable Gaussian importance map (max 1, strictly positive) for one window."""
    weights = np.ones(tuple(int(w) for w in window), dtype=np.float32)
    for axis, size in enumerate(window):
        centre = (size - 1) / 2.0
        sigma = max(size * GAUSSIAN_SIGMA_FRACTION, 1e-6)
        profile = np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2).astype(np.float32)
        shape = [1, 1, 1]
        shape[axis] = size
        weights = weights * profile.reshape(shape)
    weights /= weights.max()
    return np.maximum(weights, 1e-3)


def autocast_context(device: torch.device, precision: str):
    """The autocast context for ``precision`` on ``device`` (nullcontext for fp32)."""
    if precision not in PRECISIONS:
        raise ModelError(f"precision {precision!r}: expected one of {PRECISIONS} (or 'auto' at "
                         "the segment() level)")
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(f"precision 'fp16' needs a CUDA device; got {device}. Use 'bf16' or "
                          "'fp32' on the CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _as_channels_first(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        return arr[None]
    if arr.ndim != 4:
        raise ModelError(f"image of shape {arr.shape}: expected (x, y, z) or (channels, x, y, z)")
    return arr


def _padded_tensor(image: np.ndarray, plan: WindowPlan, device: torch.device) -> torch.Tensor:
    pad = [(0, 0)] + [(0, p - s) for p, s in zip(plan.padded_shape, plan.shape)]
    padded = np.pad(image, pad, mode="constant") if any(p[1] for p in pad) else image
    return torch.from_numpy(np.ascontiguousarray(padded)).to(device)


def sliding_window_probabilities(network: nn.Module, image: np.ndarray,
                                 patch_size: Sequence[int], divisor: int | Sequence[int],
                                 device: torch.device, *, overlap: float = 0.25,
                                 batch_size: int = 4, precision: str = "fp32") -> np.ndarray:
    """Blended softmax probabilities (labels, x, y, z), float32, on the image's own grid.

    ``network`` must already be on ``device`` and in eval mode; ``divisor`` is the
    product of its strides (every window side is a multiple of it).
    """
    data = _as_channels_first(image)
    plan = plan_windows(data.shape[1:], patch_size, divisor, overlap)
    tensor = _padded_tensor(data, plan, device)
    weight = torch.from_numpy(gaussian_weights(plan.window)).to(device)
    total = None
    norm = torch.zeros(plan.padded_shape, dtype=torch.float32, device=device)
    with torch.inference_mode(), autocast_context(device, precision):
        for first in range(0, plan.n_windows, max(1, int(batch_size))):
            starts = plan.starts[first:first + batch_size]
            boxes = [tuple(slice(s, s + w) for s, w in zip(start, plan.window)) for start in starts]
            batch = torch.stack([tensor[(slice(None),) + box] for box in boxes])
            probs = torch.softmax(network(batch).float(), dim=1) * weight
            if total is None:
                total = torch.zeros((probs.shape[1],) + plan.padded_shape, dtype=torch.float32,
                                    device=device)
            for k, box in enumerate(boxes):
                total[(slice(None),) + box] += probs[k]
                norm[box] += weight
    x, y, z = plan.shape
    return (total[:, :x, :y, :z] / norm[:x, :y, :z]).cpu().numpy()
