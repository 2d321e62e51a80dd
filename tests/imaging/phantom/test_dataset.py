"""The written BIDS dataset: exact names and columns, identical bytes for the same seed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from imaging.errors import OutputError
from imaging.io import load, load_labels
from imaging.phantom import write_dataset
from imaging.phantom.dataset import control_indices
from tests.imaging.phantom.conftest import DATASET_ARGS


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_layout_names_and_columns(dataset):
    assert json.loads((dataset / "dataset_description.json").read_text())["BIDSVersion"]
    rows = _tsv(dataset / "participants.tsv")
    assert list(rows[0])[:3] == ["participant_id", "injected_cells", "label"]
    assert [r["label"] for r in rows] == ["spio", "19f"]
    for row in rows:
        sid = row["participant_id"]
        sessions = _tsv(dataset / sid / f"{sid}_sessions.tsv")
        assert list(sessions[0]) == ["session_id", "days_post_transplant"]
        assert float(sessions[0]["days_post_transplant"]) < 0 < float(
            sessions[1]["days_post_transplant"])
        truth = _tsv(dataset / "derivatives" / "phantom-truth" / sid / f"{sid}_truth.tsv")
        assert list(truth[0]) == ["session_id", "days_post_transplant", "graft_volume_mm3",
                                  "surviving_cells", "surviving_fraction", "iron_ug",
                                  "fluorine_atoms"]
        assert truth[0]["surviving_fraction"] == "n/a"
        for ses in sessions:
            stem = f"{sid}_{ses['session_id']}"
            anat = dataset / sid / ses["session_id"] / "anat"
            side = json.loads((anat / f"{stem}_T2w.json").read_text())
            assert side["MagneticFieldStrength"] == 3 and side["RepetitionTime"] > 0
            derived = dataset / "derivatives/phantom-truth" / sid / ses["session_id"] / "anat"
            t2w = load(anat / f"{stem}_T2w.nii.gz")
            dseg = load_labels(derived / f"{stem}_dseg.nii.gz")
            probseg = load(derived / f"{stem}_label-graft_probseg.nii.gz")
            assert dseg.same_space(t2w) and probseg.same_space(t2w)
            assert t2w.meta["contrast"] == "T2w"


def test_contrast_specific_files(dataset):
    anat = dataset / "sub-001" / "ses-02" / "anat"
    side = json.loads((anat / "sub-001_ses-02_T2starw.json").read_text())
    assert isinstance(side["EchoTime"], list) and 3 <= len(side["EchoTime"]) <= 8
    assert all(0.003 <= te <= 0.040 for te in side["EchoTime"])
    t2s = load(anat / "sub-001_ses-02_T2starw.nii.gz")
    assert t2s.array.ndim == 4 and t2s.meta["contrast"] == "T2starw"
    assert t2s.meta["echo_times_ms"] == pytest.approx([te * 1000 for te in side["EchoTime"]])
    anat19 = dataset / "sub-002" / "ses-02" / "anat"
    side19 = json.loads((anat19 / "sub-002_ses-02_acq-19F_MRI.json").read_text())
    assert side19["ReferenceAtoms"] > 0
    f19 = load(anat19 / "sub-002_ses-02_acq-19F_MRI.nii.gz")
    assert f19.meta["contrast"] == "19F" and max(f19.spacing) <= 4.0
    mask = load_labels(dataset / "derivatives/phantom-truth/sub-002/ses-02/anat"
                       / "sub-002_ses-02_acq-19F_label-reference_mask.nii.gz")
    assert mask.same_space(f19) and mask.array.sum() > 0


def test_graft_volume_in_truth_table_matches_the_written_probseg(dataset):
    for sid in ("sub-001", "sub-002"):
        for row in _tsv(dataset / "derivatives/phantom-truth" / sid / f"{sid}_truth.tsv"):
            stem = f"{sid}_{row['session_id']}"
            probseg = load(dataset / "derivatives/phantom-truth" / sid / row["session_id"]
                           / "anat" / f"{stem}_label-graft_probseg.nii.gz")
            summed = float(probseg.array.sum()) * probseg.voxel_volume_mm3
            assert summed == pytest.approx(float(row["graft_volume_mm3"]), rel=0.01, abs=1e-6)


def test_same_seed_gives_identical_files(dataset, tmp_path):
    """Every file, the DICOM export included (its UIDs derive from the seed)."""
    again = tmp_path / "again"
    write_dataset(again, **DATASET_ARGS)
    first = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second and len(first) > 20
    assert sum(rel.parts[0] == "sourcedata" for rel in first) > 20
    for rel in first:
        assert (dataset / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_every_cohort_of_three_has_a_control():
    for n in (3, 4, 9, 20):
        for seed in range(5):
            assert 1 <= len(control_indices(n, np.random.default_rng(seed))) < n
    assert control_indices(2, np.random.default_rng(0)) == set()


def test_study_discovery_reads_every_subject_with_its_days(dataset):
    from imaging import study
    for sid in ("sub-001", "sub-002"):
        expected = [float(r["days_post_transplant"])
                    for r in _tsv(dataset / sid / f"{sid}_sessions.tsv")]
        subject = study.discover_subject(dataset / sid)
        assert [tp.days for tp in subject.timepoints] == pytest.approx(expected)
        assert all("T2w" in tp.scans for tp in subject.timepoints)


def test_command_refuses_a_non_empty_folder_without_force(tmp_path):
    from scripts.phantom import main
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty.*--force"):
        main([str(out), "--subjects", "1"])
    assert main([str(out), "--subjects", "1", "--sessions", "1", "--contrast", "none",
                 "--plane", "axial", "--force"]) == 0
    assert (out / "sub-001" / "ses-01" / "anat" / "sub-001_ses-01_T2w.nii.gz").exists()
    with pytest.raises(SystemExit):
        main([str(out), "--contrast", "gd"])
