"""Write one SubjectResult in the BIDS-derivatives layout of ``segmentation.outputs``.

Timepoints whose scan was a DICOM series also get a DICOM SEG of their labels on that
series, and the subject a DICOM SR with the graft volume and surviving fraction of
those timepoints (``segmentation.dicom_seg`` / ``dicom_sr``). Every file goes in the
checksum manifest, so a rerun trusts none of them unless all are complete.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Mapping, Sequence

from imaging.atomic import write_text_atomic
from imaging.io import save
from imaging.tsv import write_tsv
from segmentation.outputs import (TIMEPOINT_COLUMNS, dicom_seg_path, dicom_sr_path, dseg_path,
                                  graft_probseg_path, transform_path, write_manifest)

log = logging.getLogger(__name__)

SourceFiles = Mapping[str, Sequence[Path]]  # session id -> the files of its DICOM series


def write_subject_outputs(result, out_dir: Path, include_report: bool = True,
                          include_phi: bool = False, subject=None) -> list[Path]:
    """Masks, probabilities, timepoints.tsv, survival.json, report, DICOM SEG/SR; manifest last.

    ``subject`` (the discovered ``imaging.study.Subject``) tells which timepoints were
    DICOM series; without it no DICOM output is written.
    """
    sid = result.subject_id
    base = Path(out_dir) / sid
    written = []
    for tp in result.timepoints:
        written.append(save(tp.images.labels, dseg_path(out_dir, sid, tp.session_id)))
        written.append(save(tp.images.graft_probability,
                            graft_probseg_path(out_dir, sid, tp.session_id)))
    written += _write_transforms(result, out_dir)
    written.append(write_tsv(base / f"{sid}_timepoints.tsv", TIMEPOINT_COLUMNS, result.to_table()))
    written.append(write_text_atomic(base / f"{sid}_survival.json",
                                     json.dumps(result.to_json(), indent=2)))
    if include_report:
        from segmentation.report import write_subject_report
        written.append(write_subject_report(result, base / f"{sid}_report.html",
                                            include_phi=include_phi))
    sources = dicom_sources(subject) if subject is not None else {}
    written += write_dicom_outputs(result, out_dir, sources)
    write_manifest(out_dir, sid, written)
    return written


def _write_transforms(result, out_dir: Path) -> list[Path]:
    """Each registered timepoint's transform from the baseline (ITK text file)."""
    from imaging.registration import save_itk_transform
    reference = next((tp.session_id for tp in result.timepoints if tp.is_baseline), None)
    return [save_itk_transform(tp.transform, transform_path(out_dir, result.subject_id,
                                                            tp.session_id, reference))
            for tp in result.timepoints if tp.transform is not None and reference is not None]


def dicom_sources(subject) -> dict[str, tuple[Path, ...]]:
    """Session id -> source files, for every timepoint whose analysed scan is a DICOM series."""
    from imaging.errors import AnalysisError
    from segmentation.pipeline import primary_scan
    found = {}
    for tp in subject.timepoints:
        try:
            scan = primary_scan(tp)
        except AnalysisError:
            continue  # such a session was not analysed (flagged by the pipeline)
        if isinstance(scan.path, tuple):
            found[tp.label] = first_echo(scan.path)
    return found


def first_echo(files: Sequence[Path]) -> tuple[Path, ...]:
    """The files of a series' first echo (the echo a multi-echo series' masks share a grid
    with; one frame per slice)."""
    import pydicom
    echoes = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["EchoNumbers"])
        echoes.setdefault(int(ds.get("EchoNumbers", 1) or 1), []).append(Path(path))
    return tuple(echoes[min(echoes)])


def write_dicom_outputs(result, out_dir: Path, sources: SourceFiles) -> list[Path]:
    """One SEG per DICOM timepoint (binary, cord / lesion / graft segments, tracking IDs
    '<subject> <label>' shared by every timepoint) and one SR over them; [] when none."""
    from segmentation.dicom_seg import write_dicom_seg
    from segmentation.dicom_sr import write_dicom_sr
    sid = result.subject_id
    rows = {row["session_id"]: row for row in result.to_table()}
    measured, series, segs = [], [], []
    for tp in result.timepoints:
        if tp.session_id not in sources:
            continue
        files = list(sources[tp.session_id])
        segs.append(write_dicom_seg(tp.images.labels, files,
                                    dicom_seg_path(out_dir, sid, tp.session_id), subject_id=sid))
        series.append(files)
        measured.append(graft_timepoint(rows[tp.session_id]))
    if not segs:
        return []
    return [*segs, write_dicom_sr(measured, series, segs, dicom_sr_path(out_dir, sid))]


def graft_timepoint(row: Mapping):
    """The SR's numbers for one timepoints.tsv row (an interval only where it is finite and
    holds its value; a missing fraction is reported as not quantifiable)."""
    from segmentation.dicom_sr import GraftTimepoint
    volume = float(row["graft_volume_mm3"])
    fraction = _finite(row["surviving_fraction"])
    return GraftTimepoint(
        str(row["session_id"]), float(row["days_post_transplant"]), volume,
        _interval(volume, row["graft_volume_ci_low_mm3"], row["graft_volume_ci_high_mm3"]),
        fraction, None if fraction is None else _interval(
            fraction, row["surviving_fraction_ci_low"], row["surviving_fraction_ci_high"]))


def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _interval(value: float, low, high) -> tuple[float, float] | None:
    low, high = _finite(low), _finite(high)
    if low is None or high is None or not low <= value <= high:
        return None
    return (low, high)
