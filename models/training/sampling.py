"""Drawing training batches: which case, where the patch goes, augmentation.

Each sample: a real case with probability ``real_fraction`` (when there are any), else a
phantom case; for phantoms the patch centre is a graft voxel with probability
``graft_fraction`` (when the case has one), else a lesion voxel with probability
``focus_fraction`` (when it has one), else a cord-region voxel with probability 0.7,
else anywhere. "Has one" means a voxel holding at least 10 % of that label: grafts of a
few mm3 on 3-4 mm slices rarely fill half a voxel. The centre is jittered by up to a
quarter patch. Patches reaching
outside the case are padded (image 0, target background).

With ``baseline=True`` (a model whose second input channel is the registered
pre-injection baseline) each sample is (2, X, Y, Z): the case's ``prior``, or, with
probability ``prior_dropout`` and for cases without one, exact zeros (no baseline: what
the model sees when a subject has none); a case without a prior (a real scan) gets its own
image as the baseline half of the time instead (a rescan of unchanged anatomy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from models.training.augment import AugmentConfig, augment
from models.training.dataset import TrainingCase


@dataclass(frozen=True)
class Batch:
    image: torch.Tensor        # (N, C, X, Y, Z) float32 (C = 2 with the baseline channel)
    target: torch.Tensor       # (N, K, X, Y, Z) float32 fractions
    annotations: tuple[str, ...]


FOCUS_LEVEL = 25      # 10 % of a voxel; targets are fraction x 255
LESION, GRAFT = 2, 3


def _focus_voxel(target: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray | None:
    focus = np.argwhere(target[label] >= FOCUS_LEVEL)
    return focus[rng.integers(len(focus))] if len(focus) else None


def _centre(case: TrainingCase, rng: np.random.Generator, focus_fraction: float,
            graft_fraction: float = 0.0) -> np.ndarray:
    target = case.target
    shape = np.asarray(case.image.shape)
    if case.annotation == "full" and target.shape[0] > GRAFT:
        draw = rng.random()
        label = GRAFT if draw < graft_fraction else (
            LESION if draw < graft_fraction + focus_fraction else None)
        centre = None if label is None else _focus_voxel(target, label, rng)
        if centre is not None:
            return centre
    if rng.random() < 0.7:
        region = np.argwhere(target[0] < 128)
        if len(region):
            return region[rng.integers(len(region))]
    return np.array([rng.integers(n) for n in shape])


def crop_patch(case: TrainingCase, centre: Sequence[int], patch: Sequence[int],
               prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Image (X, Y, Z), uint8 target (K, X, Y, Z) and ``prior`` (an array on the case's
    grid, or None) of ``patch`` around ``centre``, padded."""
    lower = [int(c) - p // 2 for c, p in zip(centre, patch)]
    image = np.zeros(patch, np.float32)
    target = np.zeros((case.target.shape[0], *patch), np.uint8)
    target[0] = 255
    src, dst = [], []
    for lo, p, n in zip(lower, patch, case.image.shape):
        a, b = max(lo, 0), min(lo + p, n)
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    image[tuple(dst)] = case.image[tuple(src)]
    target[(slice(None),) + tuple(dst)] = case.target[(slice(None),) + tuple(src)]
    prior_patch = None
    if prior is not None:
        prior_patch = np.zeros(patch, np.float32)
        prior_patch[tuple(dst)] = prior[tuple(src)]
    return image, target, prior_patch


def _baseline_for(case: TrainingCase, rng: np.random.Generator, dropout: float) -> np.ndarray | None:
    """The baseline channel of a sample (see the module docstring); None: no baseline."""
    if case.prior is not None:
        return None if rng.random() < dropout else case.prior
    return case.image if rng.random() < 0.5 else None


def draw_batch(phantom: Sequence[TrainingCase], real: Sequence[TrainingCase], batch_size: int,
               patch: Sequence[int], rng: np.random.Generator, augment_config: AugmentConfig,
               real_fraction: float, focus_fraction: float, graft_fraction: float = 0.0,
               baseline: bool = False, prior_dropout: float = 0.0) -> Batch:
    images, targets, annotations = [], [], []
    for _ in range(batch_size):
        use_real = bool(real) and (not phantom or rng.random() < real_fraction)
        pool = real if use_real else phantom
        case = pool[int(rng.integers(len(pool)))]
        jitter = rng.integers(-np.asarray(patch) // 4, np.asarray(patch) // 4 + 1)
        centre = _centre(case, rng, focus_fraction, graft_fraction) + jitter
        prior = _baseline_for(case, rng, prior_dropout) if baseline else None
        image, target, prior = crop_patch(case, centre, patch, prior)
        image, fractions = augment(image, target / 255.0, case.annotation, rng, augment_config,
                                   prior)
        if image.ndim == 3:   # one channel; zeros in the baseline channel when it is absent
            image = np.stack([image, np.zeros_like(image)]) if baseline else image[None]
        images.append(image)
        targets.append(fractions)
        annotations.append(case.annotation)
    return Batch(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets)),
                 tuple(annotations))
