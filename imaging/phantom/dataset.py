"""write_dataset: a seeded cohort of simulated subjects, written as BIDS."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from imaging.errors import PhantomError
from imaging.phantom import contract as C
from imaging.phantom.bids_writer import (write_dataset_description, write_participants,
                                         write_subject)
from imaging.phantom.dicom_writer import transplant_date, write_subject_dicom
from imaging.phantom.sampling import MAX_SESSIONS, sample_spec
from imaging.phantom.simulate import simulate_subject

log = logging.getLogger(__name__)

MIN_COHORT_WITH_CONTROLS = 3


def control_indices(n_subjects: int, rng: np.random.Generator) -> set[int]:
    """Which subjects are graft-free controls: at least one in every cohort of >= 3."""
    if n_subjects < MIN_COHORT_WITH_CONTROLS:
        return set()
    n_controls = max(1, n_subjects // 4)
    return {int(i) for i in rng.choice(n_subjects, size=n_controls, replace=False)}


def write_dataset(out: Path, n_subjects: int, seed: int,
                  labels: Sequence[str] = C.LABELS, resolution: str = "clinical",
                  dicom: bool = False, plane: str | None = None,
                  n_sessions: int = MAX_SESSIONS) -> Path:
    """Simulate ``n_subjects`` (labels taken in turn) and write them under ``out``.

    ``dicom=True`` also writes every session as DICOM series under ``OUT/sourcedata``
    (``imaging.phantom.dicom_writer``); each subject's transplant date, from which the
    DICOM study dates count, is in participants.tsv. Same arguments -> identical bytes in
    every file.
    """
    if n_subjects < 1:
        raise PhantomError(f"n_subjects = {n_subjects}; expected at least 1")
    if not labels:
        raise PhantomError("labels is empty; expected some of ('none', 'spio', '19f')")
    for label in labels:
        C.require_choice("label", label, C.LABELS)
    out = Path(out)
    cohort_seed, *subject_seeds = np.random.SeedSequence(seed).spawn(n_subjects + 1)
    controls = control_indices(n_subjects, np.random.default_rng(cohort_seed))
    subjects = []
    for index, child in enumerate(subject_seeds):
        rng = np.random.default_rng(child)
        spec = sample_spec(rng, label=labels[index % len(labels)], control=index in controls,
                           resolution=resolution, plane=plane, n_sessions=n_sessions)
        subject = simulate_subject(spec, rng, subject_id=f"sub-{index + 1:03d}")
        write_subject(out, subject)
        if dicom:
            write_subject_dicom(out, subject, transplant_date(index), seed,
                                np.random.default_rng(child.spawn(1)[0]))
        subjects.append(summary(subject))
        log.info("%s written (%s%s)", subject.subject_id, spec.graft.label,
                 ", control" if spec.graft.control else "")
    return finish_dataset(out, subjects, seed)


def summary(subject):
    """Keep only what participants.tsv needs, so a large cohort does not hold every image."""
    from imaging.phantom.results import SimulatedSubject
    return SimulatedSubject(subject.subject_id, subject.spec, ())


def finish_dataset(out: Path, summaries: Sequence, seed: int) -> Path:
    """participants.tsv (subject i's transplant date: ``transplant_date(i)``) and
    dataset_description.json, once every subject is written under ``out``."""
    write_participants(out, summaries, [transplant_date(i) for i in range(len(summaries))])
    write_dataset_description(out, seed)
    return out
