"""A phantom subject written as a DICOM tree: each BIDS session's T2w as one MR series.

The DICOM geometry is taken from the NIfTI affine (x = column, y = row, z = slice,
RAS -> LPS), so the series holds the same voxels on the same grid. Each session is a
study dated transplant date + its (rounded) days.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from imaging.dicom.synthetic import SeriesSpec, write_series
from imaging.io import load
from imaging.study import discover_subject

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


def series_spec_for(affine: np.ndarray, n_slices: int, **tags) -> SeriesSpec:
    """SeriesSpec whose slices lie on the voxel grid of a RAS ``affine`` (x = column, y = row)."""
    lps = LPS_FROM_RAS @ np.asarray(affine, dtype=float)[:3]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    row_dir, col_dir = lps[:, 0] / spacing[0], lps[:, 1] / spacing[1]
    step = float(lps[:, 2] @ np.cross(row_dir, col_dir))
    return SeriesSpec(orientation=(*row_dir, *col_dir), origin_lps=tuple(lps[:, 3]),
                      pixel_spacing_mm=(float(spacing[1]), float(spacing[0])),
                      slice_spacing_mm=abs(step),
                      slice_offsets_mm=tuple(step * k for k in range(n_slices)), **tags)


def write_dicom_subject(bids_subject: Path, out: Path, transplant: dt.date, patient_id: str,
                        seed: int = 0) -> Path:
    """Write every session's T2w of a BIDS phantom subject as a DICOM study under ``out``."""
    rng = np.random.default_rng(seed)
    subject = discover_subject(bids_subject)
    for number, tp in enumerate(subject.timepoints):
        volume = load(tp.scans["T2w"].path)
        pixels = np.clip(np.round(volume.array), 0, 65535).astype(np.uint16)
        date = transplant + dt.timedelta(days=round(tp.days))
        spec = series_spec_for(volume.affine, pixels.shape[2], description="t2_tse_sag",
                               study_date=f"{date:%Y%m%d}", patient_id=patient_id,
                               patient_name="Phantom^Subject", series_number=number + 1,
                               extra={"PatientSex": "O", "StudyID": str(number + 1),
                                      "AccessionNumber": f"ACC{number + 1}",
                                      "ReferringPhysicianName": "Ref^Doc"})
        write_series(out / tp.label, pixels, spec, rng)
    return out
