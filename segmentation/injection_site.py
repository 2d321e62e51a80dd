"""The injection site of one timepoint, shared by the SPIO and 19F estimates.

Today's segmentation model seldom labels a graft, and iron blooming and 19F signal are
measurable around the injection site whatever the T2w graft label says, so the region of
the labelled estimates never depends on the graft label alone. It is the *injection
neighbourhood* (``injection_core``): the whole cord (labels 1-3 of the timepoint's
segmentation) within ``HALF_LENGTH_MM`` of the injection level along the cord axis. The
level is the graft's probability-weighted centroid when the graft holds at least the
detection volume, else the lesion centroid (the cells are injected into the epicentre),
else the cord centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt

from imaging.rigid import RigidTransform
from imaging.study import Timepoint
from imaging.volume import LabelVolume, Volume
from segmentation.cells import CellEstimate, IronMeasurement
from segmentation.quantify import floored
from segmentation.records import json_safe

HALF_LENGTH_MM = 25.0


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
