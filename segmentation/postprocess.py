"""Post-processing of per-label probabilities: components, plausible graft region, islands.

Works on probabilities (x, y, z, label) with labels 0 background, 1 cord,
2 lesion, 3 graft, and keeps labels = argmax(probabilities) true afterwards, so
the mask and the partial-volume volumes (sum of probabilities x voxel volume)
never disagree. Steps, in order:

1. Cord region: the connected components (26-connected) of voxels labelled
   cord, lesion or graft; components whose cord volume (sum of cord probability
   x voxel volume) is below ``min_cord_island_mm3`` or below ``min_cord_fraction``
   of the largest are dropped (so a blob with no cord in it is not a cord), and so are
   components farther than ``max_cord_gap_mm`` from the cord: the spinal cord is one
   tube, so the kept region grows from the largest component by the components within
   that distance of it (a cord split by a slice the network missed stays whole; a blob
   in a neck muscle or a vessel beside the spine does not join it).
2. Graft region: graft probability farther than ``graft_max_distance_mm`` from
   the kept cord or lesion voxels is dropped (a graft sits in or on the cord at
   the injection site; a bright blob in a muscle is not one).
3. Islands: for lesion and graft, the support is where the probability reaches
   ``support_probability``; its connected components whose partial-volume
   volume (sum of probabilities x voxel volume) is below ``min_lesion_island_mm3``
   / ``min_graft_island_mm3`` are dropped.

"Dropped" means that label's probability is set to 0 outside the kept
components grown by one voxel (their partial-volume fringe) and moved to cord
where the voxel is in the kept cord region (a removed graft or lesion island
inside the cord is cord tissue), to background elsewhere; each voxel's
probabilities still sum to 1. Labels are then recomputed by argmax. Every
removal is reported in mm3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
from scipy import ndimage

from imaging.errors import InvalidVolumeError
from imaging.volume import LabelVolume, Volume

BACKGROUND, CORD, LESION, GRAFT = 0, 1, 2, 3
_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds, in physical units, for ``postprocess``."""

    min_cord_island_mm3: float = 20.0
    min_cord_fraction: float = 0.1
    max_cord_gap_mm: float = 6.0
    graft_max_distance_mm: float = 5.0
    support_probability: float = 0.2
    min_graft_island_mm3: float = 1.0
    min_lesion_island_mm3: float = 2.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class PostprocessReport:
    """What was removed (partial-volume mm3 and number of components) per step."""

    cord_removed_mm3: float
    cord_components_removed: int
    graft_outside_region_mm3: float
    graft_removed_mm3: float
    graft_components_removed: int
    lesion_removed_mm3: float
    lesion_components_removed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PostprocessResult:
    labels: LabelVolume
    probabilities: Volume
    report: PostprocessReport


def _grow(mask: np.ndarray) -> np.ndarray:
    """Dilation by one voxel (26-neighbourhood); a 3x3x3 maximum filter is the same, faster."""
    return ndimage.maximum_filter(mask.view(np.uint8), size=3).view(bool) if mask.any() else mask


def _component_volumes(support: np.ndarray, weight: np.ndarray, voxel_mm3: float):
    components, count = ndimage.label(support, structure=_CONNECTIVITY)
    if count == 0:
        return components, np.zeros(0)
    sums = ndimage.sum_labels(weight, components, index=np.arange(1, count + 1))
    return components, np.asarray(sums, dtype=np.float64) * voxel_mm3


def _keep_components(support: np.ndarray, weight: np.ndarray, voxel_mm3: float,
                     min_mm3: float) -> tuple[np.ndarray, int]:
    """Mask of the kept components of ``support`` and how many were dropped."""
    components, volumes = _component_volumes(support, weight, voxel_mm3)
    if volumes.size == 0:
        return np.zeros_like(support), 0
    keep = np.flatnonzero(volumes >= min_mm3) + 1
    return np.isin(components, keep), int(volumes.size - keep.size)


def _cord_region(support: np.ndarray, weight: np.ndarray, spacing_mm,
                 config: PostprocessConfig) -> tuple[np.ndarray, int]:
    """Step 1: the kept cord components of ``support`` and how many were dropped."""
    components, volumes = _component_volumes(support, weight, float(np.prod(spacing_mm)))
    if volumes.size == 0:
        return np.zeros_like(support), 0
    threshold = max(config.min_cord_island_mm3, config.min_cord_fraction * volumes.max())
    candidates = set((np.flatnonzero(volumes >= threshold) + 1).tolist())
    kept = {int(np.argmax(volumes)) + 1} & candidates
    while kept:
        kept_mask = np.isin(components, list(kept))
        others = np.isin(components, list(candidates - kept))
        near = _near_cord(kept_mask, others, spacing_mm, config.max_cord_gap_mm)
        joined = set(np.unique(components[near & others]).tolist()) - {0}
        if not joined:
            return kept_mask, int(volumes.size - len(kept))
        kept |= joined
    return np.zeros_like(support), int(volumes.size)


def _drop_outside(probs: np.ndarray, labels: tuple[int, ...], keep_zone: np.ndarray,
                  cord_zone: np.ndarray, voxel_mm3: float) -> float:
    """Move ``labels``' probability outside ``keep_zone`` to cord (inside ``cord_zone``) or
    background (elsewhere), in place; return the moved volume in mm3."""
    outside = ~keep_zone
    moved = np.zeros(probs.shape[:3], dtype=probs.dtype)
    for label in labels:
        channel = probs[..., label]
        moved += np.where(outside, channel, 0.0)
        channel *= keep_zone
    probs[..., CORD] += moved * cord_zone
    probs[..., BACKGROUND] += moved * ~cord_zone
    return float(moved.sum()) * voxel_mm3


def _near_cord(cord_region: np.ndarray, candidates: np.ndarray, spacing_mm, max_mm: float):
    """Voxels within ``max_mm`` of ``cord_region``, computed only around ``candidates``."""
    near = np.zeros_like(candidates)
    if not candidates.any() or not cord_region.any():
        return near
    pad = [int(np.ceil(max_mm / s)) + 1 for s in spacing_mm]
    where = np.argwhere(candidates)
    lo = np.maximum(where.min(0) - pad, 0)
    hi = np.minimum(where.max(0) + np.asarray(pad) + 1, candidates.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    distance = ndimage.distance_transform_edt(~cord_region[box], sampling=spacing_mm)
    near[box] = distance <= max_mm
    return near


def _renormalise(probs: np.ndarray) -> np.ndarray:
    total = probs.sum(axis=-1, keepdims=True)
    empty = total[..., 0] <= 0
    probs[empty, BACKGROUND] = 1.0
    total[empty] = 1.0
    return probs / total


def clean_probabilities(probabilities: np.ndarray, spacing_mm, config: PostprocessConfig
                        ) -> tuple[np.ndarray, PostprocessReport]:
    """The array form of ``postprocess``: (x, y, z, 4) probabilities in, cleaned ones out."""
    probs = np.array(probabilities, dtype=np.float32)
    if probs.ndim != 4 or probs.shape[-1] != 4:
        raise InvalidVolumeError(f"probabilities of shape {probs.shape}: expected (x, y, z, 4) "
                                 "for background, cord, lesion, graft")
    spacing = tuple(float(s) for s in spacing_mm)
    voxel_mm3 = float(np.prod(spacing))
    labels = probs.argmax(axis=-1)
    region, cord_n = _cord_region(labels > 0, probs[..., CORD], spacing, config)
    nowhere = np.zeros_like(region)
    cord_mm3 = _drop_outside(probs, (CORD, LESION, GRAFT), _grow(region), nowhere, voxel_mm3)
    cord_or_lesion = region & np.isin(labels, (CORD, LESION))
    graft_support = probs[..., GRAFT] > 0
    near = _near_cord(cord_or_lesion, graft_support, spacing, config.graft_max_distance_mm)
    outside_mm3 = _drop_outside(probs, (GRAFT,), near, nowhere, voxel_mm3)
    removed = {}
    for label, min_mm3 in ((GRAFT, config.min_graft_island_mm3),
                           (LESION, config.min_lesion_island_mm3)):
        support = probs[..., label] >= config.support_probability
        kept, count = _keep_components(support, probs[..., label], voxel_mm3, min_mm3)
        dropped = _drop_outside(probs, (label,), _grow(kept), region, voxel_mm3)
        removed[label] = (dropped, count)
    report = PostprocessReport(cord_mm3, cord_n, outside_mm3, removed[GRAFT][0],
                               removed[GRAFT][1], removed[LESION][0], removed[LESION][1])
    return _renormalise(probs), report


def postprocess(probabilities: Volume, config: PostprocessConfig = PostprocessConfig()
                ) -> PostprocessResult:
    """Clean a 4-D probability Volume (x, y, z, label); labels are its argmax afterwards."""
    cleaned, report = clean_probabilities(probabilities.array, probabilities.spacing, config)
    labels = LabelVolume(cleaned.argmax(axis=-1).astype(np.uint8), probabilities.affine,
                         _label_meta(probabilities.meta))
    return PostprocessResult(labels, probabilities.with_array(cleaned), report)


def _label_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {**meta, "labels": {0: "background", 1: "cord", 2: "lesion", 3: "graft"}}
