"""Put a simulated graft into a real scan, inside its real cord mask, with known truth.

The graft is one ellipsoid deposit with its long axis along the local cord direction,
centred deep inside the mask. Its partial-volume fraction is computed on sub-voxels
(about 0.25 mm) of the scan's own grid, clipped to the mask voxel by voxel and scaled so
that sum(fraction) x voxel volume = living cells / packing density. Intensity follows the
contrast model relative to the scan's own cord intensity (median inside the mask):
T2w graft = 1.25-1.45 x cord with ~10 % texture; T2*w graft = PD and R2* ratio to cord at
each echo time, and for SPIO the iron's R2* spread by the blooming kernel. Noise of the
scan's own level is added where the graft replaces tissue, so it is not smoother than
its surroundings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from imaging import physics
from imaging.errors import PhantomError
from imaging.phantom import contract as C
from imaging.phantom.graft import ellipsoid_fraction, solve_scale, texture
from imaging.phantom.grid import Grid, supersample
from imaging.phantom.render import Textures
from imaging.phantom.results import SessionTruth
from imaging.phantom.sampling import PROTON_DENSITY
from imaging.volume import LabelVolume, Volume, require_same_space

INSERT_STEP_MM = 0.25
DIRECTION_RADIUS_MM = 15.0
BLOOM_TRUNCATE = 3.0
DEFAULT_T2STAR_TE_MS = 15.0


@dataclass(frozen=True)
class InsertedGraft:
    """The scan with a graft, the truth masks on its grid, and the numbers behind them."""

    image: Volume
    graft_probseg: Volume
    dseg: LabelVolume          # 1 cord (the real mask), 3 graft (majority)
    truth: SessionTruth
    centre_mm: tuple[float, float, float]
    label: str


def insert_graft(image: Volume, cord_mask: LabelVolume, rng: np.random.Generator,
                 label: str = "none", cells: float | None = None,
                 packing_density_cells_per_mm3: float | None = None) -> InsertedGraft:
    """Insert a graft of ``cells`` living cells (random in the contract when None)."""
    if label not in ("none", "spio"):
        raise PhantomError(f"label = {label!r}: a graft can be inserted into a T2w/T2*w scan "
                           "as 'none' (label-free) or 'spio'; a real scan has no 19F image")
    require_same_space(image, cord_mask)
    mask = np.asarray(cord_mask.array) > 0
    if mask.sum() < 8:
        raise PhantomError(f"cord mask has {int(mask.sum())} voxels; expected a cord "
                           "segmentation of the scan (at least 8 voxels)")
    cells = float(cells if cells is not None else round(rng.uniform(*C.INJECTED_CELLS), -3))
    density = float(packing_density_cells_per_mm3 or rng.uniform(*C.PACKING_DENSITY_CELLS_PER_MM3))
    volume_mm3 = cells / density
    centre_idx, depth_mm = _deep_point(mask, image.spacing, rng)
    centre = image.world_coordinates([centre_idx])[0]
    axes = _cord_axes(image, mask, centre)
    width = min(rng.uniform(*C.DEPOSIT_WIDTH_MM), 1.6 * depth_mm)
    length = min(6 * volume_mm3 / (math.pi * width ** 2), C.DEPOSIT_LENGTH_MM[1])
    half = np.array([width, width, length]) / 2
    iron_ug = cells * rng.uniform(*C.IRON_PG_PER_CELL) / physics.PICOGRAMS_PER_MICROGRAM \
        if label == "spio" else 0.0
    bloom = rng.uniform(0.6, 1.5)
    reach = max(half) * 2.5 + (BLOOM_TRUNCATE * bloom if label == "spio" else 0) + 2
    grid = Grid(image.spatial_shape, image.affine)
    lo, hi = _index_box(image, centre, reach)
    pts = supersample(grid, np.eye(4), lo, hi, INSERT_STEP_MM)
    points = np.stack([pts.x.ravel(), pts.y.ravel(), pts.z.ravel()], axis=-1)
    allowed = _repeat(mask[pts.slices], pts.sub).ravel()
    scale, frac = solve_scale(
        lambda s: ellipsoid_fraction(points, centre, axes, half * s, pts.step_mm) * allowed,
        volume_mm3, pts.point_volume_mm3, 1.0)
    frac = frac.reshape(pts.x.shape)
    graft_voxels = np.zeros(image.spatial_shape, dtype=np.float32)
    graft_voxels[pts.slices] = pts.average(frac)
    textures = Textures.draw(rng)
    tex = 1.0 + 0.1 * texture(pts.x, pts.y, pts.z, textures.waves_per_mm, textures.phases)
    iron = _iron(frac, iron_ug, bloom, pts) if iron_ug > 0 else None
    new = _contrast(image, mask, graft_voxels, pts, frac, tex, iron, rng)
    dseg = mask.astype(np.int16)
    dseg[graft_voxels >= 0.5] = 3
    truth = SessionTruth(volume_mm3, cells, None, iron_ug, 0.0)
    meta = {"label": "graft", "source": image.meta.get("source")}
    return InsertedGraft(image.with_array(new), Volume(graft_voxels, image.affine, meta),
                         LabelVolume(dseg, image.affine, {"contrast": "dseg"}), truth,
                         tuple(float(v) for v in centre), label)


def _deep_point(mask: np.ndarray, spacing, rng) -> tuple[np.ndarray, float]:
    """A random voxel among the deepest inside the mask, and its depth (mm)."""
    depth = distance_transform_edt(mask, sampling=spacing)
    candidates = np.argwhere(depth >= 0.7 * depth.max())
    return candidates[rng.integers(len(candidates))], float(depth.max())


def _cord_axes(image: Volume, mask: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Rows: two unit axes across the cord and the cord direction (principal axis nearby)."""
    world = image.world_coordinates(np.argwhere(mask))
    near = world[np.linalg.norm(world - centre, axis=1) < DIRECTION_RADIUS_MM]
    _, _, vt = np.linalg.svd(near - near.mean(axis=0), full_matrices=False)
    along = vt[0]
    across = np.cross(along, [1.0, 0.0, 0.0])
    if np.linalg.norm(across) < 0.1:
        across = np.cross(along, [0.0, 1.0, 0.0])
    across /= np.linalg.norm(across)
    return np.stack([across, np.cross(along, across), along])


def _index_box(image: Volume, centre: np.ndarray, reach: float):
    idx = np.linalg.solve(image.affine[:3, :3], centre - image.affine[:3, 3])
    half = reach / np.asarray(image.spacing)
    lo = np.maximum(np.floor(idx - half).astype(int), 0)
    hi = np.minimum(np.ceil(idx + half).astype(int) + 1, image.spatial_shape)
    return tuple(lo), tuple(hi)


def _repeat(values: np.ndarray, sub) -> np.ndarray:
    for axis, n in enumerate(sub):
        values = np.repeat(values, n, axis=axis)
    return values


def _iron(frac: np.ndarray, iron_ug: float, bloom_mm: float, pts) -> np.ndarray:
    density = iron_ug * frac / (frac.sum() * pts.point_volume_mm3)
    sigma = [bloom_mm / s for s in pts.step_per_axis_mm]
    return gaussian_filter(density.astype(np.float64), sigma, mode="constant",
                           truncate=BLOOM_TRUNCATE)


def _contrast(image: Volume, mask, graft_voxels, pts, frac, tex, iron, rng) -> np.ndarray:
    arr = np.asarray(image.array, dtype=np.float32)
    cord_level = float(np.median(arr[mask] if arr.ndim == 3 else arr[mask][:, 0]))
    noise_sd = _noise_sd(arr if arr.ndim == 3 else arr[..., 0], mask)
    tex_voxels = pts.average(frac * tex) / np.maximum(pts.average(frac), 1e-12)
    out = np.array(arr, dtype=np.float32)
    t2star = image.meta.get("contrast") == "T2starw"
    tes = image.meta.get("echo_times_ms") or (DEFAULT_T2STAR_TE_MS,)
    box = pts.slices
    g = graft_voxels[box]
    ratio_t2w = rng.uniform(*C.T2W_RANGES["graft"])
    r2_cord = rng.uniform(*C.R2STAR_RANGES_PER_S["white_matter"])
    r2_graft = rng.uniform(*C.R2STAR_RANGES_PER_S["graft"])
    n_echo = 1 if arr.ndim == 3 else arr.shape[3]
    for e in range(n_echo):
        te = tes[min(e, len(tes) - 1)] / 1000.0
        if t2star:
            ratio = PROTON_DENSITY["graft"] / PROTON_DENSITY["white_matter"] \
                * math.exp(-te * (r2_graft - r2_cord))
            level = cord_level * math.exp(-(te - tes[0] / 1000.0) * r2_cord)
        else:
            ratio, level = ratio_t2w, cord_level
        view = out[box] if arr.ndim == 3 else out[box + (e,)]
        mixed = (1 - g) * view + g * (ratio * level * tex_voxels
                                      + rng.normal(0.0, noise_sd, g.shape))
        if iron is not None and t2star:
            relax = physics.DEFAULT_R2STAR_RELAXIVITY_PER_S_PER_UG_PER_MM3
            mixed = mixed * pts.average(np.exp(-te * relax * iron).astype(np.float32))
        view[...] = np.where(g > 0, mixed, view) if iron is None else mixed
    return out


def _noise_sd(arr: np.ndarray, mask: np.ndarray) -> float:
    """Robust noise sd inside the cord from neighbouring-voxel differences."""
    diff = np.diff(arr, axis=0)[mask[1:] & mask[:-1]]
    if diff.size < 4:
        return 0.0
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / math.sqrt(2.0))


