"""Write one SubjectResult in the BIDS-derivatives layout of ``segmentation.outputs``."""

from __future__ import annotations

import json
from pathlib import Path

from imaging.atomic import write_text_atomic
from imaging.io import save
from imaging.tsv import write_tsv
from segmentation.outputs import (TIMEPOINT_COLUMNS, dseg_path, graft_probseg_path,
                                  transform_path, write_manifest)


def write_subject_outputs(result, out_dir: Path, include_report: bool = True,
                          include_phi: bool = False) -> list[Path]:
    """Masks, probabilities, timepoints.tsv, survival.json, report; the manifest last."""
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
    write_manifest(out_dir, sid, written)
    return written


def _write_transforms(result, out_dir: Path) -> list[Path]:
    """Each registered timepoint's transform from the baseline (ITK text file)."""
    from imaging.registration import save_itk_transform
    reference = next((tp.session_id for tp in result.timepoints if tp.is_baseline), None)
    return [save_itk_transform(tp.transform, transform_path(out_dir, result.subject_id,
                                                            tp.session_id, reference))
            for tp in result.timepoints if tp.transform is not None and reference is not None]
