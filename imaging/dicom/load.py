"""``load_dicom``: a DICOM folder or files -> one checked Volume in RAS+.

Steps: read every header without pixels; group by series and pick one (never
mix series); break files into frames and arrange them into slices x volumes
with geometry checks; then read each chosen file once for its pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from imaging.dicom.geometry import lps_to_ras
from imaging.dicom.metadata import series_meta
from imaging.dicom.pixels import read_pixels
from imaging.dicom.scan import Header, image_series, read_headers
from imaging.dicom.series import select_series, stack_of
from imaging.dicom.stack import Stack
from imaging.errors import DicomSeriesError
from imaging.volume import Volume


def _describe(source: Path | Sequence[Path]) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    paths = list(source)
    return str(paths[0]) if len(paths) == 1 else f"{len(paths)} files starting {paths[0]}"


def resample_even(array: np.ndarray, distances_mm: Sequence[float], step_mm: float) -> np.ndarray:
    """Linear interpolation along z from uneven slice distances onto an even grid."""
    d = np.asarray(distances_mm, dtype=float)
    n_out = int(round((d[-1] - d[0]) / step_mm)) + 1
    targets = d[0] + step_mm * np.arange(n_out)
    upper = np.clip(np.searchsorted(d, targets, side="right"), 1, len(d) - 1)
    weight = np.clip((targets - d[upper - 1]) / (d[upper] - d[upper - 1]), 0.0, 1.0)
    shape = (1, 1, n_out) + (1,) * (array.ndim - 3)
    weight = weight.reshape(shape).astype(np.float32)
    data = array.astype(np.float32, copy=False)
    return data[:, :, upper - 1] * (1 - weight) + data[:, :, upper] * weight


def _voxels(stack: Stack, headers: list[Header]) -> np.ndarray:
    array = read_pixels(stack, {h.path: h.dataset for h in headers})
    if stack.even:
        return array
    step = float(np.linalg.norm(stack.affine_lps[:3, 2]))
    return resample_even(array, stack.distances_mm, step)


def load_dicom(path_or_paths: Path | Sequence[Path], series: str | None = None, *,
               allow_uneven: bool = False, exclude_localizers: bool = False,
               min_slices: int = 1) -> Volume:
    """One DICOM series as a Volume: (x, y, z[, echo|time]) voxels, RAS+ affine, metadata.

    ``path_or_paths`` is a folder (searched recursively), one file or a list of files.
    ``series`` picks a series by UID or description (exact, or a unique case-insensitive
    substring) when there are several. ``allow_uneven`` resamples unevenly spaced slices
    onto an even grid instead of refusing them; ``exclude_localizers`` leaves out images
    in another plane instead of refusing them; ``min_slices`` refuses thinner stacks (use 2
    where a volume is required).
    """
    source = _describe(path_or_paths)
    groups = image_series(read_headers(path_or_paths, pixels=None), source)
    uid, headers = select_series(groups, series, source)
    stack = stack_of(headers, f"{source} (series {uid})", allow_uneven=allow_uneven,
                     exclude_localizers=exclude_localizers)
    if len(stack.grid) < min_slices:
        raise DicomSeriesError(
            f"{source}: series {uid} has {len(stack.grid)} slice(s); expected a volume of at "
            f"least {min_slices}. Point at the folder holding the whole series, not one image")
    affine = lps_to_ras(stack.affine_lps)
    meta = {"source": source, **series_meta(headers[0].dataset, stack.echo_times_ms),
            "original_affine": tuple(map(tuple, affine)), "fourth_axis": stack.fourth_axis,
            "n_files": len(headers), "excluded_files": tuple(str(p) for p in stack.excluded),
            "resampled_uneven_slices": not stack.even}
    return Volume(_voxels(stack, headers), affine, meta)
