"""What the scanner adds: a smooth multiplicative bias field, Rician noise, on-disk axis order.

(Rigid motion and sampling onto the acquisition grid with partial volume are in
``imaging.phantom.grid``.)
"""

from __future__ import annotations

import itertools

import numpy as np

# On-disk axis codes per acquisition plane (what a converter typically writes).
ON_DISK_CODES = {"sagittal": "PSR", "axial": "LAS"}
# Scanner units: normal cord on T2w = INTENSITY_SCALE before bias and noise.
INTENSITY_SCALE = 1000.0


def bias_field(shape: tuple[int, int, int], amplitude: float,
               rng: np.random.Generator) -> np.ndarray:
    """1 + a smooth random polynomial (degree <= 2) whose largest excursion is ``amplitude``."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) if n > 1 else np.zeros(1, np.float32)
            for n in shape]
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    poly = np.zeros(shape, dtype=np.float32)
    for powers in itertools.product(range(3), repeat=3):
        if 0 < sum(powers) <= 2:
            term = np.float32(rng.normal())
            for g, p in zip(grids, powers):
                term = term * g ** p
            poly = poly + term
    peak = float(np.abs(poly).max())
    if peak == 0.0 or amplitude == 0.0:
        return np.ones(shape, dtype=np.float32)
    return (1.0 + amplitude * poly / peak).astype(np.float32)


def rician(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the clean (real) signal plus complex Gaussian noise of sd ``sigma``."""
    sd = np.float32(sigma)
    real = clean.astype(np.float32) + sd * rng.standard_normal(clean.shape, dtype=np.float32)
    imag = sd * rng.standard_normal(clean.shape, dtype=np.float32)
    return np.hypot(real, imag)
