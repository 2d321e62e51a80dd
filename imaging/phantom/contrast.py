"""Tissue at a point -> signal: T2w intensity, multi-echo gradient-echo (T2*w) signal.

Signals are mixed, not parameters: a point that is part edema, part cord gives
(1 - e) S_cord + e S_edema, and a voxel is the mean of its points, so partial volume
acts on signal as in a real acquisition. T2*w: S(TE) = PD exp(-TE (R2* + r x iron)),
with r the relaxivity (1/s per ug Fe per mm3) and iron the local concentration.

Because the mixing is linear, a voxel's mean signal in any contrast is a fixed table of
channel values (one per static tissue, edema, graft) weighted by how much of each channel
its points hold: ``channel_weights`` gives the per-point weights once, ``channel_table``
the values for T2w and every echo, so all contrasts of a session come from one set of
per-voxel sums (the per-point ``t2w_points`` / ``gre_points`` are the reference they
reproduce). Iron breaks the linearity only where it is, and is added point by point there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.phantom.anatomy import GM, TISSUES, WM
from imaging.phantom.spec import TissueSpec


@dataclass(frozen=True)
class PointTissue:
    """Everything the contrast models need at a set of points (flat or gridded arrays)."""

    labels: np.ndarray              # int8 tissue index (anatomy.TISSUES)
    edema: np.ndarray | None        # 0-1 edema weight (cord points only)
    graft: np.ndarray | None        # 0-1 graft fraction
    graft_index: np.ndarray | None  # flat indices where graft > 0
    graft_texture: np.ndarray | None  # 1 + amplitude x texture at graft_index
    iron_ug_per_mm3: np.ndarray | None


def t2w_table(tissues: TissueSpec) -> np.ndarray:
    return np.array([tissues.t2w[name] for name in TISSUES], dtype=np.float32)


def gre_signal(tissues: TissueSpec, name: str, te_ms: float) -> float:
    return float(tissues.proton_density[name] * np.exp(-te_ms / 1000.0
                                                        * tissues.r2star_per_s[name]))


def gre_table(tissues: TissueSpec, te_ms: float) -> np.ndarray:
    return np.array([gre_signal(tissues, name, te_ms) for name in TISSUES], dtype=np.float32)


EDEMA_CHANNEL = len(TISSUES)
GRAFT_CHANNEL = len(TISSUES) + 1
N_CHANNELS = len(TISSUES) + 2


def channel_table(tissues: TissueSpec, echo_times_ms=()) -> np.ndarray:
    """(N_CHANNELS, 1 + echoes) float64: each channel's T2w value, then its GRE signal at
    every echo time (rows: the tissues of anatomy.TISSUES, edema, graft)."""
    t2w = [*(tissues.t2w[name] for name in TISSUES), tissues.t2w["edema"], tissues.t2w["graft"]]
    columns = [np.array(t2w, dtype=np.float64)]
    for te in echo_times_ms:
        names = (*TISSUES, "edema", "graft")
        columns.append(np.array([gre_signal(tissues, n, te) for n in names], dtype=np.float64))
    return np.stack(columns, axis=1)


@dataclass(frozen=True)
class ChannelWeights:
    """Per-point (flat) weights: static tissue (channel = its label), edema, graft."""

    static: np.ndarray
    edema: np.ndarray | None
    graft: np.ndarray | None        # graft fraction x texture, at PointTissue.graft_index


def channel_weights(pt: PointTissue) -> ChannelWeights:
    """How much of each point is its static tissue, edema and graft (the weights of _mix)."""
    static = np.ones(pt.labels.size, dtype=np.float32)
    edema = None
    if pt.edema is not None:
        labels = pt.labels.ravel()
        edema = np.where((labels == WM) | (labels == GM), pt.edema.ravel(), np.float32(0))
        static -= edema
    graft = None
    if pt.graft_index is not None and pt.graft_index.size:
        g = pt.graft.ravel()[pt.graft_index].astype(np.float32)
        keep = 1.0 - g
        static[pt.graft_index] *= keep
        if edema is not None:
            edema[pt.graft_index] *= keep
        graft = g * pt.graft_texture
    return ChannelWeights(static, edema, graft)


def point_values(pt: PointTissue, w: ChannelWeights, table: np.ndarray,
                 points: np.ndarray) -> np.ndarray:
    """(len(points), contrasts) signal at the given flat points (for the iron correction)."""
    out = w.static[points, None] * table[pt.labels.ravel()[points]]
    if w.edema is not None:
        out += w.edema[points, None] * table[EDEMA_CHANNEL]
    if w.graft is not None:
        graft = np.zeros(points.size, dtype=np.float64)
        where = np.searchsorted(pt.graft_index, points)
        hit = (where < pt.graft_index.size) & (
            pt.graft_index[np.minimum(where, pt.graft_index.size - 1)] == points)
        graft[hit] = w.graft[where[hit]]
        out += graft[:, None] * table[GRAFT_CHANNEL]
    return out


def _mix(values: np.ndarray, pt: PointTissue, edema_value: float, graft_value: float) -> np.ndarray:
    """Blend the static-tissue values with edema (cord points) and the graft."""
    flat = values.ravel()
    if pt.edema is not None:
        cord = (pt.labels == WM) | (pt.labels == GM)
        e = pt.edema
        flat = np.where(cord, (1.0 - e) * values + e * edema_value, values).ravel()
        flat = flat.astype(np.float32)
    if pt.graft_index is not None and pt.graft_index.size:
        g = pt.graft.ravel()[pt.graft_index]
        graft_signal = graft_value * pt.graft_texture
        flat[pt.graft_index] = (1.0 - g) * flat[pt.graft_index] + g * graft_signal
    return flat.reshape(values.shape)


def t2w_points(pt: PointTissue, tissues: TissueSpec) -> np.ndarray:
    """T2w intensity (normal cord = 1) at each point, before bias and noise."""
    values = t2w_table(tissues)[pt.labels]
    return _mix(values, pt, tissues.t2w["edema"], tissues.t2w["graft"])


def gre_points(pt: PointTissue, tissues: TissueSpec, te_ms: float,
               relaxivity_per_s_per_ug_per_mm3: float) -> np.ndarray:
    """Gradient-echo magnitude at echo time ``te_ms`` at each point."""
    values = gre_table(tissues, te_ms)[pt.labels]
    out = _mix(values, pt, gre_signal(tissues, "edema", te_ms), gre_signal(tissues, "graft", te_ms))
    if pt.iron_ug_per_mm3 is not None:
        out = out * np.exp(-te_ms / 1000.0 * relaxivity_per_s_per_ug_per_mm3
                           * pt.iron_ug_per_mm3).astype(np.float32)
    return out
