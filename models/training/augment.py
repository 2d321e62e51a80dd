"""Augmentation of one training patch (numpy), every draw from the Generator passed in.

Spatial (image and soft targets alike, one resampling): left-right flip, a small rigid
rotation, a light elastic displacement (a 4x4x4 random field interpolated linearly, a few voxels), a small isotropic scale.
Intensity (image only): anisotropic resolution (block-average along one axis by 2-6,
then linear back: thick-slice partial volume), a smooth multiplicative bias field,
gamma, contrast changes (linear, and for cord-only real scans sometimes a random
smooth intensity remapping so the cord is found in any contrast), Gaussian noise.
The strengths are in ``AugmentConfig``; ``AugmentConfig.none()`` turns everything off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from models.input import block_average, refine
from models.training.dataset import REAL_ANNOTATIONS


@dataclass(frozen=True)
class AugmentConfig:
    flip_probability: float = 0.5
    rotation_degrees: float = 12.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    elastic_voxels: float = 2.0
    spatial_probability: float = 0.7
    thick_slice_probability: float = 0.3
    bias_strength: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    contrast_probability: float = 0.5
    remap_probability: float = 0.3
    noise_sigma_max: float = 0.08

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(0.0, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def _rotation(rng: np.random.Generator, degrees: float) -> np.ndarray:
    angles = np.deg2rad(rng.uniform(-degrees, degrees, size=3))
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        rot = np.eye(3)
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
        matrix = matrix @ rot
    return matrix


def _elastic_field(rng: np.random.Generator, shape, voxels: float) -> np.ndarray:
    if voxels <= 0:
        return np.zeros((3, *shape))
    coarse = rng.normal(0.0, voxels, size=(3, 4, 4, 4))
    zoom = [n / 4 for n in shape]
    return np.stack([ndimage.zoom(c, zoom, order=1, mode="nearest")[: shape[0], : shape[1], : shape[2]]
                     for c in coarse])


def spatial(image: np.ndarray, target: np.ndarray, rng: np.random.Generator,
            config: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rotate/scale/deform image (X, Y, Z) and target (K, X, Y, Z) together; flip left-right."""
    if rng.random() < config.flip_probability:
        image, target = image[::-1], target[:, ::-1]
    if rng.random() >= config.spatial_probability:
        return np.ascontiguousarray(image), np.ascontiguousarray(target)
    shape = image.shape
    matrix = _rotation(rng, config.rotation_degrees) / rng.uniform(*config.scale_range)
    centre = (np.asarray(shape) - 1) / 2
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")).reshape(3, -1)
    coords = matrix @ (grid - centre[:, None]) + centre[:, None]
    coords = coords.reshape(3, *shape) + _elastic_field(rng, shape, config.elastic_voxels)
    warp = lambda a: ndimage.map_coordinates(a, coords, order=1, mode="nearest")  # noqa: E731
    return warp(image), np.stack([warp(t) for t in target])


def thick_slices(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Simulate thick slices: block-average along a random axis by 2-6, then linear back."""
    axis = int(rng.integers(3))
    factor = int(rng.integers(2, 7))
    n = image.shape[axis]
    pad = (-n) % factor
    padded = np.pad(image, [(0, pad if a == axis else 0) for a in range(3)], mode="edge")
    factors = [factor if a == axis else 1 for a in range(3)]
    thick = refine(block_average(padded, factors), factors, linear=True)
    return np.take(thick, np.arange(n), axis=axis)


def bias_field(shape, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth multiplicative field: exp of a random low-order polynomial, within +-strength."""
    axes = [np.linspace(-1, 1, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * y, x * z, y * z, x * x, y * y, z * z]
    log_field = sum(rng.normal(0, 1) * t for t in terms)
    peak = np.abs(log_field).max()
    if peak > 0:
        log_field = log_field / peak * np.log1p(rng.uniform(0, strength))
    return np.exp(log_field)


def remap_intensity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random smooth (possibly non-monotonic) mapping of intensities in [0, 1]."""
    knots = np.linspace(-1.0, 2.0, 8)
    values = np.sort(rng.uniform(0, 1, size=8)) if rng.random() < 0.5 else rng.uniform(0, 1, size=8)
    return np.interp(image, knots, values)


def intensity(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig,
              annotation: str) -> np.ndarray:
    """Image-only changes; the result is float32."""
    out = image.astype(np.float32)
    if rng.random() < config.thick_slice_probability:
        out = thick_slices(out, rng)
    if config.bias_strength > 0:
        out = out * bias_field(out.shape, rng, config.bias_strength)
    if annotation in REAL_ANNOTATIONS and rng.random() < config.remap_probability:
        out = remap_intensity(out, rng)
    if rng.random() < config.contrast_probability:
        gamma = rng.uniform(*config.gamma_range)
        out = np.clip(out, 0, None) ** gamma * rng.uniform(0.85, 1.15) + rng.uniform(-0.1, 0.1)
    if config.noise_sigma_max > 0:
        out = out + rng.normal(0, rng.uniform(0, config.noise_sigma_max), size=out.shape)
    return out.astype(np.float32)


def augment(image: np.ndarray, target: np.ndarray, annotation: str, rng: np.random.Generator,
            config: AugmentConfig, prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spatial then intensity augmentation of one patch; returns float32 image and target.

    With a ``prior`` (the baseline channel, same shape as ``image``) the image becomes
    (2, X, Y, Z): one spatial draw moves both, each gets its own intensity draws (another
    session: its own bias field, contrast and noise)."""
    if prior is None:
        image, target = spatial(image.astype(np.float32), target.astype(np.float32), rng, config)
        return intensity(image, rng, config, annotation), target.astype(np.float32)
    stacked = np.concatenate([target.astype(np.float32), prior[None].astype(np.float32)])
    image, stacked = spatial(image.astype(np.float32), stacked, rng, config)
    moved_prior = intensity(stacked[-1], rng, config, annotation)
    return (np.stack([intensity(image, rng, config, annotation), moved_prior]),
            stacked[:-1].astype(np.float32))
