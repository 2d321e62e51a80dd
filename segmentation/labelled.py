"""SPIO iron and 19F counts at every timepoint, for ``analyze_subject`` (labels 'spio', '19f').

The region. Today's segmentation model seldom labels a graft, and iron blooming and 19F
signal are measurable around the injection site whatever the T2w graft label says, so the
region never depends on the graft label alone. It is the *injection neighbourhood*: the
whole cord (labels 1-3 of the timepoint's segmentation) within ``HALF_LENGTH_MM`` of the
injection level along the cord axis, grown by a margin. The level is the graft's
probability-weighted centroid when the graft holds at least the detection volume, else the
lesion centroid (the cells are injected into the epicentre), else the cord centre.

- SPIO: R2* is fitted (``imaging.relaxometry``, Rician-aware non-linear fit) on each
  session's multi-echo T2*w inside the cord grown by ``FIT_MARGIN_MM``, put on the
  timepoint's segmentation grid, and the pre-injection baseline's R2* is moved there with
  the registration of ``analyze_subject``. Iron = sum of delta-R2* / relaxivity over the
  voxels within ``BLOOM_MARGIN_MM`` (3 sd of the widest blooming kernel of the phantom
  contract, 1.5 mm) of the iron clusters found in the neighbourhood, within
  ``CSF_MARGIN_MM`` of the cord (blooming reaches into the CSF). The clusters are seeded on
  delta-R2* minus its median along each line of voxels along the cord
  (``along_cord_background``), so what runs along the whole cord does not join them into
  one. The sum has a background subtracted: the
  median of the same sum over copies of the region shifted along the cord (where no iron
  is). On 3-4 mm slices a baseline in another plane mixes CSF into other voxels than the
  timepoint does, so delta-R2* is not zero at the cord's edges even without iron; edema
  resolving and cysts forming change R2* too. The copies see the same geometry, so their
  median removes what is not iron and their spread is the sum's uncertainty (it holds the
  spatial correlation of the R2* noise; never below independent voxels with
  ``CORRELATED_VOXELS`` voxels per independent sample). The per-voxel delta-R2* noise
  (for the seeds) is the robust spread over the whole cord. The relaxivity and the iron
  per cell are assumptions listed apart; their uncertainty is not in the interval.
- 19F (``segmentation.fluorine_region``): the 19F voxels that touch the neighbourhood.

Voxels with no echo above the noise floor (very high iron) get R2* = ``R2STAR_CAP_PER_S``,
so iron there is a lower bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt, label as connected
from scipy.ndimage import sum_labels as labelled_sum

from imaging.errors import GraftwatchError
from imaging.rigid import RigidTransform
from imaging.study import Timepoint
from imaging.volume import LabelVolume, Volume
from segmentation.cells import CellEstimate, IronMeasurement, iron_mass, spio
from segmentation.config import AnalysisConfig
from segmentation.quantify import GraftMeasurement, floored, grow_region
from segmentation.records import json_safe

HALF_LENGTH_MM = 25.0
BLOOM_MARGIN_MM = 4.5
CSF_MARGIN_MM = 1.0
SEED_SIGMAS = 3.0
MIN_APERTURE_FILL = 0.8
MIN_LINE_VOXELS = 5
MIN_LINE_FRACTION = 0.6
CLUSTER_SIGMAS = 10.0
CORRELATED_VOXELS = 4.0
FIT_MARGIN_MM = 10.0
R2STAR_CAP_PER_S = 1000.0
SPIO_REGION = (f"voxels within {BLOOM_MARGIN_MM:g} mm of a voxel whose delta-R2* exceeds "
               f"{SEED_SIGMAS:g} noise sd (in clusters of at least {CLUSTER_SIGMAS:g} sd) and "
               f"within {CSF_MARGIN_MM:g} mm of the cord, seeds taken in "
               "the injection neighbourhood (the cord within "
               f"{HALF_LENGTH_MM:g} mm of the injection level along the cord: graft centroid, "
               "else lesion centroid); the whole neighbourhood when none does; it does not "
               "depend on the graft label")


@dataclass(frozen=True, eq=False)
class LabelledInput:
    """What one timepoint offers the labelled estimates (all on its segmentation grid)."""

    timepoint: Timepoint
    labels: LabelVolume
    graft_probability: Volume
    to_baseline: RigidTransform | None   # target points -> baseline points; None if none


@dataclass(frozen=True)
class LabelledResult:
    """One timepoint's SPIO or 19F cell estimate, with the physical quantity behind it."""

    estimate: CellEstimate
    iron: IronMeasurement | None = None
    fluorine_atoms: tuple[float, float, float] | None = None   # value, low, high
    region: str = ""

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"cell_estimate": self.estimate, "iron": self.iron,
                          "fluorine_atoms": self.fluorine_atoms, "region": self.region})


def labelled_estimates(inputs: Sequence[LabelledInput], base_index: int | None,
                       measurements: Sequence[GraftMeasurement],
                       config: AnalysisConfig) -> tuple[LabelledResult, ...]:
    """SPIO or 19F results, one per input (same order); () for label-free subjects."""
    if config.label == "spio":
        return spio_estimates(inputs, base_index, measurements, config)
    if config.label == "19f":
        from segmentation.fluorine_region import fluorine_estimates
        return fluorine_estimates(inputs, config)
    return ()


def injection_level(labels: LabelVolume, graft_probability: Volume,
                    min_graft_volume_mm3: float) -> np.ndarray | None:
    """RAS mm point of the injection: graft centroid, else lesion centroid, else cord centre."""
    label_array = np.asarray(labels.array)
    weights = floored(np.asarray(graft_probability.array, np.float64))
    if weights.sum() * labels.voxel_volume_mm3 >= min_graft_volume_mm3:
        idx = np.argwhere(weights > 0)
        return labels.world_coordinates(np.average(idx, axis=0, weights=weights[weights > 0]))[0]
    for mask in (label_array == 2, label_array >= 1):
        if mask.any():
            return labels.world_coordinates(np.argwhere(mask)).mean(axis=0)
    return None


def injection_core(labels: LabelVolume, graft_probability: Volume,
                   min_graft_volume_mm3: float) -> LabelVolume:
    """The cord within HALF_LENGTH_MM of the injection level along the cord's main axis."""
    cord = np.asarray(labels.array) >= 1
    out = np.zeros(cord.shape, np.uint8)
    level = injection_level(labels, graft_probability, min_graft_volume_mm3)
    if level is not None:
        idx = np.argwhere(cord)
        points = labels.world_coordinates(idx)
        axis = _main_axis(points)
        near = np.abs((points - level) @ axis) <= HALF_LENGTH_MM
        out[tuple(idx[near].T)] = 1
    return LabelVolume(out, labels.affine)


def cord_axis(cord: LabelVolume) -> np.ndarray:
    """Unit RAS direction of the cord's main axis (S when the mask is too small to tell)."""
    inside = np.asarray(cord.array) > 0
    return _main_axis(cord.world_coordinates(np.argwhere(inside)) if inside.any()
                      else np.zeros((0, 3)))


def _main_axis(points: np.ndarray) -> np.ndarray:
    if len(points) < 3:
        return np.array([0.0, 0.0, 1.0])
    eigvals, eigvecs = np.linalg.eigh(np.cov(points.T))
    return eigvecs[:, int(np.argmax(eigvals))]


def not_quantifiable(method: str, tp: Timepoint, reason: str,
                     assumptions: tuple[str, ...] = ()) -> CellEstimate:
    return CellEstimate(method, None, None, None, "not_quantifiable", reason, assumptions,
                        tp.label, float(tp.days or 0.0))


# --- SPIO -----------------------------------------------------------------------------------
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
        import warnings
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


def r2star_on_grid(item: LabelledInput, baseline_r2: Volume | None) -> Volume:
    """R2* (1/s) of the timepoint on its segmentation grid; with ``baseline_r2`` (the
    baseline's own R2* on its T2*w grid), that map moved onto this grid instead."""
    from imaging.registration import apply_transform
    if baseline_r2 is not None:
        return apply_transform(baseline_r2, item.to_baseline, item.labels, fill=np.nan)
    r2 = fit_session_r2star(item)
    return apply_transform(r2, RigidTransform.identity(), item.labels, fill=np.nan)


def fit_session_r2star(item: LabelledInput) -> Volume:
    """R2* on the session's own T2*w grid inside the cord grown by FIT_MARGIN_MM (NaN outside)."""
    from imaging.errors import AnalysisError
    from imaging.io import load
    from imaging.registration import apply_transform
    from imaging.relaxometry import fit_r2star
    scan = item.timepoint.scans.get("T2starw")
    if scan is None:
        raise AnalysisError(f"session {item.timepoint.label} has no multi-echo T2*w scan "
                            f"(found {sorted(item.timepoint.scans)}); SPIO needs one per session")
    echoes = load(scan.path)
    cord = LabelVolume((np.asarray(item.labels.array) >= 1).astype(np.uint8), item.labels.affine)
    mask = apply_transform(grow_region(cord, FIT_MARGIN_MM), RigidTransform.identity(),
                           echoes.echo(0) if echoes.array.ndim == 4 else echoes)
    fitted = fit_r2star(echoes, mask=mask, method="nonlinear",
                        noise_sigma=fit_noise_sigma(echoes, cord))
    r2 = np.asarray(fitted.r2star_per_s.array, np.float64)
    inside = np.asarray(mask.array) > 0
    r2 = np.where(inside & ~np.isfinite(r2), R2STAR_CAP_PER_S, np.minimum(r2, R2STAR_CAP_PER_S))
    return Volume(r2.astype(np.float32), fitted.r2star_per_s.affine)


def fit_noise_sigma(echoes: Volume, cord: LabelVolume) -> float:
    """Noise sigma of a multi-echo image from mono-exponential fit residuals in the cord.

    The air background of a spine field of view is often too small for a background
    estimate; in the cord every echo is well above the noise, the log-linear fit's residual
    sum of squares is sigma^2 chi2(n - 2), so sigma^2 = median(RSS) / median(chi2(n - 2)).
    """
    from scipy.stats import chi2
    from imaging.errors import AnalysisError
    from imaging.registration import apply_transform
    from imaging.relaxometry import fit_r2star
    grid = echoes.echo(0)
    mask = apply_transform(cord, RigidTransform.identity(), grid)
    n = echoes.n_volumes
    if not np.asarray(mask.array).any() or n < 3:
        raise AnalysisError(f"cannot measure the T2*w noise: {int(np.asarray(mask.array).sum())} "
                            f"cord voxels and {n} echoes; expected a cord and at least 3 echoes")
    fitted = fit_r2star(echoes, mask=mask, method="loglinear", noise_sigma=1e-9, floor_snr=1.0)
    residual = np.asarray(fitted.residual.array, np.float64)[np.asarray(mask.array) > 0]
    rss = (residual[np.isfinite(residual)] ** 2) * n
    return float(np.sqrt(np.median(rss) / chi2.median(n - 2)))


def distance_to(mask: LabelVolume, points_ras: np.ndarray) -> np.ndarray:
    """Distance (mm) from each RAS point to ``mask`` (linear in the mask's distance map);
    points outside the mask's grid are infinitely far."""
    from scipy.ndimage import map_coordinates
    inside = np.asarray(mask.array) > 0
    if not inside.any():
        return np.full(len(points_ras), np.inf)
    distance = distance_transform_edt(~inside, sampling=mask.spacing)
    inv = np.linalg.inv(mask.affine)
    ijk = points_ras @ inv[:3, :3].T + inv[:3, 3]
    out = map_coordinates(distance, ijk.T, order=1, mode="nearest")
    outside = np.any((ijk < -0.5) | (ijk > np.asarray(inside.shape) - 0.5), axis=1)
    return np.where(outside, np.inf, out)
