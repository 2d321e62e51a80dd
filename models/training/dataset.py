"""Training cases: phantom sessions and real scans with manual cord masks, on the model grid.

A case is one image on the grid the network sees (``models.input``), with soft targets:

* seg model: the image refined onto the RAS model grid, cropped to a box around the cord
  (``BOX_MARGIN_MM`` beyond the cord on the two in-plane axes of RAS x/y, the whole
  field of view along z) and normalised over that box, exactly as inference sees it;
  targets are per-label fractions (phantoms: the simulator's partial-volume probsegs;
  real scans: the manual cord mask) refined linearly onto the same grid.
* locator: the whole field of view resampled at the locator spacing, normalised over it;
  target = fraction of cord region (labels 1+2+3).

A case may carry a ``prior``: the subject's pre-injection baseline scan, moved onto the
case's own input grid, then refined, cropped and normalised exactly like the image (the
graft model with a baseline channel sees it; ``build_seg_case(prior=...)``).

Real scans annotate the cord only (``annotation == "cord"``): the loss then supervises
the cord-region marginal and nothing else. A real scan of a cord without a lesion
(``RealScan.healthy``) is "healthy" for the segmenter: its mask is the cord label and the
lesion and graft labels are known to be absent, so every label is supervised. Cases are
cached as .npz files (float16 image, uint8 targets) keyed by their source, so a resumed run
does not rebuild them.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from imaging.atomic import atomic_path
from imaging.errors import ModelError
from imaging.resample import resample_to_grid
from imaging.volume import Volume
from models.card import ModelCard
from models.input import image_for_model, locator_grid, normalise_for_model, refine, to_model_grid

log = logging.getLogger(__name__)

BOX_MARGIN_MM = 15.0
TARGET_SCALE = 255.0


REAL_ANNOTATIONS = ("cord", "healthy")   # what a real scan's target annotates

@dataclass(frozen=True)
class TrainingCase:
    """One image on the model grid with its soft targets (K, X, Y, Z) in [0, 1]."""

    name: str
    image: np.ndarray        # float16 (X, Y, Z), normalised
    target: np.ndarray       # uint8 (K, X, Y, Z), fraction x 255
    annotation: str          # "full" (every label) | "cord" (cord region only)
    factors: tuple[int, int, int] = (1, 1, 1)   # model grid refinement of the input grid
    prior: np.ndarray | None = None   # float16 (X, Y, Z): the baseline on this grid, normalised

    def target_fractions(self) -> np.ndarray:
        return self.target.astype(np.float32) / TARGET_SCALE


@dataclass(frozen=True)
class RealScan:
    """A public scan with a manual cord mask, paths relative to ../shared/data."""

    image: str
    cord_mask: str
    contrast: str
    healthy: bool = False     # no lesion and no graft in this cord: lesion 0 is the truth


def soft_targets_from_fractions(cord: np.ndarray, lesion: np.ndarray, graft: np.ndarray) -> np.ndarray:
    """(4, X, Y, Z) label fractions from cord-region, lesion and graft fractions.

    ``cord`` is the fraction of the whole cord region (tissue, lesion and graft inside
    it); label 1 keeps what lesion and graft do not take. Fractions are clipped to [0, 1]
    and background is the rest, so the four sum to 1.
    """
    graft = np.clip(graft, 0, 1)
    lesion = np.clip(np.minimum(lesion, 1 - graft), 0, 1)
    region = np.clip(np.maximum(cord, lesion + graft), 0, 1)
    cord_only = np.clip(region - lesion - graft, 0, 1)
    return np.stack([np.clip(1 - region, 0, 1), cord_only, lesion, graft]).astype(np.float32)


def _targets_to_volume(targets: np.ndarray, reference: Volume) -> Volume:
    return Volume(np.moveaxis(targets, 0, 3).astype(np.float32), reference.affine)


def _cord_box(region: np.ndarray, spacing: Sequence[float], margin_mm: float,
              factors: Sequence[int]) -> tuple[list, list]:
    """Box (x, y around the cord plus margin; all z), its edges on input-voxel boundaries."""
    inside = np.argwhere(region > 0.5)
    if inside.size == 0:
        raise ModelError("training case has no cord voxel; expected a cord mask with at least one "
                         "voxel inside the field of view")
    lower, upper = [0, 0, 0], list(region.shape)
    for a in (0, 1):
        margin = int(np.ceil(margin_mm / spacing[a]))
        f = factors[a]
        lower[a] = max(0, (int(inside[:, a].min()) - margin) // f * f)
        upper[a] = min(region.shape[a], -(-(int(inside[:, a].max()) + 1 + margin) // f) * f)
    return lower, upper


def build_seg_case(name: str, image: Volume, targets: np.ndarray, annotation: str,
                   card: ModelCard, linear_targets: bool = True,
                   prior: Volume | None = None) -> TrainingCase:
    """Refine image and (K, ...) targets onto the model grid, crop around the cord, normalise.

    ``linear_targets=False`` refines targets by repetition, so that block-averaging them
    gives back the input-grid targets exactly (validation cases). ``prior``: a volume on
    ``image``'s grid (the registered baseline), refined, cropped and normalised the same way.
    """
    fine_image, factors = to_model_grid(image_for_model(image), card.spacing_mm)
    ras_targets = _targets_to_volume(targets, image).reorient("RAS")
    fractions = refine(np.moveaxis(ras_targets.array, 3, 0), factors, linear=linear_targets)
    lower, upper = _cord_box(1 - fractions[0], fine_image.spacing, BOX_MARGIN_MM, factors)
    box = tuple(slice(a, b) for a, b in zip(lower, upper))
    pixels = normalise_for_model(fine_image.array[box], card)
    prior_pixels = None
    if prior is not None:
        if prior.spatial_shape != image.spatial_shape or not np.allclose(prior.affine, image.affine):
            raise ModelError(f"training case {name!r}: prior of shape {prior.spatial_shape}; "
                             f"expected one on the image's grid {image.spatial_shape}")
        fine_prior, _ = to_model_grid(image_for_model(prior), card.spacing_mm)
        prior_pixels = normalise_for_model(fine_prior.array[box], card).astype(np.float16)
    return TrainingCase(name, pixels.astype(np.float16), _quantise(fractions[(slice(None),) + box]),
                        annotation, factors, prior_pixels)


def build_locator_case(name: str, image: Volume, targets: np.ndarray, annotation: str,
                       card: ModelCard) -> TrainingCase:
    """The whole field of view at the locator spacing; target = cord-region fraction."""
    coarse = locator_grid(image_for_model(image), card.spacing_mm)
    region = _targets_to_volume(1 - targets[:1], image).reorient("RAS")
    region = resample_to_grid(region, coarse.spatial_shape, coarse.affine).array[..., 0]
    region = np.clip(region, 0, 1)
    pixels = normalise_for_model(coarse.array, card)
    return TrainingCase(name, pixels.astype(np.float16), _quantise(np.stack([1 - region, region])),
                        "cord")


def _quantise(fractions: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(fractions, 0, 1) * TARGET_SCALE).astype(np.uint8)


def build_case(name: str, image: Volume, targets: np.ndarray, annotation: str,
               card: ModelCard, validation: bool = False,
               prior: Volume | None = None) -> TrainingCase:
    if data_task(card) == "segment":
        return build_seg_case(name, image, targets, annotation, card,
                              linear_targets=not validation, prior=prior)
    return build_locator_case(name, image, targets, annotation, card)


# --- cache --------------------------------------------------------------------------
def data_task(card: ModelCard) -> str:
    """What a model's cases look like: the graft model sees the segmenter's cases (the same
    grid, box and normalisation; it keeps only their graft fractions)."""
    return "segment" if card.task == "graft" else card.task


def cache_key(name: str, card: ModelCard, validation: bool = False) -> str:
    text = f"{name}|{data_task(card)}|{card.spacing_mm}|{card.normalisation}|{BOX_MARGIN_MM}|{validation}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_case(case: TrainingCase, folder: Path, card: ModelCard, validation: bool = False) -> Path:
    path = Path(folder) / f"{cache_key(case.name, card, validation)}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            extra = {} if case.prior is None else {"prior": case.prior}
            np.savez(handle, image=case.image, target=case.target, name=np.array(case.name),
                     annotation=np.array(case.annotation), factors=np.array(case.factors), **extra)
    return path


def load_cached_case(name: str, folder: Path, card: ModelCard,
                     validation: bool = False) -> TrainingCase | None:
    path = Path(folder) / f"{cache_key(name, card, validation)}.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        return TrainingCase(str(data["name"]), data["image"], data["target"], str(data["annotation"]),
                            tuple(int(f) for f in data["factors"]),
                            data["prior"] if "prior" in data.files else None)
