"""A compact 3-D U-Net in plain torch, with validated hyperparameters and no device logic.

Encoder: at each level two 3x3x3 convolutions (convolution, normalisation, LeakyReLU);
between levels a strided 3x3x3 convolution downsamples by ``strides[i]`` (an int or one
int per axis). Decoder: a transposed convolution upsamples by the same stride, the skip
connection is concatenated, two convolutions follow. A 1x1x1 convolution gives the
logits. Inputs must have every spatial size divisible by the product of the strides on
that axis (``UNet3D.size_multiple``); the output has the input's spatial size.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from imaging.errors import ModelError

NORMS = ("instance", "batch", "group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


def _conv_unit(c_in: int, c_out: int, norm: str, stride=1, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=norm == "none"),
                               _norm(norm, c_out), nn.LeakyReLU(0.01, inplace=True)]
    if dropout > 0:
        layers.append(nn.Dropout3d(dropout))
    return nn.Sequential(*layers)


def _double_conv(c_in: int, c_out: int, norm: str, dropout: float) -> nn.Sequential:
    return nn.Sequential(_conv_unit(c_in, c_out, norm, dropout=dropout),
                         _conv_unit(c_out, c_out, norm))


def _stride_triple(stride, index: int) -> tuple[int, int, int]:
    values = (stride,) * 3 if isinstance(stride, int) else tuple(stride)
    if len(values) != 3 or not all(isinstance(v, int) and v >= 1 for v in values):
        raise ModelError(f"strides[{index}] = {stride!r}: expected a positive int or three "
                         "positive ints (one per axis)")
    return values  # type: ignore[return-value]


def _check_hyperparameters(in_channels, out_channels, channels, strides, norm, dropout) -> None:
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not isinstance(value, int) or value < 1:
            raise ModelError(f"{name} = {value!r}: expected a positive int")
    if len(channels) < 2 or not all(isinstance(c, int) and c >= 1 for c in channels):
        raise ModelError(f"channels = {tuple(channels)!r}: expected at least two positive ints, "
                         "one per resolution level, e.g. (16, 32, 64, 128)")
    if len(strides) != len(channels) - 1:
        raise ModelError(f"strides has {len(strides)} entries for {len(channels)} channel levels; "
                         f"expected {len(channels) - 1} (one per downsampling step)")
    if norm not in NORMS:
        raise ModelError(f"norm = {norm!r}: expected one of {NORMS}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ModelError(f"dropout = {dropout!r}: expected a probability in [0, 1)")


class UNet3D(nn.Module):
    """3-D U-Net: (N, in_channels, X, Y, Z) -> logits (N, out_channels, X, Y, Z)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 4,
                 channels: Sequence[int] = (16, 32, 64, 128),
                 strides: Sequence[int | Sequence[int]] = (2, 2, 2),
                 norm: str = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        channels = tuple(channels)
        strides = tuple(strides)
        _check_hyperparameters(in_channels, out_channels, channels, strides, norm, dropout)
        self.strides = tuple(_stride_triple(s, i) for i, s in enumerate(strides))
        self.encoders = nn.ModuleList([_double_conv(in_channels, channels[0], norm, 0.0)])
        self.downs = nn.ModuleList()
        for level, stride in enumerate(self.strides):
            self.downs.append(_conv_unit(channels[level], channels[level + 1], norm, stride))
            self.encoders.append(_double_conv(channels[level + 1], channels[level + 1], norm,
                                              dropout if level == len(self.strides) - 1 else 0.0))
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(len(self.strides))):
            stride = self.strides[level]
            self.ups.append(nn.ConvTranspose3d(channels[level + 1], channels[level], stride, stride))
            self.decoders.append(_double_conv(2 * channels[level], channels[level], norm, 0.0))
        self.head = nn.Conv3d(channels[0], out_channels, 1)

    @property
    def size_multiple(self) -> tuple[int, int, int]:
        """Every input spatial size must be a multiple of this (per axis)."""
        total = [1, 1, 1]
        for stride in self.strides:
            total = [t * s for t, s in zip(total, stride)]
        return tuple(total)  # type: ignore[return-value]

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.encoders[0][0][0].in_channels:
            raise ModelError(f"input has shape {tuple(x.shape)}; expected (N, "
                             f"{self.encoders[0][0][0].in_channels}, X, Y, Z)")
        multiple = self.size_multiple
        if any(n % m for n, m in zip(x.shape[2:], multiple)):
            raise ModelError(f"input spatial size {tuple(x.shape[2:])} is not divisible by "
                             f"{multiple}; pad the input to a multiple of that")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        skips = []
        x = self.encoders[0](x)
        for down, encoder in zip(self.downs, self.encoders[1:]):
            skips.append(x)
            x = encoder(down(x))
        for up, decoder in zip(self.ups, self.decoders):
            x = decoder(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def parameter_count(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())
