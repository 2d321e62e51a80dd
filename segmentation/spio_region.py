"""SPIO iron and cells at every timepoint, for ``analyze_subject`` (label 'spio').

R2* comes from ``segmentation.session_r2star`` (each session's own fit; the pre-injection
baseline's moved onto the timepoint's grid). Iron = sum of delta-R2* / relaxivity over the
voxels within ``BLOOM_MARGIN_MM`` (3 sd of the widest blooming kernel of the phantom
contract, 1.5 mm) of the iron clusters found in the injection neighbourhood
(``segmentation.injection_site``), within ``CSF_MARGIN_MM`` of the cord (blooming reaches
into the CSF). The clusters are seeded on delta-R2* minus its median along each line of
voxels along the cord (``along_cord_background``), so what runs along the whole cord does
not join them into one. The sum has a background subtracted: the median of the same sum
over copies of the region shifted along the cord (where no iron is). On 3-4 mm slices a
baseline in another plane mixes CSF into other voxels than the timepoint does, so
delta-R2* is not zero at the cord's edges even without iron; edema resolving and cysts
forming change R2* too. The copies see the same geometry, so their median removes what is
not iron and their spread is the sum's uncertainty (it holds the spatial correlation of
the R2* noise; never below independent voxels with ``CORRELATED_VOXELS`` voxels per
independent sample). The per-voxel delta-R2* noise (for the seeds) is the robust spread
over the whole cord. The relaxivity and the iron per cell are assumptions listed apart;
their uncertainty is not in the interval.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Sequence

import numpy as np
from scipy.ndimage import label as connected
from scipy.ndimage import sum_labels as labelled_sum

from imaging.errors import GraftwatchError
from imaging.volume import LabelVolume, Volume
from segmentation.cells import IronMeasurement, iron_mass, spio
from segmentation.config import AnalysisConfig
from segmentation.injection_site import (HALF_LENGTH_MM, LabelledInput, LabelledResult, cord_axis,
                                         injection_core, not_quantifiable)
from segmentation.quantify import GraftMeasurement, grow_region
from segmentation.session_r2star import r2star_on_grid

BLOOM_MARGIN_MM = 4.5

CSF_MARGIN_MM = 1.0

SEED_SIGMAS = 3.0

MIN_APERTURE_FILL = 0.8

MIN_LINE_VOXELS = 5

MIN_LINE_FRACTION = 0.6

CLUSTER_SIGMAS = 10.0

CORRELATED_VOXELS = 4.0

SPIO_REGION = (f"voxels within {BLOOM_MARGIN_MM:g} mm of a voxel whose delta-R2* exceeds "
               f"{SEED_SIGMAS:g} noise sd (in clusters of at least {CLUSTER_SIGMAS:g} sd) and "
               f"within {CSF_MARGIN_MM:g} mm of the cord, seeds taken in "
               "the injection neighbourhood (the cord within "
               f"{HALF_LENGTH_MM:g} mm of the injection level along the cord: graft centroid, "
               "else lesion centroid); the whole neighbourhood when none does; it does not "
               "depend on the graft label")


def spio_estimates(inputs: Sequence[LabelledInput], base_index: int | None,
                   measurements: Sequence[GraftMeasurement],
                   config: AnalysisConfig) -> tuple[LabelledResult, ...]:
    """Iron and SPIO cells per timepoint; reasons where a timepoint cannot be measured."""
    reasons: dict[int, str] = {}
    iron: list[IronMeasurement] = []
    baseline_r2 = None
    if base_index is None:
        reason = "no pre-injection baseline: delta-R2* (and so iron) cannot be measured"
    else:
        try:
            baseline_r2, reason = r2star_on_grid(inputs[base_index], None), ""
        except GraftwatchError as exc:
            reason = f"baseline R2* could not be fitted: {exc}"
    for i, item in enumerate(inputs):
        fe, why = _NO_IRON, reason
        if not why and i != base_index and (item.timepoint.days or 0.0) >= 0:
            fe, why = _iron_at(item, baseline_r2, config)
        iron.append(fe)
        if why and i != base_index:
            reasons[i] = why
    estimates = spio(iron, measurements, config.iron_pg_per_cell, config.injected_cells,
                     config.generator(), config.confidence, config.min_graft_volume_mm3,
                     config.bootstrap_samples)
    unchecked = _unchecked_note(measurements, config.min_graft_volume_mm3)
    results = []
    for i, (item, e, fe) in enumerate(zip(inputs, estimates, iron)):
        if i in reasons:
            e = not_quantifiable("spio", item.timepoint, reasons[i], e.assumptions)
        elif e.status == "ok" and unchecked:
            e = replace(e, reason=unchecked)
        results.append(LabelledResult(e, None if fe is _NO_IRON else fe, region=SPIO_REGION))
    return tuple(results)


_NO_IRON = IronMeasurement(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _unchecked_note(measurements: Sequence[GraftMeasurement], min_volume_mm3: float) -> str:
    """Why lingering iron cannot be ruled out: no graft volume curve to compare the iron with."""
    post = [m for m in measurements if m.days_post_transplant >= 0]
    first = min(post, key=lambda m: m.days_post_transplant) if post else None
    if first is None or first.volume_mm3 >= min_volume_mm3:
        return ""
    return ("the T2w graft volume is below the detection limit at the first post-injection "
            "scan, so whether iron outlives the cells (macrophages) cannot be checked: this "
            "count may include the iron of dead cells")


def _iron_at(item: LabelledInput, baseline_r2: Volume | None,
             config: AnalysisConfig) -> tuple[IronMeasurement, str]:
    if item.to_baseline is None:
        return _NO_IRON, "not registered to the baseline: delta-R2* cannot be measured"
    try:
        r2 = r2star_on_grid(item, None)
        moved = r2star_on_grid(item, baseline_r2)
        delta = np.asarray(r2.array, np.float64) - np.asarray(moved.array, np.float64)
        core = injection_core(item.labels, item.graft_probability, config.min_graft_volume_mm3)
        cord = (np.asarray(item.labels.array) >= 1) & np.isfinite(delta)
        if not np.asarray(core.array).any() or cord.sum() < 10:
            return _NO_IRON, "no cord found: no injection neighbourhood to integrate over"
        axis = grid_axis(item.labels, cord_axis(item.labels))
        excess = delta - along_cord_background(
            delta, _near_cord(core, cord) & np.isfinite(delta), axis)
        noise = float(1.4826 * np.median(np.abs(excess[cord] - np.median(excess[cord]))))
        region = iron_region(core, excess, noise, cord)
        n_voxels = int(np.asarray(region.array).sum())
        copies = aperture_sums(region, delta, cord, axis)
        background = float(np.median(copies)) if copies.size else 0.0
        spread = float(np.sqrt(np.mean((copies - background) ** 2) * (1 + 1 / copies.size))
                       ) if copies.size >= 2 else 0.0
        sum_sd = max(spread, noise * math.sqrt(n_voxels * CORRELATED_VOXELS))
        corrected = Volume(np.asarray(moved.array, np.float64) + background / max(n_voxels, 1),
                           moved.affine)
        fe = iron_mass(r2, corrected, region, config.r2star_relaxivity_per_s_per_ug_per_mm3,
                       confidence=config.confidence,
                       noise_sd_per_s=sum_sd / math.sqrt(max(n_voxels, 1)))
    except GraftwatchError as exc:
        return _NO_IRON, f"iron could not be measured: {exc}"
    if fe.iron_ug < -fe.detection_limit_ug:
        return _NO_IRON, (f"delta-R2* sums to {fe.iron_ug:.3g} ug of iron, negative beyond 3 sd "
                          f"({fe.sd_ug:.3g} ug): iron cannot be negative, so the baseline does not "
                          "match this session here (check the registration and the cord masks)")
    return fe, ""


def iron_region(core: LabelVolume, delta: np.ndarray, noise_sd: float,
                cord: np.ndarray) -> LabelVolume:
    """Where iron is integrated: seeds (voxels of the injection core whose delta-R2* exceeds
    SEED_SIGMAS noise sd) grown by BLOOM_MARGIN_MM, inside the cord grown by CSF_MARGIN_MM
    (blooming reaches beyond the graft and into the CSF); the core itself when no voxel is a
    seed, so an absent iron is measured as below detection over the neighbourhood."""
    seeds = _seed_clusters((np.asarray(core.array) > 0) & cord & (delta > SEED_SIGMAS * noise_sd),
                           delta, noise_sd)
    if not seeds.any():
        return LabelVolume(((np.asarray(core.array) > 0) & cord).astype(np.uint8), core.affine)
    grown = np.asarray(grow_region(LabelVolume(seeds.astype(np.uint8), core.affine),
                                   BLOOM_MARGIN_MM).array) > 0
    region = grown & _near_cord(core, cord) & np.isfinite(delta)
    return LabelVolume(region.astype(np.uint8), core.affine)


def _seed_clusters(seeds: np.ndarray, delta: np.ndarray, noise_sd: float) -> np.ndarray:
    """The connected seed cluster holding the most delta-R2*, when its sum exceeds
    CLUSTER_SIGMAS x its noise (noise sd x sqrt(size)): the iron of the injection, not noise
    or edge voxels. One cluster: weak clusters elsewhere along the cord (edema resolving)
    passed that test by their size and tripled the region on 3-4 mm slices."""
    parts, count = connected(seeds, structure=np.ones((3, 3, 3)))
    if not count:
        return seeds
    index = np.arange(1, count + 1)
    sums = labelled_sum(delta, parts, index)
    sizes = labelled_sum(np.ones_like(delta), parts, index)
    strongest = index[int(np.argmax(sums))]
    if sums.max() <= CLUSTER_SIGMAS * noise_sd * np.sqrt(sizes[strongest - 1]):
        return np.zeros_like(seeds)
    return parts == strongest


def _near_cord(like: LabelVolume, cord: np.ndarray) -> np.ndarray:
    return np.asarray(grow_region(LabelVolume(cord.astype(np.uint8), like.affine),
                                  CSF_MARGIN_MM).array) > 0


def grid_axis(grid: Volume, axis_ras: np.ndarray) -> int:
    """The voxel axis of ``grid`` closest to the RAS direction ``axis_ras``."""
    directions = grid.affine[:3, :3] / np.asarray(grid.spacing)
    return int(np.argmax(np.abs(directions.T @ axis_ras)))


def along_cord_background(delta: np.ndarray, near: np.ndarray, axis: int) -> np.ndarray:
    """Per line of voxels along the cord (grid ``axis``), the median delta-R2* of its voxels
    near the cord (0 where a line holds fewer than MIN_LINE_VOXELS): what is the same all
    along the cord and so not the iron of one injection site, mainly partial volume. Lines
    that cross the cord over less than MIN_LINE_FRACTION of the longest (the cord curves out
    of them) get 0: their median would be the iron itself. On
    3-4 mm slices a baseline in another plane mixes CSF into other voxels than the
    timepoint, so delta-R2* at the cord's edges is tens of 1/s without iron."""
    values = np.where(near, delta, np.nan)
    counts = np.sum(near, axis=axis, keepdims=True)
    enough = counts >= max(MIN_LINE_VOXELS, MIN_LINE_FRACTION * counts.max())
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            line = np.nanmedian(values, axis=axis, keepdims=True)
    return np.broadcast_to(np.where(enough & np.isfinite(line), line, 0.0), delta.shape)


def aperture_sums(region: LabelVolume, delta: np.ndarray, cord: np.ndarray,
                  axis: int) -> np.ndarray:
    """Root mean square of the delta-R2* sum (1/s x voxels) over copies of the region shifted
    along the cord, clear of it, where no iron is: measured on the data, it holds what
    voxel-independent noise misses, the spatial correlation of the R2* noise (fit and
    interpolation), the baseline's misregistration and the tissue's own change since the
    baseline (edema resolving, cysts forming). 0 when no copy fits in the cord."""
    inside = np.asarray(region.array) > 0
    span = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
    if span.size == 0:
        return 0.0
    step = int(span[-1] - span[0] + 1)
    n = inside.shape[axis]
    near = _near_cord(region, cord) & np.isfinite(delta)
    sums = []
    for k in range(-(n // step), n // step + 1):
        shift = k * step
        if k == 0 or span[0] + shift < 0 or span[-1] + shift >= n:
            continue
        moved = np.roll(inside, shift, axis=axis) & near
        if moved.sum() >= MIN_APERTURE_FILL * inside.sum():
            sums.append(delta[moved].sum() * inside.sum() / moved.sum())
    return np.asarray(sums, np.float64)
