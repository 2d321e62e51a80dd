"""Frames of one series -> a checked grid of slices x volumes (echoes or repetitions) and its affine.

Slices are ordered by their position along the image-plane normal, never by
InstanceNumber or file name. Frames in another plane (a localizer slipped into
the series) are refused or, when asked, excluded. Several echo times give an
"echo" fourth axis; several images at one position with one echo time give a
"time" axis ordered by acquisition.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imaging.dicom.frames import Frame
from imaging.dicom.geometry import (affine_lps, check_even_spacing, check_no_tilt, plane_of,
                                    same_orientation, slice_normal)
from imaging.errors import DicomSeriesError

log = logging.getLogger(__name__)
POSITION_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class Stack:
    """Frames arranged as grid[slice][volume], sorted along the normal, with the LPS affine."""

    grid: tuple[tuple[Frame, ...], ...]
    affine_lps: np.ndarray
    fourth_axis: str | None
    echo_times_ms: tuple[float, ...]
    distances_mm: tuple[float, ...]
    even: bool
    excluded: tuple[Path, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        first = self.grid[0][0]
        dims = (first.columns, first.rows, len(self.grid))
        return dims + (len(self.grid[0]),) if len(self.grid[0]) > 1 else dims


def _drop_other_planes(frames: list[Frame], source: str, exclude: bool) -> tuple[list[Frame], tuple]:
    counts = Counter(f.orientation for f in frames)
    main = max(counts, key=counts.get)
    odd = [f for f in frames if not same_orientation(f.orientation, main)]
    if not odd:
        return frames, ()
    files = sorted({f.path for f in odd})
    if not exclude:
        shown = ", ".join(f"{p.name} ({plane_of(o)})" for p, o in
                          sorted({(f.path, f.orientation) for f in odd})[:5])
        raise DicomSeriesError(
            f"{source}: {len(files)} file(s) lie in another plane than the other "
            f"{len(frames) - len(odd)} images ({plane_of(main)}): {shown}"
            f"{' ...' if len(files) > 5 else ''}. A localizer is probably mixed into the series; "
            "remove those files, or pass exclude_localizers=True (command line: "
            "--exclude-localizers) to leave them out")
    log.warning("%s: leaving out %d image(s) in another plane (localizer): %s", source,
                len(odd), ", ".join(p.name for p in files[:5]))
    return [f for f in frames if same_orientation(f.orientation, main)], tuple(files)


def _check_same_matrix(frames: list[Frame], source: str) -> None:
    kinds = Counter((f.rows, f.columns, f.pixel_spacing_mm) for f in frames)
    if len(kinds) > 1:
        shown = "; ".join(f"{n} image(s) {r}x{c} at {s[0]:g}x{s[1]:g} mm"
                          for (r, c, s), n in kinds.most_common())
        raise DicomSeriesError(f"{source}: images of different size or pixel spacing ({shown}); "
                               "expected one matrix per series. Choose one series or remove "
                               "the odd images")


def _check_one_component(frames: list[Frame], source: str) -> None:
    kinds = Counter(f.component for f in frames if f.component)
    if len(kinds) > 1:
        shown = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        raise DicomSeriesError(
            f"{source}: the series mixes image components ({shown} images, e.g. "
            f"{next(f.path for f in frames if f.component != kinds.most_common(1)[0][0])}); "
            "they must not be stacked together. Load the files of one component (pass them "
            "as a list, or move them to their own folder)")


def _echo_groups(frames: list[Frame]) -> list[list[Frame]]:
    groups: dict[object, list[Frame]] = defaultdict(list)
    for f in frames:
        key = round(f.echo_time_ms, 3) if f.echo_time_ms is not None else f.echo_number
        groups[key].append(f)
    return [groups[k] for k in sorted(groups, key=lambda k: (k is None, k or 0))]


def _by_position(frames: list[Frame], normal: np.ndarray) -> list[list[Frame]]:
    """Cluster frames that share a slice position, clusters sorted along the normal."""
    dist = np.array([np.dot(f.position_lps, normal) for f in frames])
    order = np.argsort(dist, kind="stable")
    clusters: list[list[Frame]] = []
    last = None
    for i in order:
        if last is None or dist[i] - last > POSITION_TOLERANCE_MM:
            clusters.append([])
        clusters[-1].append(frames[i])
        last = dist[i]
    return [sorted(c, key=lambda f: f.temporal_key) for c in clusters]


def _check_complete(clusters: list[list[Frame]], normal: np.ndarray, source: str) -> int:
    counts = Counter(len(c) for c in clusters)
    if len(counts) == 1:
        return next(iter(counts))
    usual = counts.most_common(1)[0][0]
    odd = [f"{np.dot(c[0].position_lps, normal):.3f} mm ({len(c)} images)"
           for c in clusters if len(c) != usual][:6]
    raise DicomSeriesError(
        f"{source}: slice positions hold different numbers of images (usually {usual}; "
        f"{', '.join(odd)}); a repetition or an echo is incomplete. Load a complete series")


def _grid(frames: list[Frame], normal: np.ndarray, source: str):
    echoes = _echo_groups(frames)
    per_echo = [_by_position(group, normal) for group in echoes]
    repeats = [_check_complete(clusters, normal, source) for clusters in per_echo]
    n_slices = {len(clusters) for clusters in per_echo}
    if len(echoes) > 1:
        if len(n_slices) > 1 or max(repeats) > 1:
            raise DicomSeriesError(
                f"{source}: echoes hold {sorted(len(c) for c in per_echo)} slice positions with "
                f"{sorted(set(repeats))} image(s) each; expected the same slices once per echo. "
                "Repeated multi-echo series are not supported; split them by acquisition")
        tes = tuple(float(g[0].echo_time_ms or 0.0) for g in echoes)
        grid = tuple(tuple(c[z][0] for c in per_echo) for z in range(len(per_echo[0])))
        return grid, "echo", tes
    tes = (echoes[0][0].echo_time_ms,) if echoes[0][0].echo_time_ms is not None else ()
    grid = tuple(tuple(c) for c in per_echo[0])
    return grid, ("time" if repeats[0] > 1 else None), tes


def _slice_step(grid, normal: np.ndarray, source: str, allow_uneven: bool):
    positions = np.array([row[0].position_lps for row in grid], dtype=float)
    distances = positions @ normal
    if len(grid) == 1:
        return normal * (grid[0][0].thickness_mm or 1.0), distances, True
    check_no_tilt(positions, normal, source)
    try:
        check_even_spacing(positions, distances, source)
        even = True
    except DicomSeriesError:
        if not allow_uneven:
            raise
        log.warning("%s: uneven slice spacing; resampling onto an even grid as asked", source)
        even = False
    if even:
        return (positions[-1] - positions[0]) / (len(grid) - 1), distances, True
    return normal * float(np.median(np.diff(distances))), distances, False


def assemble(frames: list[Frame], source: str, allow_uneven: bool = False,
             exclude_localizers: bool = False) -> Stack:
    """Check and arrange the frames of one series (see the module docstring)."""
    frames, excluded = _drop_other_planes(frames, source, exclude_localizers)
    _check_same_matrix(frames, source)
    _check_one_component(frames, source)
    normal = slice_normal(frames[0].orientation)
    grid, fourth_axis, tes = _grid(frames, normal, source)
    step, distances, even = _slice_step(grid, normal, source, allow_uneven)
    first = grid[0][0]
    affine = affine_lps(first.orientation, first.pixel_spacing_mm, first.position_lps, step)
    return Stack(grid=grid, affine_lps=affine, fourth_axis=fourth_axis,
                 echo_times_ms=tuple(float(t) for t in tes),
                 distances_mm=tuple(float(d) for d in distances), even=even, excluded=excluded)
