"""Tissue at a point -> signal: T2w intensity, multi-echo gradient-echo (T2*w) signal.

Signals are mixed, not parameters: a point that is part edema, part cord gives
(1 - e) S_cord + e S_edema, and a voxel is the mean of its points, so partial volume
acts on signal as in a real acquisition. T2*w: S(TE) = PD exp(-TE (R2* + r x iron)),
with r the relaxivity (1/s per ug Fe per mm3) and iron the local concentration.
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
