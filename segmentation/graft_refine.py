"""The graft model's stage of ``segment``: its P(graft) replaces the segmenter's.

The graft model (task "graft", ``models.training.recipes``) was trained on the
segmenter's cases: the same model grid, cord box and normalisation. It runs on the very
array the segmenter saw, but only inside the bounding box of the segmenter's cord region
(P(cord) + P(lesion) + P(graft) >= 0.5) grown by ``GRAFT_SEARCH_MARGIN_MM``: a graft
lies in or on the cord, so the rest of the box is not searched.

Merging, per voxel of the model grid: P(graft) becomes the graft model's probability
(0 outside the searched box), and the segmenter's background, cord and lesion keep their
proportions over what is left, so the four still sum to 1. Where the segmenter gave
(almost) everything to the graft and the graft model disagrees, the freed probability
goes to the lesion: a bright or dark spot in the cord that is not graft is a lesion
look-alike, not normal cord.
"""

from __future__ import annotations

import numpy as np

from imaging.errors import ModelError
from models.card import ModelCard
from models.registry import LoadedModel
from segmentation.locate import model_probabilities

GRAFT_SEARCH_MARGIN_MM = 5.0
CORD_REGION_LEVEL = 0.5
BACKGROUND, CORD, LESION, GRAFT = 0, 1, 2, 3
_TINY = 1e-6


def check_graft_model(graft: ModelCard, segmenter: ModelCard) -> None:
    """The graft model must see what the segmenter sees: same spacing and normalisation."""
    if graft.task != "graft":
        raise ModelError(f"model {graft.name!r} has task {graft.task!r}; graft= takes a model "
                         "with task 'graft' (or None to keep the segmenter's graft)")
    if tuple(graft.spacing_mm) != tuple(segmenter.spacing_mm) or \
            graft.normalisation != segmenter.normalisation:
        raise ModelError(f"graft model {graft.name!r} (spacing {graft.spacing_mm} mm, "
                         f"normalisation {graft.normalisation!r}) was not trained on the grid of "
                         f"segmenter {segmenter.name!r} (spacing {segmenter.spacing_mm} mm, "
                         f"normalisation {segmenter.normalisation!r}); use a matching pair")


def search_box(probs: np.ndarray, spacing_mm, margin_mm: float = GRAFT_SEARCH_MARGIN_MM
               ) -> tuple[slice, slice, slice] | None:
    """Bounding box of the cord region of (labels, x, y, z) probabilities plus a margin."""
    region = probs[CORD:].sum(axis=0) >= CORD_REGION_LEVEL
    if not region.any():
        return None
    where = np.argwhere(region)
    margin = np.ceil(margin_mm / np.asarray(spacing_mm, dtype=np.float64)).astype(int)
    low = np.maximum(where.min(axis=0) - margin, 0)
    high = np.minimum(where.max(axis=0) + 1 + margin, region.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))  # type: ignore[return-value]


def merge_graft(probs: np.ndarray, graft: np.ndarray) -> np.ndarray:
    """(4, ...) probabilities with channel 3 replaced by ``graft`` (same spatial shape)."""
    others = probs[:GRAFT].astype(np.float32, copy=True)
    empty = others.sum(axis=0) < _TINY
    others[LESION][empty] = 1.0
    others /= others.sum(axis=0)
    keep = np.clip(1.0 - graft, 0.0, 1.0)
    return np.concatenate([others * keep, np.clip(graft, 0.0, 1.0)[None]]).astype(np.float32)


def graft_input(image: np.ndarray, baseline: np.ndarray | None, takes_baseline: bool) -> np.ndarray:
    """What the graft model sees: the image, and for a model that takes the baseline a
    second channel with it (zeros when there is none, as in training)."""
    if not takes_baseline:
        return image
    if baseline is None:
        baseline = np.zeros_like(image)
    elif baseline.shape != image.shape:
        raise ModelError(f"graft stage: baseline {baseline.shape} and image {image.shape}; "
                         "expected the same model-grid shape")
    return np.stack([image, baseline])


def apply_graft_model(probs: np.ndarray, image: np.ndarray, spacing_mm, loaded: LoadedModel, *,
                      precision: str, batch_size: int, overlap: float,
                      baseline: np.ndarray | None = None) -> np.ndarray:
    """The segmenter's (4, x, y, z) probabilities on the model grid with the graft model's
    P(graft); ``image`` is the normalised model-grid array both networks see, ``baseline``
    the registered baseline on the same grid, normalised alike (used by a graft model
    that takes it, ``ModelCard.takes_baseline``; None: the subject has none)."""
    if probs.shape[0] != 4 or probs.shape[1:] != image.shape:
        raise ModelError(f"graft stage: probabilities {probs.shape} and image {image.shape}; "
                         "expected (4, x, y, z) and (x, y, z)")
    graft = np.zeros(image.shape, np.float32)
    box = search_box(probs, spacing_mm)
    if box is not None:
        seen = graft_input(image, baseline, loaded.card.takes_baseline)
        crop = np.ascontiguousarray(seen[(slice(None),) * (seen.ndim - 3) + box])
        found = model_probabilities(loaded, crop, precision=precision, batch_size=batch_size,
                                    overlap=overlap)
        graft[box] = found[-1]
    return merge_graft(probs, graft)
