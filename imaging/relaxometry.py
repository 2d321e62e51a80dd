"""R2* maps from multi-echo gradient echo: S(t) = S0 exp(-R2* t), magnitude with Rician noise.

Two fits, both vectorised over voxels:

- ``"loglinear"``: weighted least squares on log S (weights S^2, the inverse variance of
  log S), using only the echoes whose signal is above the noise floor
  (``floor_snr`` x sigma) from the first echo on. Fast, and unbiased while the used
  echoes are well above the noise.
- ``"nonlinear"``: Levenberg-Marquardt on all echoes with the Rician noise floor in the
  model: each echo is predicted by the mean magnitude of a Rician signal,
  E[S] = sigma sqrt(pi/2) L_1/2(-A^2 / 2 sigma^2), A = S0 exp(-R2* t). Late echoes that
  sit on the noise floor still inform the fit instead of biasing it. Starts from the
  log-linear answer.

A voxel whose signal is above the floor at the first echo only is *saturated*: its
decay is too fast for these echo times. It is flagged and given the lower bound
R2* >= ln(S1 / floor) / (t2 - t1) rather than a number it cannot support. Voxels
outside the mask, or with no echo above the floor, get NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.special import i0e, i1e

from imaging.errors import InvalidVolumeError
from imaging.volume import LabelVolume, Volume, require_same_space

FIT_METHODS = ("loglinear", "nonlinear")
MAX_R2STAR_PER_S = 5000.0
_CHUNK_VOXELS = 65536
_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)
_ASYMPTOTIC_SNR = 8.0


@dataclass(frozen=True, eq=False)
class R2starMap:
    """R2* (1/s), S0, fit residual and validity on the grid of the echoes.

    ``residual``: RMS difference between measured and fitted signal over the echoes
    the fit used (signal units). ``n_valid_echoes``: echoes above the noise floor,
    counted from the first. ``saturated``: 1 where only the first echo is above the
    floor (R2* is then a lower bound).
    """

    r2star_per_s: Volume
    s0: Volume
    residual: Volume
    n_valid_echoes: Volume
    saturated: LabelVolume
    method: str
    echo_times_ms: tuple[float, ...]
    noise_sigma: float

    def to_dict(self) -> dict[str, Any]:
        r2 = np.asarray(self.r2star_per_s.array)
        finite = r2[np.isfinite(r2)]
        return {"method": self.method, "echo_times_ms": list(self.echo_times_ms),
                "noise_sigma": self.noise_sigma, "fitted_voxels": int(finite.size),
                "saturated_voxels": int(np.asarray(self.saturated.array).sum()),
                "median_r2star_per_s": float(np.median(finite)) if finite.size else math.nan}


# --- inputs -------------------------------------------------------------------------------
def _echo_times(volume: Volume, echo_times_ms: Sequence[float] | None) -> np.ndarray:
    if volume.array.ndim != 4:
        raise InvalidVolumeError(
            f"R2* needs a 4-D multi-echo volume (x, y, z, echo); got shape {volume.shape}. "
            "Load the whole multi-echo series, not one echo")
    te = echo_times_ms if echo_times_ms is not None else volume.meta.get("echo_times_ms")
    if te is None:
        raise InvalidVolumeError(
            f"no echo times for the {volume.n_volumes}-echo volume; pass echo_times_ms= "
            "(or load it with its DICOM headers / JSON sidecar so meta['echo_times_ms'] is set)")
    te = np.asarray(te, dtype=np.float64)
    if te.shape != (volume.n_volumes,) or te.size < 2:
        raise InvalidVolumeError(
            f"echo_times_ms has {te.size} values for {volume.n_volumes} echoes; expected one per "
            "echo and at least two echoes")
    if np.any(te <= 0) or np.any(np.diff(te) <= 0):
        raise InvalidVolumeError(f"echo_times_ms {te.tolist()}: expected positive, increasing "
                                 "times in milliseconds (one per echo, in echo order)")
    return te


def estimate_noise_sigma(volume: Volume, min_background_voxels: int = 1000) -> float:
    """Gaussian noise sigma of a magnitude image, from its air background (first echo).

    Background: non-zero voxels below an Otsu threshold. There the magnitude is
    Rayleigh distributed, whose median is sigma sqrt(2 ln 2). Raises when the volume
    has too little background (a tight crop): then pass ``noise_sigma`` yourself.
    """
    from skimage.filters import threshold_otsu
    first = np.asarray(volume.array if volume.array.ndim == 3 else volume.array[..., 0],
                       dtype=np.float64)
    values = first[first > 0]
    background = values[values < threshold_otsu(values)] if values.size > 1 else values
    if background.size < min_background_voxels:
        raise InvalidVolumeError(
            f"cannot estimate the noise from {Volume.__repr__(volume)}: only "
            f"{background.size} background voxels (expected >= {min_background_voxels}); pass "
            "noise_sigma= measured on the uncropped image")
    return float(np.median(background) / math.sqrt(2.0 * math.log(2.0)))


# --- the two fits -------------------------------------------------------------------------
def _valid_echoes(signal: np.ndarray, floor: float) -> np.ndarray:
    """Echoes above the floor, counted from the first until the first one below it."""
    return np.cumprod(signal > floor, axis=1).astype(bool)


def _loglinear(signal: np.ndarray, te_s: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted LS on log S over the valid echoes: returns (log S0, R2*)."""
    w = np.where(valid, signal ** 2, 0.0)
    y = np.log(np.where(valid, signal, 1.0))
    sw, swt, swtt = w.sum(1), w @ te_s, w @ te_s ** 2
    swy, swty = (w * y).sum(1), (w * y) @ te_s
    det = sw * swtt - swt ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (sw * swty - swt * swy) / det
        intercept = (swy - slope * swt) / sw
    return intercept, -slope


def _rician_mean(amplitude: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """E[magnitude] of a Rician signal and its derivative with respect to the amplitude.

    Exact (Bessel functions) below ``_ASYMPTOTIC_SNR`` x sigma; above, the series
    A + s^2/2A + s^4/8A^3 (error < 1e-4 sigma there, and much cheaper).
    """
    mean = np.empty_like(amplitude)
    slope = np.empty_like(amplitude)
    low = amplitude < _ASYMPTOTIC_SNR * sigma
    amp = amplitude[low]
    nu = amp ** 2 / (2.0 * sigma ** 2)
    a, b = i0e(nu / 2.0), i1e(nu / 2.0)
    mean[low] = sigma * _SQRT_HALF_PI * ((1.0 + nu) * a + nu * b)
    slope[low] = _SQRT_HALF_PI * (amp / sigma) * (a + b) / 2.0
    high = ~low
    ratio = (sigma / amplitude[high]) ** 2
    mean[high] = amplitude[high] * (1.0 + ratio / 2.0 + ratio ** 2 / 8.0)
    slope[high] = 1.0 - ratio / 2.0 - 3.0 * ratio ** 2 / 8.0
    return mean, slope


def _nonlinear(signal: np.ndarray, te_s: np.ndarray, sigma: float, log_s0: np.ndarray,
               r2: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on (log S0, R2*) with the Rician-mean model, per voxel.

    Voxels leave the loop once an accepted step moves R2* by less than 0.01 /s.
    """
    def cost_and_parts(sig, ls0, rate):
        amp = np.exp(ls0[:, None] - rate[:, None] * te_s)
        mean, slope = _rician_mean(amp, sigma)
        resid = sig - mean
        return (resid ** 2).sum(1), resid, slope * amp

    log_s0, r2 = log_s0.copy(), r2.copy()
    damping = np.full(r2.shape, 1e-3)
    cost, resid, d_ls0 = cost_and_parts(signal, log_s0, r2)
    active = np.arange(r2.size)
    for _ in range(iterations):
        if active.size == 0:
            break
        step0, step1 = _lm_step(d_ls0[active], resid[active], te_s, damping[active])
        new_ls0 = log_s0[active] + step0
        new_r2 = np.clip(r2[active] + step1, 0.0, MAX_R2STAR_PER_S)
        new_cost, new_resid, new_d = cost_and_parts(signal[active], new_ls0, new_r2)
        better = new_cost < cost[active]
        took = active[better]
        log_s0[took], r2[took], cost[took] = new_ls0[better], new_r2[better], new_cost[better]
        resid[took], d_ls0[took] = new_resid[better], new_d[better]
        damping[active] = np.where(better, damping[active] / 3.0, damping[active] * 4.0)
        done = better & (np.abs(step1) < 1e-2)
        active = active[~done]
    return log_s0, r2


def _lm_step(d_ls0: np.ndarray, resid: np.ndarray, te_s: np.ndarray,
             damping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Damped Gauss-Newton step for (log S0, R2*), solving the 2x2 systems in closed form."""
    d_r2 = -d_ls0 * te_s
    h00, h01, h11 = (d_ls0 ** 2).sum(1), (d_ls0 * d_r2).sum(1), (d_r2 ** 2).sum(1)
    g0, g1 = (d_ls0 * resid).sum(1), (d_r2 * resid).sum(1)
    a00, a11 = h00 * (1 + damping) + 1e-12, h11 * (1 + damping) + 1e-12
    det = a00 * a11 - h01 ** 2
    return (a11 * g0 - h01 * g1) / det, (a00 * g1 - h01 * g0) / det


# --- the public fit -----------------------------------------------------------------------
def _fit_voxels(signal: np.ndarray, te_s: np.ndarray, sigma: float, floor: float, method: str,
                iterations: int) -> dict[str, np.ndarray]:
    valid = _valid_echoes(signal, floor)
    n_valid = valid.sum(1)
    log_s0, r2 = _loglinear(signal, te_s, valid)
    saturated = n_valid == 1
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.log(signal[:, 0] / floor) / (te_s[1] - te_s[0])
        r2 = np.where(saturated, bound, r2)
        log_s0 = np.where(saturated, np.log(signal[:, 0]) + r2 * te_s[0], log_s0)
    fitted = n_valid >= 2
    if method == "nonlinear" and fitted.any():
        log_s0[fitted], r2[fitted] = _nonlinear(signal[fitted], te_s, sigma, log_s0[fitted],
                                                np.clip(r2[fitted], 0.0, MAX_R2STAR_PER_S),
                                                iterations)
        predicted = _rician_mean(np.exp(log_s0[:, None] - r2[:, None] * te_s), sigma)[0]
        used = np.ones_like(valid)
    else:
        predicted = np.exp(log_s0[:, None] - r2[:, None] * te_s)
        used = valid
    with np.errstate(invalid="ignore", divide="ignore"):
        residual = np.sqrt(np.where(used, (signal - predicted) ** 2, 0).sum(1) / used.sum(1))
    none = n_valid == 0
    return {"r2": np.where(none, np.nan, r2), "s0": np.where(none, np.nan, np.exp(log_s0)),
            "residual": np.where(none, np.nan, residual), "n_valid": n_valid,
            "saturated": saturated}


def fit_r2star(volume: Volume, echo_times_ms: Sequence[float] | None = None,
               mask: LabelVolume | None = None, method: str = "loglinear",
               noise_sigma: float | None = None, floor_snr: float = 3.0,
               iterations: int = 25) -> R2starMap:
    """R2* (1/s) per voxel of a multi-echo magnitude volume (echo on the fourth axis).

    ``echo_times_ms`` defaults to ``volume.meta["echo_times_ms"]``. ``mask`` limits the
    fit (others get NaN). ``noise_sigma`` (signal units) defaults to an estimate from
    the image background (:func:`estimate_noise_sigma`; pass it for tightly cropped
    volumes). An echo counts as above the noise floor when its signal exceeds
    ``floor_snr`` x sigma. ``iterations``: Levenberg-Marquardt steps (nonlinear only).
    """
    if method not in FIT_METHODS:
        raise InvalidVolumeError(f"method={method!r}; expected one of {FIT_METHODS}")
    te_ms = _echo_times(volume, echo_times_ms)
    sigma = estimate_noise_sigma(volume) if noise_sigma is None else float(noise_sigma)
    if not sigma > 0:
        raise InvalidVolumeError(f"noise_sigma={noise_sigma}; expected a positive noise level "
                                 "in signal units")
    if mask is not None:
        require_same_space(volume, mask)
        inside = np.asarray(mask.array) > 0
    else:
        inside = np.ones(volume.spatial_shape, dtype=bool)
    signal = np.asarray(volume.array, dtype=np.float64)[inside]
    parts = [_fit_voxels(signal[i:i + _CHUNK_VOXELS], te_ms / 1000.0, sigma, floor_snr * sigma,
                         method, iterations)
             for i in range(0, len(signal), _CHUNK_VOXELS)]
    return _as_map(volume, inside, parts, method, te_ms, sigma)


def _as_map(volume: Volume, inside: np.ndarray, parts: list[dict[str, np.ndarray]], method: str,
            te_ms: np.ndarray, sigma: float) -> R2starMap:
    def spread(key: str, fill: float, dtype) -> np.ndarray:
        out = np.full(volume.spatial_shape, fill, dtype=dtype)
        if parts:
            out[inside] = np.concatenate([p[key] for p in parts])
        return out

    meta = {"echo_times_ms": tuple(float(t) for t in te_ms), "r2star_fit": method,
            "source": volume.meta.get("source")}
    grid = volume.echo(0)

    def image(key: str, fill: float, dtype=np.float32) -> Volume:
        return Volume(spread(key, fill, dtype), grid.affine, meta)

    return R2starMap(r2star_per_s=image("r2", np.nan), s0=image("s0", np.nan),
                     residual=image("residual", np.nan),
                     n_valid_echoes=image("n_valid", 0, np.int16),
                     saturated=LabelVolume(spread("saturated", 0, np.uint8), grid.affine, meta),
                     method=method, echo_times_ms=meta["echo_times_ms"], noise_sigma=sigma)
