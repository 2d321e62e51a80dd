"""analyze_subject on a SPIO phantom through the shipped models: iron per timepoint in the
result, the table and the JSON; registration transforms written and checked by the manifest.

One 3-session subject (about 20 s on a CPU), analysed once for the module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from imaging.registration import load_itk_transform
from imaging.study import discover_subject
from imaging.tsv import read_tsv
from segmentation.outputs import TIMEPOINT_COLUMNS, outputs_complete, transform_path

CONTRACT = ("session_id", "days_post_transplant", "graft_volume_mm3", "graft_volume_ci_low_mm3",
            "graft_volume_ci_high_mm3", "surviving_fraction", "surviving_fraction_ci_low",
            "surviving_fraction_ci_high", "estimated_surviving_cells", "cord_volume_mm3",
            "lesion_volume_mm3", "flags")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    from imaging.phantom import write_dataset
    from segmentation.pipeline import analyze_subject, config_for
    from segmentation.subject_outputs import write_subject_outputs
    study = write_dataset(tmp_path_factory.mktemp("study"), 1, seed=700001, labels=("spio",),
                          n_sessions=3)
    subject = discover_subject(study / "sub-001")
    result = analyze_subject(subject, config_for(subject), device="cpu")
    out = tmp_path_factory.mktemp("out")
    write_subject_outputs(result, out, include_report=False)
    truth = read_tsv(study / "derivatives" / "phantom-truth" / "sub-001" / "sub-001_truth.tsv")
    return result, out, {row["session_id"]: float(row["iron_ug"]) for row in truth}


def test_spio_iron_reaches_the_result_table_and_json(analysed):
    result, out, truth_iron = analysed
    rows = {row["session_id"]: row for row in result.to_table()}
    for tp in result.timepoints:
        assert tp.labelled is not None and tp.labelled.estimate.method == "spio"
        row = rows[tp.session_id]
        if tp.is_baseline:
            assert row["iron_ug"] is None and row["cell_estimate_spio_status"] == "not_quantifiable"
            continue
        # measured although the shipped model labels (almost) no graft; within a factor 2
        assert 0.5 * truth_iron[tp.session_id] < row["iron_ug"] < 2.0 * truth_iron[tp.session_id]
        assert row["iron_ci_low_ug"] <= row["iron_ug"] <= row["iron_ci_high_ug"]
        assert row["cell_estimate_spio_status"] in ("ok", "not_quantifiable")
    saved = json.loads((out / "sub-001" / "sub-001_survival.json").read_text())
    later = [t for t in saved["timepoints"] if t["labelled_estimate"]["iron"] is not None]
    assert later and all(t["transform"]["residual_mm"] is not None for t in later)
    assert not any("not yet" in a for a in saved["assumptions"])
    assert any(a.startswith("spio region:") for a in saved["assumptions"])
    with open(out / "sub-001" / "sub-001_timepoints.tsv") as handle:
        header = handle.readline().rstrip("\n").split("\t")
    assert tuple(header[:len(CONTRACT)]) == CONTRACT and tuple(header) == TIMEPOINT_COLUMNS


def test_transforms_are_written_match_the_result_and_are_checksummed(analysed):
    result, out, _ = analysed
    baseline = next(tp.session_id for tp in result.timepoints if tp.is_baseline)
    points = np.random.default_rng(0).normal(size=(10, 3)) * 20
    registered = [tp for tp in result.timepoints if tp.transform is not None]
    assert len(registered) == len(result.timepoints) - 1
    for tp in registered:
        path = transform_path(out, "sub-001", tp.session_id, baseline)
        assert path.name == f"sub-001_{tp.session_id}_from-01_to-{tp.session_id[4:]}_mode-image_xfm.txt"
        np.testing.assert_allclose(load_itk_transform(path).transform_points(points),
                                   tp.transform.transform_points(points), atol=1e-6)
    manifest = json.loads((out / "sub-001" / "sub-001_outputs.json").read_text())["files"]
    assert sum(name.endswith("_xfm.txt") for name in manifest) == len(registered)
    assert outputs_complete(out, "sub-001")
    path = transform_path(out, "sub-001", registered[0].session_id, baseline)
    path.write_text(path.read_text().replace("Parameters: ", "Parameters: 1 ", 1))
    assert not outputs_complete(out, "sub-001")   # resume would redo this subject
