"""Fixtures: small realistic MR series written with pydicom into tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from imaging.dicom.synthetic import SeriesSpec, write_series

# Small enough to write in milliseconds: 12 columns (x), 10 rows (y), 6 slices (z).
SHAPE = (12, 10, 6)


def ramp(shape=SHAPE, n_echoes: int = 0) -> np.ndarray:
    """Voxel value encodes its own index: 1000*z + 100*y + x (+ 5000*echo)."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    base = (1000 * z + 100 * y + x).astype(np.int16)
    if not n_echoes:
        return base
    return np.stack([base + 5000 * e for e in range(n_echoes)], axis=-1).astype(np.int16)


@pytest.fixture
def make_series(tmp_path: Path, rng: np.random.Generator) -> Callable[..., tuple[Path, ...]]:
    """make_series(folder_name, array=None, **spec_fields) -> written paths."""
    def make(name: str = "series", array: np.ndarray | None = None, **fields) -> tuple[Path, ...]:
        spec = SeriesSpec(**fields)
        data = ramp(n_echoes=len(spec.echo_times_ms) if len(spec.echo_times_ms) > 1 else 0) \
            if array is None else array
        return write_series(tmp_path / name, data, spec, rng)
    return make


@pytest.fixture
def t2_series(make_series) -> tuple[Path, ...]:
    """A sagittal T2w TSE series of SHAPE with the ramp() voxel values."""
    return make_series("t2")
