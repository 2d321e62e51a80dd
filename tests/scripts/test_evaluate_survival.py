"""``graftwatch evaluate-survival`` in-process: phantoms written, truth read back, table printed.

analyze_subject is replaced by one that answers from a known distortion of the truth
(volumes 10 % high, exact fractions), so the command's bookkeeping is checked in seconds;
the real pipeline is covered by tests/segmentation/test_pipeline_labelled.py.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from imaging.tsv import read_tsv
from scripts import evaluate_survival
from scripts.cli import main as cli_main


def _from_truth(subject, config, device="auto", model=None, graft=None, models=None):
    sid = subject.root.name
    truth = read_tsv(subject.root.parent / "derivatives" / "phantom-truth" / sid
                     / f"{sid}_truth.tsv")
    post = [r for r in truth if float(r["days_post_transplant"]) >= 0]
    first = float(post[0]["surviving_fraction"]) if post and post[0]["surviving_fraction"] != "n/a" else None
    rows = []
    for r in truth:
        fraction = None if r["surviving_fraction"] == "n/a" or not first else \
            float(r["surviving_fraction"]) / first
        rows.append({"session_id": r["session_id"],
                     "graft_volume_mm3": 1.1 * float(r["graft_volume_mm3"]),
                     "surviving_fraction": fraction,
                     "surviving_fraction_ci_low": None if fraction is None else fraction - 0.01,
                     "surviving_fraction_ci_high": None if fraction is None else fraction + 0.01})
    return SimpleNamespace(to_table=lambda: rows, flags=())


def test_command_compares_with_the_truth_and_writes_the_summary(tmp_path, monkeypatch, capsys):
    import segmentation.pipeline
    import segmentation.subject_outputs
    monkeypatch.setattr(segmentation.pipeline, "analyze_subject", _from_truth)
    written = []
    monkeypatch.setattr(segmentation.subject_outputs, "write_subject_outputs",
                        lambda result, out_dir, include_report: written.append(out_dir))
    out = tmp_path / "eval.json"
    code = cli_main(["evaluate-survival", "--subjects", "1", "--sessions", "3", "--resolutions",
                     "clinical", "--out", str(out), "--work", str(tmp_path / "work")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fraction_error_points" in printed and "clinical" in printed
    saved = json.loads(out.read_text())
    summary = saved["summary"]["clinical"]
    assert summary["graft_volume_error_percent"]["median"] == pytest.approx(10.0, abs=1e-6)
    assert summary["fraction_error_points"]["worst"] == pytest.approx(0.0, abs=1e-9)
    assert summary["fraction_ci_coverage"]["rate"] == 1.0
    assert len(saved["records"]["clinical"]) == 2 and saved["failures"] == []
    assert (tmp_path / "work" / "clinical" / "sub-001" / "sub-001_sessions.tsv").exists()
    assert written == [tmp_path / "work" / "clinical" / "derivatives" / "graftwatch"]
    assert "derivatives/graftwatch" in printed


def test_training_seeds_and_bad_resolutions_are_refused(tmp_path):
    for argv in (["--seed", "1000"], ["--seed", "900000"], ["--resolutions", "hd"]):
        with pytest.raises(SystemExit):
            evaluate_survival.main(["--out", str(tmp_path / "x.json"), *argv])


def test_calibration_seeds_are_kept_for_write_calibration(tmp_path):
    for argv in (["--seed", "500000"], ["--seed", "700000", "--write-calibration"]):
        with pytest.raises(SystemExit):
            evaluate_survival.main(["--out", str(tmp_path / "x.json"), *argv])


def _record(volume: float, truth: float, control: bool = False):
    from segmentation.survival_evaluation import Record
    return Record("sub-001", "ses-02", "none", "decay", control, 0.5, 0.5, False, 0.5,
                  (0.4, 0.6), truth, volume, (0.9 * volume, 1.1 * volume), 0.0, None, 0.0,
                  None, (None, None), 0.0, None, (None, None), False, False)


def test_write_calibration_fits_each_resolution_into_the_segmenter_card(tmp_path, capsys):
    import shutil
    from models.registry import DEFAULT_MODEL, WEIGHTS_DIR, load_card
    from segmentation.interval_calibration import card_calibrations
    shutil.copy(WEIGHTS_DIR / f"{DEFAULT_MODEL}.json", tmp_path / f"{DEFAULT_MODEL}.json")
    records = {"clinical": [_record(10.0, 10.0 + k % 7) for k in range(60)]
               + [_record(0.0, 0.0, control=True)] * 5}
    args = evaluate_survival.build_parser().parse_args(
        ["--out", "x.json", "--seed", "500000", "--write-calibration", "--graft", "none",
         "--models-dir", str(tmp_path), "--subjects", "12"])
    before = card_calibrations(load_card(DEFAULT_MODEL, tmp_path).validation, None)
    evaluate_survival._write_calibration(records, args)
    found = card_calibrations(load_card(DEFAULT_MODEL, tmp_path).validation, None)
    assert found["clinical"].n_timepoints == 60
    assert {k: v for k, v in found.items() if k != "clinical"} == \
        {k: v for k, v in before.items() if k != "clinical"}   # other resolutions kept
    assert found["clinical"].scale_low == 0.0                   # never measured too much
    assert found["clinical"].scale_high == pytest.approx(6.0 / (1.0 + 1.0))   # 6 over 1 + 1
    assert "--seed 500000" in found["clinical"].source
    assert "written into the card" in capsys.readouterr().out


def test_write_fraction_calibration_fits_the_written_maps_against_the_truth(tmp_path, capsys):
    """Maps written at twice the true fraction give a curve that halves them."""
    import shutil

    import numpy as np

    from imaging.io import save
    from imaging.volume import Volume
    from models.registry import DEFAULT_MODEL, WEIGHTS_DIR, load_card
    from segmentation.outputs import graft_probseg_path
    from segmentation.probability_calibration import card_probability_calibrations
    shutil.copy(WEIGHTS_DIR / f"{DEFAULT_MODEL}.json", tmp_path / f"{DEFAULT_MODEL}.json")
    study = tmp_path / "work" / "clinical"
    rng = np.random.default_rng(3)
    affine = np.diag([0.5, 0.5, 3.0, 1.0])
    for ses in ("ses-01", "ses-02"):
        truth = rng.uniform(0.0, 0.5, (12, 12, 8)).astype(np.float32)
        anat = study / "derivatives" / "phantom-truth" / "sub-001" / ses / "anat"
        save(Volume(truth, affine), anat / f"sub-001_{ses}_label-graft_probseg.nii.gz")
        save(Volume(2 * truth, affine),
             graft_probseg_path(study / "derivatives" / "graftwatch", "sub-001", ses))
    args = evaluate_survival.build_parser().parse_args(
        ["--out", "x.json", "--seed", "500000", "--write-calibration", "--graft", "none",
         "--models-dir", str(tmp_path), "--subjects", "12"])
    evaluate_survival._write_fraction_calibration(tmp_path / "work", ["clinical"], args)
    curve = card_probability_calibrations(load_card(DEFAULT_MODEL, tmp_path).validation,
                                          None)["clinical"]
    assert float(curve.apply(np.array([0.8]))[0]) == pytest.approx(0.4, abs=0.03)
    assert "--seed 500000" in curve.source
    assert "fraction calibration" in capsys.readouterr().out
