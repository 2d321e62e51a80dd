"""Write simulated subjects as a BIDS dataset with truth under derivatives/phantom-truth.

The layout is a contract that other simulators and evaluations share (issue 3):

    OUT/dataset_description.json, participants.tsv (+ .json)
    OUT/sub-X/sub-X_sessions.tsv                      session_id, days_post_transplant
    OUT/sub-X/ses-Y/anat/sub-X_ses-Y_T2w.nii.gz (+ .json)
    OUT/sub-X/ses-Y/anat/sub-X_ses-Y_T2starw.nii.gz   spio: 4-D, EchoTime list in seconds
    OUT/sub-X/ses-Y/anat/sub-X_ses-Y_acq-19F_MRI.nii.gz   19f: sidecar ReferenceAtoms
    OUT/derivatives/phantom-truth/sub-X/sub-X_truth.tsv
    OUT/derivatives/phantom-truth/sub-X/ses-Y/anat/sub-X_ses-Y_dseg.nii.gz,
        _label-graft_probseg, _label-lesion_probseg, _label-cord_probseg (T2w grid),
        _acq-19F_label-reference_mask (19F grid)
    OUT/sourcedata/sub-X/ses-Y/<series>/IM*.dcm        with dicom=True (dicom_writer.py)

Every BIDS file is written atomically (DICOM files directly); NIfTI gzip streams carry no
time stamp and DICOM UIDs derive from the seed, so the same seed gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Sequence

from imaging.atomic import write_text_atomic
from imaging.tsv import write_tsv
from imaging.io import save
from imaging.phantom.results import SimulatedSession, SimulatedSubject

DATASET_NAME = "graftwatch phantom"
TRUTH_PIPELINE = "phantom-truth"
BIDS_VERSION = "1.9.0"
DSEG_LABELS = ((0, "background"), (1, "cord"), (2, "lesion"), (3, "graft"))
PARTICIPANT_COLUMNS = ("participant_id", "injected_cells", "label", "transplant_date", "control",
                       "survival_model",
                       "plateau", "tau_days", "doubling_days", "packing_density_cells_per_mm3",
                       "injection_volume_ul", "iron_pg_per_cell", "iron_half_life_days",
                       "fluorine_atoms_per_cell")
TRUTH_COLUMNS = ("session_id", "days_post_transplant", "graft_volume_mm3", "surviving_cells",
                 "surviving_fraction", "iron_ug", "fluorine_atoms")
SESSION_COLUMNS = ("session_id", "days_post_transplant")


def write_json(path: Path, data: dict[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_dataset_description(out: Path, seed: int | None) -> None:
    generated = {"Name": "graftwatch phantom", "Description": "imaging.phantom simulator"}
    if seed is not None:
        generated["Seed"] = seed
    write_json(out / "dataset_description.json", {
        "Name": DATASET_NAME, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
        "GeneratedBy": [generated]})
    write_json(out / "derivatives" / TRUTH_PIPELINE / "dataset_description.json", {
        "Name": f"{DATASET_NAME} truth", "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative", "GeneratedBy": [generated]})
    write_tsv(out / "derivatives" / TRUTH_PIPELINE / "dseg.tsv", ("index", "name"),
              ({"index": i, "name": n} for i, n in DSEG_LABELS))


def participant_row(subject: SimulatedSubject, transplant: dt.date) -> dict[str, Any]:
    g = subject.spec.graft
    return {"participant_id": subject.subject_id, "injected_cells": float(g.injected_cells),
            "label": g.label, "transplant_date": transplant.isoformat(), "control": g.control, "survival_model": g.survival_model,
            "plateau": g.plateau, "tau_days": g.tau_days, "doubling_days": g.doubling_days,
            "packing_density_cells_per_mm3": g.packing_density_cells_per_mm3,
            "injection_volume_ul": g.injection_volume_mm3, "iron_pg_per_cell": g.iron_pg_per_cell,
            "iron_half_life_days": g.iron_half_life_days,
            "fluorine_atoms_per_cell": g.fluorine_atoms_per_cell}


def write_participants(out: Path, subjects: Sequence[SimulatedSubject],
                       transplant_dates: Sequence[dt.date]) -> None:
    write_tsv(out / "participants.tsv", PARTICIPANT_COLUMNS,
              map(participant_row, subjects, transplant_dates))
    write_json(out / "participants.json", {
        "injected_cells": {"Description": "cells injected (0 for a graft-free control)"},
        "transplant_date": {"Description": "day of the injection (ISO date): session dates, "
                                           "e.g. DICOM StudyDate under sourcedata, are this "
                                           "date + days_post_transplant"},
        "label": {"Description": "how the graft is seen", "Levels": {
            "none": "label-free (T2w)", "spio": "iron-labelled (multi-echo T2*w)",
            "19f": "fluorine-labelled (19F MRI)"}},
        "control": {"Description": "injured, no graft"},
        "packing_density_cells_per_mm3": {"Units": "cells/mm3"},
        "injection_volume_ul": {"Units": "uL"}, "iron_pg_per_cell": {"Units": "pg"},
        "tau_days": {"Units": "days"}, "iron_half_life_days": {"Units": "days"}})


def _sidecar(volume, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = volume.meta
    tes = [round(t / 1000.0, 6) for t in meta.get("echo_times_ms", ())]
    side: dict[str, Any] = {"Modality": "MR", "MagneticFieldStrength": meta["field_strength_t"],
                            "SeriesDescription": meta["series_description"],
                            "RepetitionTime": meta["repetition_time_ms"] / 1000.0}
    if tes:
        side["EchoTime"] = tes if meta.get("contrast") == "T2starw" else tes[0]
    return {**side, **(extra or {})}


def write_session(out: Path, subject_id: str, session: SimulatedSession) -> None:
    ses = session.session_id
    stem = f"{subject_id}_{ses}"
    anat = out / subject_id / ses / "anat"
    _write_image(anat / f"{stem}_T2w.nii.gz", session.t2w)
    if session.t2starw is not None:
        _write_image(anat / f"{stem}_T2starw.nii.gz", session.t2starw)
    if session.f19 is not None:
        _write_image(anat / f"{stem}_acq-19F_MRI.nii.gz", session.f19,
                     {"ReferenceAtoms": session.f19.meta["reference_atoms"],
                      "ImagedNucleus": "19F"})
    truth = out / "derivatives" / TRUTH_PIPELINE / subject_id / ses / "anat"
    save(session.dseg, truth / f"{stem}_dseg.nii.gz")
    for name in ("graft", "lesion", "cord"):
        save(getattr(session, f"{name}_probseg"), truth / f"{stem}_label-{name}_probseg.nii.gz")
    if session.reference_mask is not None:
        save(session.reference_mask, truth / f"{stem}_acq-19F_label-reference_mask.nii.gz")


def _write_image(path: Path, volume, extra: dict[str, Any] | None = None) -> None:
    save(volume, path)
    write_json(path.with_name(path.name[: -len(".nii.gz")] + ".json"), _sidecar(volume, extra))


def write_subject(out: Path, subject: SimulatedSubject) -> None:
    sid = subject.subject_id
    write_tsv(out / sid / f"{sid}_sessions.tsv", SESSION_COLUMNS,
              ({"session_id": s.session_id, "days_post_transplant": s.days_post_transplant}
               for s in subject.sessions))
    for session in subject.sessions:
        write_session(out, sid, session)
    truth_dir = out / "derivatives" / TRUTH_PIPELINE / sid
    write_tsv(truth_dir / f"{sid}_truth.tsv", TRUTH_COLUMNS, (
        {"session_id": s.session_id, "days_post_transplant": s.days_post_transplant,
         **s.truth.to_dict()} for s in subject.sessions))
    write_json(truth_dir / f"{sid}_spec.json", subject.spec.to_dict())


def write_inserted(out: Path, subject_id: str, session_id: str, inserted, suffix: str = "T2w",
                   days_post_transplant: float = 0.0) -> Path:
    """Write a real scan with an inserted graft in the same layout as a simulated session."""
    stem = f"{subject_id}_{session_id}"
    save(inserted.image, Path(out) / subject_id / session_id / "anat" / f"{stem}_{suffix}.nii.gz")
    write_tsv(Path(out) / subject_id / f"{subject_id}_sessions.tsv", SESSION_COLUMNS,
              [{"session_id": session_id, "days_post_transplant": days_post_transplant}])
    truth = Path(out) / "derivatives" / TRUTH_PIPELINE / subject_id
    save(inserted.dseg, truth / session_id / "anat" / f"{stem}_dseg.nii.gz")
    save(inserted.graft_probseg, truth / session_id / "anat" / f"{stem}_label-graft_probseg.nii.gz")
    write_tsv(truth / f"{subject_id}_truth.tsv", TRUTH_COLUMNS, [
        {"session_id": session_id, "days_post_transplant": days_post_transplant,
         **inserted.truth.to_dict()}])
    return Path(out) / subject_id
