"""R2* of one timepoint for the SPIO estimate: fitted on its own multi-echo T2*w, put on
its segmentation grid; the baseline's R2* moved there with the registration.

The fit (``imaging.relaxometry``, Rician-aware non-linear) runs inside the cord grown by
``FIT_MARGIN_MM``. Voxels with no echo above the noise floor (very high iron) get
R2* = ``R2STAR_CAP_PER_S``, so iron there is a lower bound.
"""

from __future__ import annotations

import numpy as np

from imaging.errors import AnalysisError
from imaging.io import load
from imaging.registration import apply_transform
from imaging.relaxometry import fit_r2star
from imaging.rigid import RigidTransform
from imaging.volume import LabelVolume, Volume
from segmentation.injection_site import LabelledInput
from segmentation.quantify import grow_region

FIT_MARGIN_MM = 10.0

R2STAR_CAP_PER_S = 1000.0


def r2star_on_grid(item: LabelledInput, baseline_r2: Volume | None) -> Volume:
    """R2* (1/s) of the timepoint on its segmentation grid; with ``baseline_r2`` (the
    baseline's own R2* on its T2*w grid), that map moved onto this grid instead."""
    if baseline_r2 is not None:
        return apply_transform(baseline_r2, item.to_baseline, item.labels, fill=np.nan)
    r2 = fit_session_r2star(item)
    return apply_transform(r2, RigidTransform.identity(), item.labels, fill=np.nan)


def fit_session_r2star(item: LabelledInput) -> Volume:
    """R2* on the session's own T2*w grid inside the cord grown by FIT_MARGIN_MM (NaN outside)."""
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
