"""``graftwatch batch --models-dir``: the cohort runs on the models of that folder."""

from __future__ import annotations

import csv
import shutil

from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL
from scripts.batch import main


def _status(out):
    with (out / "status.tsv").open() as handle:
        return {r["subject_id"]: r for r in csv.DictReader(handle, delimiter="\t")}


def test_batch_reads_the_models_from_models_dir(tmp_path):
    import models.registry
    from imaging.phantom import write_dataset
    study = write_dataset(tmp_path / "study", n_subjects=1, seed=7, labels=("none",),
                          n_sessions=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(study), "--out", str(tmp_path / "out-empty"), "--device", "cpu",
                 "--models-dir", str(empty), "--no-report"]) == 1
    error = _status(tmp_path / "out-empty")["sub-001"]["error"]
    assert f"no model named '{DEFAULT_MODEL}'" in error and str(empty) in error
    copied = tmp_path / "copied"
    copied.mkdir()
    shipped = models.registry.WEIGHTS_DIR
    for name in (DEFAULT_MODEL, DEFAULT_LOCATOR):
        for suffix in (".json", ".pt"):
            shutil.copy(shipped / f"{name}{suffix}", copied)
    out = tmp_path / "out"
    assert main([str(study), "--out", str(out), "--device", "cpu", "--models-dir", str(copied),
                 "--no-report"]) == 0
    assert _status(out)["sub-001"]["status"] == "ok"
    assert (out / "sub-001" / "sub-001_timepoints.tsv").exists()
