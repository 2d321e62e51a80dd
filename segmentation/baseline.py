"""A classical baseline: cord from CSF contrast, lesion and graft from intensity ratios.

What it does, exactly (``classical_segmentation``):

1. The image is reoriented to RAS (bit-exact); a 4-D T2*w scan becomes one image as
   the network sees it (RMS over echoes, ``models.input.image_for_model``). It is
   smoothed with a Gaussian of ``smoothing_mm`` (sigma, per axis in mm).
2. Bright tissue (CSF, fat, disc nucleus, edema, cyst) is what exceeds the upper of two
   three-class Otsu thresholds (dark muscle and bone cortex / cord and marrow / bright),
   computed over the voxels above 10 % of the 99th percentile (air excluded).
3. In every axial slice (RAS z), the dark regions fully enclosed by bright tissue
   (holes of the bright mask, 2-D) whose area lies in ``cord_area_mm2`` are cord
   candidates: on T2w the cord is dark inside its bright CSF ring.
4. Candidates are joined across slices (26-connected); the component present in the
   most slices (ties: the largest) is the cord, with every other component whose
   in-plane centroid lies within ``track_mm`` of it. Holes are filled slice by slice
   (bright lesions enclosed by cord tissue are cord region), and slices between found
   ones with no dark cord (a lesion filling the cross-section) get the cross-section
   of the nearest found slice.
5. Inside the cord region, away from its edge (farther than ``rim_mm`` in-plane, where
   partial volume with CSF would mimic graft and lesion), each voxel's smoothed
   intensity is divided by the median
   cord intensity of the slices within ``reference_window_mm`` along z (a local
   reference, robust to a smooth bias field): ratio in ``graft_ratio`` -> graft (3);
   ratio above ``lesion_bright_ratio`` or below ``lesion_dark_ratio`` -> lesion (2);
   else cord (1).
6. The labels go through the same post-processing as the model's
   (``segmentation.postprocess`` on one-hot probabilities) and back to the input's
   own orientation.

It knows nothing of label-free versus SPIO grafts (a dark SPIO void is "lesion"), and
it fails where the CSF ring is not resolved (thick sagittal slices seen in RAS z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from imaging.volume import LabelVolume, Volume
from models.input import image_for_model
from segmentation.postprocess import PostprocessConfig, clean_probabilities

CONNECTIVITY_3D = ndimage.generate_binary_structure(3, 3)


@dataclass(frozen=True)
class BaselineConfig:
    smoothing_mm: float = 0.5
    cord_area_mm2: tuple[float, float] = (15.0, 200.0)
    track_mm: float = 5.0
    reference_window_mm: float = 20.0
    rim_mm: float = 1.0
    graft_ratio: tuple[float, float] = (1.25, 1.45)
    lesion_bright_ratio: float = 1.5
    lesion_dark_ratio: float = 0.6
    postprocess: PostprocessConfig = PostprocessConfig()


def _bright_mask(image: np.ndarray) -> np.ndarray:
    body = image[image > 0.1 * np.percentile(image, 99)]
    if body.size < 2 or body.min() == body.max():
        return np.zeros(image.shape, bool)
    return image > threshold_multiotsu(body, classes=3)[-1]


def _cord_candidates(bright: np.ndarray, pixel_mm2: float, area_mm2) -> np.ndarray:
    candidates = np.zeros_like(bright)
    for z in range(bright.shape[2]):
        holes = ndimage.binary_fill_holes(bright[:, :, z]) & ~bright[:, :, z]
        parts, count = ndimage.label(holes)
        if count == 0:
            continue
        areas = np.bincount(parts.ravel())[1:] * pixel_mm2
        keep = np.flatnonzero((areas >= area_mm2[0]) & (areas <= area_mm2[1])) + 1
        candidates[:, :, z] = np.isin(parts, keep)
    return candidates


def _pick_cord(candidates: np.ndarray, spacing: np.ndarray, track_mm: float) -> np.ndarray:
    """The candidate component in most slices, plus those in line with it (in-plane
    centroid within ``track_mm``), holes filled per slice, gaps bridged by the nearest
    found slice."""
    parts, count = ndimage.label(candidates, structure=CONNECTIVITY_3D)
    if count == 0:
        return np.zeros(candidates.shape, bool)
    slices = ndimage.find_objects(parts)
    sizes = np.bincount(parts.ravel())[1:]
    score = [(s[2].stop - s[2].start, int(n)) for s, n in zip(slices, sizes)]
    best = max(range(count), key=lambda i: score[i])
    centres = np.asarray(ndimage.center_of_mass(candidates, parts, range(1, count + 1)))
    offset_mm = np.linalg.norm((centres[:, :2] - centres[best, :2]) * spacing[:2], axis=1)
    cord = np.isin(parts, np.flatnonzero(offset_mm <= track_mm) + 1)
    for z in range(cord.shape[2]):
        cord[:, :, z] = ndimage.binary_fill_holes(cord[:, :, z])
    return _bridge_gaps(cord)


def _bridge_gaps(cord: np.ndarray) -> np.ndarray:
    """Slices between found ones where the cord is not dark (all lesion) get the nearest
    found slice's cross-section."""
    found = np.flatnonzero(cord.any(axis=(0, 1)))
    out = cord.copy()
    for z in range(found.min(), found.max() + 1) if found.size else ():
        if not cord[:, :, z].any():
            out[:, :, z] = cord[:, :, found[np.argmin(np.abs(found - z))]]
    return out


def _local_reference(image: np.ndarray, cord: np.ndarray, dark: np.ndarray,
                     slice_mm: float, window_mm: float) -> np.ndarray:
    """Median normal-cord intensity per slice, over slices within the window along z."""
    half = max(0, int(round(window_mm / 2 / slice_mm)))
    nz = image.shape[2]
    reference = np.full(nz, np.nan)
    tissue = cord & dark
    for z in range(nz):
        values = image[:, :, max(0, z - half):z + half + 1][tissue[:, :, max(0, z - half):z + half + 1]]
        if values.size:
            reference[z] = np.median(values)
    if np.all(np.isnan(reference)):
        return reference
    filled = np.where(np.isnan(reference), np.nanmedian(reference), reference)
    return filled


def _interior(cord: np.ndarray, spacing: np.ndarray, rim_mm: float) -> np.ndarray:
    """Cord voxels farther than ``rim_mm`` (in-plane) from the cord's edge."""
    inside = np.zeros_like(cord)
    for z in np.flatnonzero(cord.any(axis=(0, 1))):
        distance = ndimage.distance_transform_edt(np.pad(cord[:, :, z], 1),
                                                  sampling=spacing[:2])[1:-1, 1:-1]
        inside[:, :, z] = distance > rim_mm
    return inside


def _rule_labels(image: np.ndarray, cord: np.ndarray, dark: np.ndarray, spacing: np.ndarray,
                 config: BaselineConfig) -> np.ndarray:
    labels = cord.astype(np.uint8)
    if not cord.any():
        return labels
    reference = _local_reference(image, cord, dark, float(spacing[2]), config.reference_window_mm)
    ratio = image / np.maximum(reference[None, None, :], 1e-12)
    inside = _interior(cord, spacing, config.rim_mm)
    lesion = inside & ((ratio > config.lesion_bright_ratio) | (ratio < config.lesion_dark_ratio))
    graft = inside & (ratio >= config.graft_ratio[0]) & (ratio <= config.graft_ratio[1])
    labels[lesion] = 2
    labels[graft] = 3
    return labels


def classical_segmentation(volume: Volume, config: BaselineConfig = BaselineConfig()
                           ) -> LabelVolume:
    """Labels 0-3 by the rules in the module docstring, in ``volume``'s own space."""
    ras = image_for_model(volume.reorient("RAS"))
    spacing = np.asarray(ras.spacing)
    image = ndimage.gaussian_filter(np.asarray(ras.array, dtype=np.float64),
                                    sigma=config.smoothing_mm / spacing)
    bright = _bright_mask(image)
    candidates = _cord_candidates(bright, float(spacing[0] * spacing[1]), config.cord_area_mm2)
    cord = _pick_cord(candidates, spacing, config.track_mm)
    labels = _rule_labels(image, cord, ~bright, spacing, config)
    probs, _ = clean_probabilities(np.eye(4, dtype=np.float32)[labels], spacing,
                                   config.postprocess)
    cleaned = LabelVolume(probs.argmax(axis=-1).astype(np.uint8), ras.affine)
    back = cleaned.reorient(volume.orientation)
    return LabelVolume(back.array, volume.affine, {"contrast": volume.meta.get("contrast"),
                                                   "method": "classical baseline"})
