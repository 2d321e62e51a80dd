"""Per-subject outputs in a BIDS-derivatives layout, and the check that they are complete.

    OUT/sub-X/ses-Y/anat/sub-X_ses-Y_dseg.nii.gz                labels (0-3)
    OUT/sub-X/ses-Y/anat/sub-X_ses-Y_label-graft_probseg.nii.gz graft partial-volume fraction
    OUT/sub-X/ses-Y/anat/sub-X_ses-Y_from-B_to-Y_mode-image_xfm.txt  rigid transform from the
        baseline session ses-B (ITK text file, LPS: resamples ses-B's images onto ses-Y;
        written for every registered timepoint; matrix in RAS and residual in survival.json)
    OUT/sub-X/sub-X_timepoints.tsv                              one row per timepoint
    OUT/sub-X/sub-X_survival.json                               fit, flags, assumptions, provenance
    OUT/sub-X/sub-X_outputs.json                                written last: every file + sha256

and, when a timepoint's scan was a DICOM series:

    OUT/sub-X/ses-Y/dicom/sub-X_ses-Y_seg.dcm   DICOM SEG of the labels on the source series
    OUT/sub-X/sub-X_sr.dcm                      DICOM SR (TID 1500): graft volume and surviving
                                                fraction of every DICOM timepoint

Every file is written atomically; ``sub-X_outputs.json`` is written after all others,
so a subject counts as complete only when it exists and every checksum in it matches.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from imaging.atomic import write_text_atomic

TIMEPOINT_COLUMNS = (
    "session_id", "days_post_transplant", "graft_volume_mm3", "graft_volume_ci_low_mm3",
    "graft_volume_ci_high_mm3", "surviving_fraction", "surviving_fraction_ci_low",
    "surviving_fraction_ci_high", "estimated_surviving_cells", "cord_volume_mm3",
    "lesion_volume_mm3", "flags",
    # beyond the contract's columns
    "graft_volume_hard_mm3", "cord_volume_hard_mm3", "lesion_volume_hard_mm3",
    "graft_volume_model_ci_low_mm3", "graft_volume_model_ci_high_mm3",
    "estimated_cells_ci_low", "estimated_cells_ci_high",
    "cell_estimate_method", "cell_estimate_status", "lesion_length_mm", "lesion_max_width_mm",
    "cord_csa_mm2", "registration_residual_mm", "cord_snr", "device",
    # SPIO (label 'spio') and 19F (label '19f') subjects; n/a for the others
    "iron_ug", "iron_ci_low_ug", "iron_ci_high_ug", "estimated_cells_spio",
    "estimated_cells_spio_ci_low", "estimated_cells_spio_ci_high", "surviving_fraction_spio",
    "cell_estimate_spio_status", "fluorine_atoms", "fluorine_atoms_ci_low",
    "fluorine_atoms_ci_high", "estimated_cells_19f", "estimated_cells_19f_ci_low",
    "estimated_cells_19f_ci_high", "surviving_fraction_19f", "cell_estimate_19f_status",
)
MANIFEST_SUFFIX = "_outputs.json"


def session_anat_dir(out_dir: Path, subject_id: str, session_id: str) -> Path:
    return Path(out_dir) / subject_id / session_id / "anat"


def dseg_path(out_dir: Path, subject_id: str, session_id: str) -> Path:
    return session_anat_dir(out_dir, subject_id, session_id) / f"{subject_id}_{session_id}_dseg.nii.gz"


def graft_probseg_path(out_dir: Path, subject_id: str, session_id: str) -> Path:
    return (session_anat_dir(out_dir, subject_id, session_id)
            / f"{subject_id}_{session_id}_label-graft_probseg.nii.gz")


def transform_path(out_dir: Path, subject_id: str, session_id: str, reference_id: str) -> Path:
    """The rigid transform that resamples the reference (baseline) session onto this one."""
    return (session_anat_dir(out_dir, subject_id, session_id)
            / f"{subject_id}_{session_id}_from-{reference_id.removeprefix('ses-')}"
              f"_to-{session_id.removeprefix('ses-')}_mode-image_xfm.txt")


def dicom_seg_path(out_dir: Path, subject_id: str, session_id: str) -> Path:
    return (Path(out_dir) / subject_id / session_id / "dicom"
            / f"{subject_id}_{session_id}_seg.dcm")


def dicom_sr_path(out_dir: Path, subject_id: str) -> Path:
    return Path(out_dir) / subject_id / f"{subject_id}_sr.dcm"


def manifest_path(out_dir: Path, subject_id: str) -> Path:
    return Path(out_dir) / subject_id / f"{subject_id}{MANIFEST_SUFFIX}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(out_dir: Path, subject_id: str, files: Iterable[Path]) -> Path:
    """Record every output file with its checksum; the subject's completion marker."""
    base = Path(out_dir) / subject_id
    entries = {str(Path(f).relative_to(base)): sha256_file(Path(f)) for f in sorted(set(files))}
    text = json.dumps({"subject_id": subject_id, "files": entries}, indent=2)
    return write_text_atomic(manifest_path(out_dir, subject_id), text)


def outputs_complete(out_dir: Path, subject_id: str) -> bool:
    """True only when the manifest exists and every file it lists is there, unchanged."""
    manifest = manifest_path(out_dir, subject_id)
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    base = Path(out_dir) / subject_id
    if not recorded:
        return False
    for name, checksum in recorded.items():
        path = base / name
        if not path.is_file() or sha256_file(path) != checksum:
            return False
    return True


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Delete the temporary files that writes interrupted by a kill left under ``out_dir``
    (``imaging.atomic`` names them ``.<target name>.<random>.tmp<suffix>``); call it only
    while no writer is running (the batch holds its output lock). Returns what was removed."""
    removed = []
    for path in sorted(Path(out_dir).rglob(".*.tmp*")):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
