"""Find the spinal cord in the whole field of view, and the box the fine model runs in.

The locator network (task "locate": 0 background, 1 cord region) runs on the
image reoriented to RAS and resampled at its own coarse spacing. Its cord-region
probability is thresholded; connected components (26-connected) smaller than
``min_region_mm3`` are ignored (specks). When none reaches that size, the largest
one is kept as a seed (in wide 256 mm views the locator may mark only a few voxels of a
cord it has seen; locator-v2 marks 1-70 % of their cord's length, always inside the
cord): the fine model and the checks below decide.
No component at all, or a maximum probability below the threshold, means "no cord
found" with the reason in words. Otherwise the box is the bounding box of the kept
components and of the cord's path between and beyond them (``cord_path``: the locator
may mark a wide view's cord over 1-70 % of its length), mapped through the affines onto
the RAS input grid and grown by ``margin_mm`` per axis (clipped to the field of view).

Checks around the locator (``segmentation.inference`` applies them):

* a small field of view (at most ``whole_view_max_mm3``, e.g. a research scan of
  25 x 55 x 63 mm centred on the cord) in which the locator finds no cord is segmented
  whole by the fine model: at the locator's 2 mm such a view is a dozen voxels across,
  and locator-v1 missed most of those cords (locator-v2 finds the test's research view);
  the whole view is about the size of the fine model's own training box anyway;
* where the fine model's cord reaches a side of the box that is not the edge of the
  field of view, the box grows by ``margin_mm`` on that side and the fine model runs
  again (at most ``max_box_growth`` times): the cord curves (a 256 mm sagittal view
  moves it by 40 mm front to back) and the locator may have marked only part of it;
* whatever the box, the fine model must find at least ``min_cord_mm3`` of cord (cord,
  lesion and graft probabilities) in it, else the answer is "no cord found";
* the cord must run to within ``max_end_gap_mm`` of the superior or the inferior edge
  of the field of view: a spinal cord leaves any view of it through the top or the
  bottom (every real and phantom scan in the evaluation: 0-5 mm), while what the
  model marks in a brain ends inside the view (the dcm_qa and XA30 brain scans: 39 mm
  or more from both edges);
* and it must be long: at least ``min_cord_length_mm`` from top to bottom, or
  ``min_cord_length_fraction`` of the field of view's superior-inferior extent where
  that is shorter (a real cord runs through the whole view; the 22 mm the model marks
  in the axial dcm_qa brain EPI, 7 mm from its inferior edge once the box has grown,
  is not a cord).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from imaging.volume import Volume
from models.input import locator_grid, normalise_for_model
from models.registry import LoadedModel
from models.training.dataset import BOX_MARGIN_MM
from segmentation.sliding_window import sliding_window_probabilities

CORD_REGION = 1
# The locator only needs the cord's extent: windows tile the coarse image without
# overlap (the last one shifted back to fit), about half the work of 0.25 overlap.
LOCATOR_OVERLAP = 0.0
# Half the width of a cervical cord (contract: ~10 x 7 mm): the disc the box covers around
# the cord's path where the locator did not mark it.
CORD_RADIUS_MM = 5.0


@dataclass(frozen=True)
class LocatorConfig:
    """When a cord counts as found, and how much room the fine model gets around it.

    ``margin_mm`` per RAS axis: the training box (``models.training.dataset``) is the
    cord plus BOX_MARGIN_MM on x and y and the whole field of view along z, and it is
    normalised over that box; inference uses the same box so the network sees the same
    intensity distribution.
    """

    threshold: float = 0.5
    min_region_mm3: float = 100.0
    margin_mm: tuple[float, float, float] = (BOX_MARGIN_MM, BOX_MARGIN_MM, math.inf)
    whole_view_max_mm3: float = 400_000.0   # about 74 mm on each side; 0 turns it off
    min_cord_mm3: float = 200.0             # about 4 mm of a cervical cord (~50 mm2)
    max_box_growth: int = 4                 # 0 keeps the locator's box
    max_end_gap_mm: float = 20.0            # math.inf turns the check off
    min_cord_length_mm: float = 40.0        # or min_cord_length_fraction of the S-I view
    min_cord_length_fraction: float = 0.6


@dataclass(frozen=True)
class CordBox:
    """Voxels lower <= index < upper on each axis of a grid (half-open)."""

    lower: tuple[int, int, int]
    upper: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.lower, self.upper))  # type: ignore[return-value]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.lower, self.upper))  # type: ignore

    def to_dict(self) -> dict[str, Any]:
        return {"lower": list(self.lower), "upper": list(self.upper)}


@dataclass(frozen=True)
class CordLocation:
    cord_found: bool
    reason: str
    box: CordBox | None            # on the RAS input grid
    max_probability: float
    cord_region_mm3: float


def size_multiple(loaded: LoadedModel) -> tuple[int, int, int]:
    """What every window side must be a multiple of (1 for networks that do not say)."""
    return tuple(getattr(loaded.network, "size_multiple", (1, 1, 1)))  # type: ignore[return-value]


def model_probabilities(loaded: LoadedModel, image: np.ndarray, *, precision: str,
                        batch_size: int, overlap: float = 0.25) -> np.ndarray:
    """Sliding-window probabilities (labels, x, y, z) of a loaded model on a normalised image."""
    return sliding_window_probabilities(loaded.network, image, loaded.card.patch_size,
                                        size_multiple(loaded), loaded.device, overlap=overlap,
                                        batch_size=batch_size, precision=precision)


def _kept_region(cord: np.ndarray, config: LocatorConfig, voxel_mm3: float) -> np.ndarray:
    components, count = ndimage.label(cord >= config.threshold,
                                      structure=ndimage.generate_binary_structure(3, 3))
    if count == 0:
        return np.zeros(cord.shape, bool)
    sizes_mm3 = np.bincount(components.ravel())[1:] * voxel_mm3
    keep = np.flatnonzero(sizes_mm3 >= config.min_region_mm3) + 1
    if keep.size == 0:
        keep = np.array([int(np.argmax(sizes_mm3)) + 1])
    return np.isin(components, keep)


def _margin_voxels(margin_mm: Sequence[float], grid: Volume) -> np.ndarray:
    """``margin_mm`` in whole voxels of ``grid`` (rounded up; inf stays inf)."""
    return np.ceil(np.asarray(margin_mm, dtype=np.float64) / np.asarray(grid.spacing) - 1e-9)


def view_height_mm(grid: Volume) -> float:
    """The superior-inferior (RAS z) extent of ``grid``'s field of view."""
    return grid.spatial_shape[2] * grid.spacing[2]


def box_through_affines(lower: np.ndarray, upper: np.ndarray, source_affine: np.ndarray,
                        grid: Volume, margin_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> CordBox:
    """The box on ``grid`` covering the continuous index box [lower, upper] of another grid
    (voxel edges, e.g. index - 0.5), grown by ``margin_mm`` and clipped to ``grid``."""
    corners = np.array(list(itertools.product(*zip(lower, upper))), dtype=np.float64)
    world = corners @ source_affine[:3, :3].T + source_affine[:3, 3]
    to_grid = np.linalg.inv(grid.affine)
    index = world @ to_grid[:3, :3].T + to_grid[:3, 3]
    margin = _margin_voxels(margin_mm, grid)
    low = np.floor(index.min(axis=0) + 0.5 + 1e-6) - margin
    high = np.ceil(index.max(axis=0) + 0.5 - 1e-6) + margin
    low = np.clip(low, 0, np.asarray(grid.spatial_shape) - 1).astype(int)
    high = np.maximum(np.minimum(high, grid.spatial_shape), low + 1).astype(int)
    return CordBox(tuple(int(v) for v in low), tuple(int(v) for v in high))


def box_on_grid(mask: np.ndarray, mask_affine: np.ndarray, grid: Volume,
                margin_mm: Sequence[float]) -> CordBox:
    """Bounding box of ``mask`` (on its own grid) as a box on ``grid``, grown by ``margin_mm``."""
    where = np.argwhere(mask)
    return box_through_affines(where.min(axis=0) - 0.5, where.max(axis=0) + 0.5, mask_affine,
                               grid, margin_mm)


def locate_cord(image_ras: Volume, locator: LoadedModel, config: LocatorConfig = LocatorConfig(),
                *, precision: str = "fp32", batch_size: int = 4) -> CordLocation:
    """Run the locator over the whole field of view of a 3-D RAS image."""
    coarse = locator_grid(image_ras, locator.card.spacing_mm)
    normalised = normalise_for_model(coarse.array, locator.card)
    probs = model_probabilities(locator, normalised, precision=precision, batch_size=batch_size,
                                overlap=LOCATOR_OVERLAP)
    cord = probs[CORD_REGION]
    max_probability = float(cord.max())
    region = _kept_region(cord, config, coarse.voxel_volume_mm3)
    region_mm3 = float(region.sum()) * coarse.voxel_volume_mm3
    if max_probability < config.threshold:
        reason = (f"no cord found: the locator's largest cord-region probability is "
                  f"{max_probability:.2f}, below {config.threshold:g}; is the spinal cord in "
                  "this field of view?")
        return CordLocation(False, reason, None, max_probability, region_mm3)
    box = box_on_grid(cord_path(region, coarse.spacing), coarse.affine, image_ras,
                      config.margin_mm)
    return CordLocation(True, "cord found", box, max_probability, region_mm3)


def cord_path(region: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """The marked ``region`` (RAS grid) and, along the whole height of the view, a disc of
    radius CORD_RADIUS_MM around the cord's path: the region's centre on each axial slice
    it marks, interpolated linearly between those slices and held beyond the first and
    last. The locator often marks the cord over only part of its length (in wide views,
    1-70 %), always inside the cord; the cord runs on between the marked stretches."""
    marked = np.flatnonzero(region.any(axis=(0, 1)))
    if marked.size == 0:
        return np.zeros(region.shape, bool)
    centres = np.array([np.argwhere(region[:, :, k]).mean(axis=0) for k in marked])
    z = np.arange(region.shape[2])
    path_x, path_y = (np.interp(z, marked, centres[:, a]) for a in (0, 1))
    x, y = np.arange(region.shape[0]), np.arange(region.shape[1])
    dx = (x[:, None, None] - path_x[None, None, :]) * spacing[0]
    dy = (y[None, :, None] - path_y[None, None, :]) * spacing[1]
    return region | (np.hypot(dx, dy) <= CORD_RADIUS_MM)


def grown_box(box: CordBox, cord: np.ndarray, grid: Volume,
              margin_mm: Sequence[float]) -> CordBox:
    """``box`` grown by ``margin_mm`` on every side the ``cord`` mask (on the box) touches,
    unless that side is already the edge of ``grid``; the same box when it touches none."""
    where = np.argwhere(cord)
    if where.size == 0:
        return box
    step = np.maximum(_margin_voxels(margin_mm, grid), 1.0)
    lower, upper = np.asarray(box.lower, float), np.asarray(box.upper, float)
    lower = np.where(where.min(axis=0) == 0, np.maximum(0.0, lower - step), lower)
    upper = np.where(where.max(axis=0) == np.asarray(box.shape) - 1,
                     np.minimum(grid.spatial_shape, upper + step), upper)
    return CordBox(tuple(int(v) for v in lower), tuple(int(v) for v in upper))


def min_cord_length_mm(grid: Volume, config: LocatorConfig) -> float:
    """The shortest superior-inferior extent a cord may have in ``grid`` (RAS)."""
    return min(config.min_cord_length_mm, config.min_cord_length_fraction * view_height_mm(grid))


def end_gaps_mm(cord: np.ndarray, box: CordBox, grid: Volume) -> tuple[float, float]:
    """How far (mm) the ``cord`` mask on ``box`` stops short of the inferior and the superior
    edge of the RAS ``grid`` (z); the whole extent each when it is empty."""
    z = np.flatnonzero(cord.any(axis=(0, 1)))
    if z.size == 0:
        return view_height_mm(grid), view_height_mm(grid)
    spacing = grid.spacing[2]
    return ((box.lower[2] + z[0]) * spacing,
            (grid.spatial_shape[2] - box.lower[2] - z[-1] - 1) * spacing)


def field_of_view_mm3(image: Volume) -> float:
    return float(np.prod(image.spatial_shape)) * image.voxel_volume_mm3


def whole_view_box(image: Volume) -> CordBox:
    return CordBox((0, 0, 0), tuple(int(n) for n in image.spatial_shape))  # type: ignore[arg-type]
