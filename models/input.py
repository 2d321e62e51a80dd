"""What a network sees: one image, normalised, on the model grid. ONE implementation,
used by training and by inference.

* ``image_for_model``: a multi-echo T2*w volume (x, y, z, echo) becomes one 3-D image,
  the root-mean-square over echoes (what scanners' combined "MEDIC"-like T2*w images
  show: anatomy from the early echoes, iron blooming from the late ones). 3-D volumes
  pass unchanged.
* ``normalise_for_model``: a linear map sending the 0.5th / 99.5th intensity
  percentiles of the array to 0 / 1 (clipped to [-1, 2]); multiplying the scan by any
  positive factor (scanner scaling) gives the same result. Apply it to the whole region
  the network will see (the box around the cord), in training and inference alike.
* ``model_grid``: the network runs in the input's own voxels reoriented to RAS
  (a bit-exact permutation), on a grid that REFINES the input grid by an integer factor
  per axis, factor_i = max(1, round(input_spacing_i / model_spacing_i)), aligned with it:
  fine voxel j on an axis lies inside input voxel j // factor. Probabilities on the fine
  grid map back by exact block averaging (``block_average``): a true partial-volume
  fraction per input voxel. ``refine`` samples an input-grid array onto the fine grid
  (nearest = repeat, or linear with edge clamping).
* ``locator_grid``: the coarse cord locator instead runs on the RAS field of view
  resampled at its own (coarser) spacing; it only needs to find the cord, not volumes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from nibabel import orientations as nio

from imaging.errors import InvalidVolumeError, ModelError
from imaging.resample import grid_for_spacing, resample_to_grid
from imaging.volume import LabelVolume, Volume
from models.card import ModelCard

PERCENTILES = (0.5, 99.5)
CLIP_RANGE = (-1.0, 2.0)
NORMALISATIONS = ("percentile",)


def image_for_model(volume: Volume) -> Volume:
    """3-D image for the network: RMS over echoes for a 4-D volume, a 3-D one unchanged."""
    if volume.array.ndim == 3:
        return volume
    data = np.asarray(volume.array, dtype=np.float32)
    rms = np.sqrt(np.mean(np.square(data), axis=3))
    return Volume(rms, volume.affine, {**volume.meta, "echo_combination": "rms"})


def normalise_for_model(array: np.ndarray, card: ModelCard | str = "percentile",
                        value_range: tuple[float, float] | None = None) -> np.ndarray:
    """float32 array with the 0.5/99.5 percentiles at 0/1, clipped to [-1, 2]; scale invariant.

    ``value_range``: the (0.5, 99.5) percentiles of another array to use instead of this
    one's (``percentile_range``), e.g. a box's statistics applied to the whole volume."""
    name = card if isinstance(card, str) else card.normalisation
    if name not in NORMALISATIONS:
        raise ModelError(f"normalisation {name!r} is unknown; expected one of {NORMALISATIONS}")
    data = _finite(array)
    low, high = np.percentile(data, PERCENTILES) if value_range is None else value_range
    if high - low <= 0:
        return np.zeros(data.shape, dtype=np.float32)
    return np.clip((data - low) / (high - low), *CLIP_RANGE).astype(np.float32)


def percentile_range(array: np.ndarray) -> tuple[float, float]:
    """The (0.5, 99.5) percentiles that ``normalise_for_model`` maps to 0 and 1."""
    low, high = np.percentile(_finite(array), PERCENTILES)
    return float(low), float(high)


def _finite(array: np.ndarray) -> np.ndarray:
    data = np.asarray(array, dtype=np.float64)
    if data.size == 0 or not np.all(np.isfinite(data)):
        raise InvalidVolumeError(f"cannot normalise an array of shape {data.shape} with "
                                 "non-finite or no values; load with nonfinite='zero'")
    return data


def _ras_geometry(volume: Volume) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine the volume would have after ``reorient('RAS')`` (no array copy)."""
    transform = nio.ornt_transform(nio.io_orientation(volume.affine),
                                   nio.axcodes2ornt("RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))))
    shape = [0, 0, 0]
    for axis, (new_axis, _) in enumerate(transform):
        shape[int(new_axis)] = volume.spatial_shape[axis]
    affine = volume.affine @ nio.inv_ornt_aff(transform, volume.spatial_shape)
    return tuple(shape), affine  # type: ignore[return-value]


def refinement_factors(spacing: Sequence[float], model_spacing_mm: Sequence[float]) -> tuple[int, int, int]:
    """factor_i = max(1, round(spacing_i / model_spacing_i))."""
    if len(model_spacing_mm) != 3 or min(model_spacing_mm) <= 0:
        raise ModelError(f"model spacing {model_spacing_mm}: expected three positive sizes in mm")
    return tuple(max(1, int(round(s / m))) for s, m in zip(spacing, model_spacing_mm))  # type: ignore


def model_grid(volume: Volume, spacing_mm: Sequence[float]
               ) -> tuple[tuple[int, int, int], np.ndarray, tuple[int, int, int]]:
    """(shape, affine, factors) of the fine grid refining ``volume`` reoriented to RAS."""
    shape, affine = _ras_geometry(volume)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    factors = refinement_factors(spacing, spacing_mm)
    f = np.asarray(factors, dtype=np.float64)
    fine = np.array(affine)
    fine[:3, :3] = affine[:3, :3] / f
    # fine index j sits at input index (j + 0.5) / f - 0.5
    fine[:3, 3] = affine[:3, 3] + affine[:3, :3] @ (0.5 / f - 0.5)
    return tuple(n * k for n, k in zip(shape, factors)), fine, factors  # type: ignore[return-value]


def _refine_axis(array: np.ndarray, axis: int, factor: int, linear: bool) -> np.ndarray:
    if factor == 1:
        return array
    if not linear:
        return np.repeat(array, factor, axis=axis)
    n = array.shape[axis]
    coords = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0, n - 1)
    lower = np.floor(coords).astype(int)
    upper = np.minimum(lower + 1, n - 1)
    weight_shape = [1] * array.ndim
    weight_shape[axis] = n * factor
    weight = (coords - lower).reshape(weight_shape)
    return np.take(array, lower, axis=axis) * (1 - weight) + np.take(array, upper, axis=axis) * weight


def refine(array: np.ndarray, factors: Sequence[int], linear: bool = True) -> np.ndarray:
    """Sample an array on the input grid (last three axes) onto the fine grid."""
    out = np.asarray(array)
    first = out.ndim - 3
    for axis, factor in enumerate(factors):
        out = _refine_axis(out, first + axis, int(factor), linear)
    return out


def block_average(array: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Mean over each factor block of the last three axes (fine grid -> input grid)."""
    data = np.asarray(array)
    lead = data.shape[:-3]
    shape = data.shape[-3:]
    if any(n % f for n, f in zip(shape, factors)):
        raise ModelError(f"array of spatial shape {shape} is not a multiple of factors {tuple(factors)}")
    blocks = []
    for n, f in zip(shape, factors):
        blocks += [n // f, f]
    reshaped = data.reshape(*lead, *blocks)
    k = len(lead)
    return reshaped.mean(axis=(k + 1, k + 3, k + 5))


def to_model_grid(volume: Volume, spacing_mm: Sequence[float]) -> tuple[Volume, tuple[int, int, int]]:
    """The volume reoriented to RAS and refined onto the model grid (labels by repetition)."""
    ras = volume.reorient("RAS")
    shape, affine, factors = model_grid(ras, spacing_mm)
    is_labels = isinstance(volume, LabelVolume)
    data = refine(ras.array if ras.array.ndim == 3 else np.moveaxis(ras.array, 3, 0),
                  factors, linear=not is_labels)
    if ras.array.ndim == 4:
        data = np.moveaxis(data, 0, 3)
    if not is_labels:
        data = data.astype(np.float32)
    return type(volume)(data, affine, volume.meta), factors


def locator_grid(volume: Volume, spacing_mm: Sequence[float]) -> Volume:
    """The locator's input: the volume reoriented to RAS, resampled (linearly) at ``spacing_mm``."""
    ras = volume.reorient("RAS")
    shape, affine = grid_for_spacing(ras, spacing_mm)
    return resample_to_grid(ras, shape, affine)
