"""Small models with known behaviour, and cords of known shape, for the segmentation tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from imaging.volume import LabelVolume, Volume
from models.card import LOCATE_LABELS, SEGMENT_LABELS, ModelCard
from models.registry import LoadedModel
from models.unet import UNet3D

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests run in 2 xdist workers on 2 cores: one intra-op thread each avoids OpenMP
    oversubscription (measured 7x slower with 2 threads per worker). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class IntensityNet(nn.Module):
    """Per voxel: label 1 where the normalised intensity exceeds 0.5, else label 0.

    A steep sigmoid, so probabilities are close to 0/1 except near the threshold.
    ``n_labels`` logits; labels above 1 get a very low logit.
    """

    def __init__(self, n_labels: int, steepness: float = 40.0):
        super().__init__()
        self.n_labels = n_labels
        self.steepness = steepness

    def forward(self, x):
        score = self.steepness * (x - 0.5)
        logits = [-score / 2, score / 2] + [torch.full_like(x, -30.0)] * (self.n_labels - 2)
        return torch.cat(logits, dim=1)


def card(task: str, spacing_mm=(1.0, 1.0, 1.0), patch=(16, 16, 16), architecture=None,
         contrasts=("T2w", "T2starw")) -> ModelCard:
    labels = SEGMENT_LABELS if task == "segment" else LOCATE_LABELS
    return ModelCard(name=f"test-{task}", task=task, contrasts=contrasts, spacing_mm=spacing_mm,
                     patch_size=patch, labels=labels, architecture=architecture or {},
                     normalisation="percentile")


def install_tiny_models(folder, contrasts=("T2w", "T2starw"), training=None):
    """Untrained tiny 'tiny-seg' and 'tiny-loc' installed the way shipped models are."""
    from models.registry import install_model
    for task, name in (("segment", "tiny-seg"), ("locate", "tiny-loc")):
        arch = {"out_channels": 4 if task == "segment" else 2, "channels": [4, 8], "strides": [2]}
        tiny = replace(card(task, spacing_mm=(1.0, 1.0, 2.0), architecture=arch,
                            contrasts=contrasts), name=name, training=training or {})
        install_model(tiny, UNet3D(**arch).state_dict(), folder)
    return folder


@pytest.fixture
def threshold_locator() -> LoadedModel:
    return LoadedModel(IntensityNet(2).eval(), card("locate", spacing_mm=(2.0, 2.0, 2.0)), CPU)


@pytest.fixture
def threshold_segmenter() -> LoadedModel:
    return LoadedModel(IntensityNet(4).eval(), card("segment", spacing_mm=(0.5, 0.5, 0.5)), CPU)


@pytest.fixture
def random_unet() -> LoadedModel:
    arch = {"channels": (4, 8), "strides": (2,), "norm": "instance"}
    network = UNet3D(**arch).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return LoadedModel(network, card("segment", spacing_mm=(1.0, 1.0, 2.0), architecture=arch),
                       CPU)


def cylinder_fractions(shape, spacing, centre_mm, radius_mm, supersample=4) -> np.ndarray:
    """Partial-volume fraction of a cylinder along z in every voxel (supersampled)."""
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    fractions = np.zeros(shape[:2])
    ix, iy = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    for dx in offsets:
        for dy in offsets:
            x = (ix + dx) * spacing[0]
            y = (iy + dy) * spacing[1]
            fractions += (x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 <= radius_mm ** 2
    fractions /= supersample ** 2
    return np.repeat(fractions[:, :, None], shape[2], axis=2)


@pytest.fixture
def cord_scan():
    """A 'T2w' scan: a bright cylinder (cord, radius 4 mm) in a dark field; truth fraction."""
    spacing = (1.0, 1.0, 2.0)
    shape = (40, 36, 20)
    fraction = cylinder_fractions(shape, spacing, (18.0, 20.0), 4.0)
    affine = np.diag(list(spacing) + [1.0])
    image = Volume((100.0 * fraction).astype(np.float32), affine, {"contrast": "T2w"})
    truth = LabelVolume((fraction >= 0.5).astype(np.uint8), affine)
    return image, fraction, truth
