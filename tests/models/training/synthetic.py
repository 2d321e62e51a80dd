"""A tiny synthetic cord (cylinder along z) with a lesion and a graft blob, for fast tests."""

from __future__ import annotations

import numpy as np

from imaging.volume import Volume
from models.training.dataset import soft_targets_from_fractions

# PSR storage with 2 mm "slices" along the first axis, like a sagittal scan
PSR_AFFINE = np.array([[0, 0, 0.6, -10.0], [-2.0, 0, 0, 12.0], [0, -0.6, 0, 20.0], [0, 0, 0, 1]])


def synthetic_scan(rng: np.random.Generator, shape=(10, 40, 30)) -> tuple[Volume, np.ndarray]:
    """(T2w-like image, (4, ...) label fractions) on a PSR grid; cord along the second axis."""
    p, s, r = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    # cord: a cylinder along S (axis 1) centred in P (axis 0) and R (axis 2)
    radius = np.hypot((p - shape[0] / 2) * 2.0, (r - shape[2] / 2) * 0.6)
    region = np.clip(4.0 - radius, 0, 1)
    lesion = region * np.clip(3 - np.abs(s - shape[1] / 2) * 0.6, 0, 1) * 0.8
    graft = region * np.clip(1.5 - np.hypot(np.abs(s - shape[1] / 2 - 6) * 0.6, radius), 0, 1)
    targets = soft_targets_from_fractions(region, lesion, graft)
    image = (0.2 + 2.0 * (radius < 7) * (1 - region) + 1.0 * targets[1] + 1.7 * targets[2]
             + 1.35 * targets[3])
    image = image * 300 + rng.normal(0, 15, size=shape)
    return Volume(image.astype(np.float32), PSR_AFFINE, {"contrast": "T2w"}), targets
