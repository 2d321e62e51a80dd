"""19F cell counts per timepoint: the graft region and the reference tube, found on the 19F image.

Inputs per session: the ``acq-19F`` image (any grid; it shares the scanner frame with the
session's T2w) and the reference tube's fluorine atoms (``AnalysisConfig.reference_atoms``,
else the 19F sidecar's ``ReferenceAtoms``: the atoms of the tube inside the field of view).

- Graft region: the 19F voxels that touch the injection neighbourhood
  (``injection_site.injection_core``: the cord within 25 mm of the injection level; centre within
  half a 19F voxel diagonal plus half the largest T2w voxel side) and lie above
  ``SEED_SIGMAS`` noise sd: the connected cluster of them holding the most signal, grown
  by one face-connected voxel for the point spread (``graft_region``), detected only when
  its brightest voxel clears the search threshold (1 % false detections over the
  neighbourhood's voxels). Summing the whole neighbourhood (hundreds of voxels) would bury a
  graft of a few voxels in noise. Independent of the graft label, so an empty T2w graft
  label does not empty the 19F count; seeds picked from noise bias the count up slightly.
- Reference tube: not given as a mask; it is found on the 19F image (``reference_tube``):
  a tube along the spine, parallel to the cord, more than ``TUBE_CLEARANCE_MM`` from it,
  the brightest such line in the field of view. Its atoms are those inside the field of
  view (the sidecar's ``ReferenceAtoms``).
- Noise: a 19F image with negative values is real-valued (phase-corrected; Gaussian noise):
  sigma = 1.4826 x MAD of the voxels away from the cord; otherwise it is a magnitude image
  (Rician): sigma = median / sqrt(2 ln 2) of those voxels (Rayleigh). Mostly empty fields
  of view make both robust to the tube and graft.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.ndimage import binary_dilation, label as connected

from imaging.errors import AnalysisError, GraftwatchError
from imaging.volume import LabelVolume, Volume
from segmentation.cells import fluorine
from segmentation.config import AnalysisConfig
from segmentation.quantify import noise_floor_corrected
from segmentation.injection_site import (LabelledInput, LabelledResult, cord_axis, distance_to,
                                         injection_core, not_quantifiable)

TUBE_THRESHOLD_SIGMAS = 5.0
SEED_SIGMAS = 3.0
FALSE_DETECTION = 0.01
GROW_VOXELS = 1
TUBE_CLEARANCE_MM = 10.0
FLUORINE_REGION = (f"the brightest cluster of 19F voxels above {SEED_SIGMAS:g} noise sd "
                   "touching the injection neighbourhood (the cord within 25 mm of the injection "
                   "level), grown by one voxel; reference tube found on the 19F image (the "
                   f"brightest line along the spine > {TUBE_CLEARANCE_MM:g} mm from the cord)")


def fluorine_estimates(inputs: Sequence[LabelledInput],
                       config: AnalysisConfig) -> tuple[LabelledResult, ...]:
    results = []
    for item in inputs:
        try:
            results.append(fluorine_at(item, config))
        except GraftwatchError as exc:
            results.append(LabelledResult(not_quantifiable(
                "19f", item.timepoint, f"19F count could not be measured: {exc}"),
                region=FLUORINE_REGION))
    return tuple(results)


def fluorine_at(item: LabelledInput, config: AnalysisConfig) -> LabelledResult:
    from imaging.io import load
    tp = item.timepoint
    scan = tp.scans.get("19F")
    if scan is None:
        return LabelledResult(not_quantifiable("19f", tp, f"session {tp.label} has no acq-19F "
                                               f"image (found {sorted(tp.scans)})"),
                              region=FLUORINE_REGION)
    f19 = load(scan.path)
    if f19.array.ndim != 3:
        raise AnalysisError(f"{scan.path}: 19F image has shape {f19.shape}; expected a 3-D image")
    points = f19.world_coordinates(np.argwhere(np.ones(f19.spatial_shape, bool)))
    core = injection_core(item.labels, item.graft_probability, config.min_graft_volume_mm3)
    reach = 0.5 * math.sqrt(3.0) * max(f19.spacing) + 0.5 * max(item.labels.spacing)
    near = (distance_to(core, points) <= reach).reshape(f19.spatial_shape)
    cord = LabelVolume((np.asarray(item.labels.array) >= 1).astype(np.uint8), item.labels.affine)
    away = (distance_to(cord, points) > TUBE_CLEARANCE_MM).reshape(f19.spatial_shape)
    sigma, noise = noise_sigma(f19, away)
    tube = reference_tube(f19, away, sigma, cord_axis(cord))
    if not np.asarray(tube.array).any():
        return LabelledResult(not_quantifiable(
            "19f", tp, f"no reference tube found on {scan.path}: no region above "
            f"{TUBE_THRESHOLD_SIGMAS:g} noise sd more than {TUBE_CLEARANCE_MM:g} mm from the cord"),
            region=FLUORINE_REGION)
    atoms = config.reference_atoms or f19.meta.get("sidecar", {}).get("ReferenceAtoms")
    region = graft_region(f19, near, sigma, noise)
    estimate = fluorine(f19, region, tube,
                        None if atoms is None else float(atoms), config.fluorine_atoms_per_cell,
                        sigma, noise, config.confidence, config.injected_cells, tp.label,
                        float(tp.days or 0.0))
    per_cell = config.fluorine_atoms_per_cell
    counted = None if estimate.value is None else (
        estimate.value * per_cell, estimate.ci_low * per_cell, estimate.ci_high * per_cell)
    return LabelledResult(estimate, fluorine_atoms=counted, region=FLUORINE_REGION)


def graft_region(f19: Volume, near: np.ndarray, sigma: float, noise: str) -> LabelVolume:
    """The graft's 19F voxels: the seed cluster (neighbourhood voxels above SEED_SIGMAS noise
    sd after the noise-floor correction, 26-connected) holding the most signal, grown by one
    face-connected voxel for the point spread, inside the neighbourhood. Its brightest voxel
    must clear ``search_threshold`` (the neighbourhood's hundreds of voxels hold a 3 sd noise
    voxel more often than not); otherwise, and when there is no seed, the whole neighbourhood
    (the count is then measured, usually as below detection, over all of it). One cluster
    only: a noise seed elsewhere in the neighbourhood added a whole grown voxel block
    (+90 % on a faint graft)."""
    corrected = noise_floor_corrected(f19.array, sigma, noise)
    seeds = near & (corrected > SEED_SIGMAS * sigma)
    if not seeds.any() or corrected[near].max() <= search_threshold(int(near.sum())) * sigma:
        return LabelVolume(near.astype(np.uint8), f19.affine)
    parts, count = connected(seeds, structure=np.ones((3, 3, 3)))
    sums = np.bincount(parts.ravel(), weights=corrected.ravel(), minlength=count + 1)[1:]
    brightest = parts == int(np.argmax(sums)) + 1
    return LabelVolume((binary_dilation(brightest, iterations=GROW_VOXELS) & near).astype(np.uint8),
                       f19.affine)


def search_threshold(n_voxels: int) -> float:
    """Noise sd the brightest of ``n_voxels`` signal-free voxels exceeds with probability
    FALSE_DETECTION (Gaussian, Bonferroni), and at least SEED_SIGMAS."""
    from scipy.stats import norm
    return max(SEED_SIGMAS, float(norm.isf(FALSE_DETECTION / max(n_voxels, 1))))


def noise_sigma(f19: Volume, away: np.ndarray) -> tuple[float, str]:
    """(sigma, 'gaussian' | 'rician') from the voxels away from the cord (see module doc)."""
    values = np.asarray(f19.array, np.float64)[away]
    values = values[np.isfinite(values)]
    if values.size < 50:
        raise AnalysisError(f"only {values.size} 19F voxels lie more than {TUBE_CLEARANCE_MM:g} "
                            "mm from the cord; expected a 19F field of view with signal-free "
                            "background to measure the noise")
    if np.asarray(f19.array).min() < 0:
        return float(1.4826 * np.median(np.abs(values - np.median(values)))), "gaussian"
    return float(np.median(values) / math.sqrt(2.0 * math.log(2.0))), "rician"


def reference_tube(f19: Volume, away: np.ndarray, sigma: float,
                   cord_axis: np.ndarray) -> LabelVolume:
    """The reference tube: a faint line along the spine, found on the 19F image's projection.

    The tube runs parallel to the cord through the field of view, its voxels too faint
    one by one (often SNR 1-3), so the image is summed along the grid axis nearest the cord
    axis: the tube becomes a spot sqrt(n) times brighter. Pixels whose whole column lies
    away from the cord, above the median by TUBE_THRESHOLD_SIGMAS x sigma sqrt(n), form
    connected spots; the one holding the most signal, grown by one pixel, is extruded back
    along the axis.
    """
    signal = np.where(np.isfinite(f19.array), np.asarray(f19.array, np.float64), 0.0)
    directions = f19.affine[:3, :3] / np.asarray(f19.spacing)
    axis = int(np.argmax(np.abs(directions.T @ cord_axis)))
    n = signal.shape[axis]
    projection = signal.sum(axis=axis)
    clear = away.all(axis=axis)
    if not clear.any():
        return LabelVolume(np.zeros(signal.shape, np.uint8), f19.affine)
    excess = projection - np.median(projection[clear])
    bright = clear & (excess > TUBE_THRESHOLD_SIGMAS * sigma * math.sqrt(n))
    parts, count = connected(bright, structure=np.ones((3, 3)))
    spot = np.zeros(projection.shape, bool)
    if count:
        sums = np.bincount(parts.ravel(), weights=excess.ravel(), minlength=count + 1)[1:]
        spot = binary_dilation(parts == int(np.argmax(sums)) + 1, np.ones((3, 3))) & clear
    tube = np.repeat(np.expand_dims(spot, axis), n, axis=axis)
    return LabelVolume(tube.astype(np.uint8), f19.affine)
